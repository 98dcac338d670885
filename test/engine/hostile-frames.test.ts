import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import { Sandbox, jsonl, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

const POOL = 'wire';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Frame = any;

/** A hand-driven connection with the pool's token: sends anything, records every frame and the close. */
class RawPeer {
  readonly frames: Frame[] = [];
  closed?: { code: number; reason: string };

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (d) => this.frames.push(JSON.parse(d.toString())));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => {}); // a close for a bad frame is what these tests provoke
  }

  static async open(sb: Sandbox, hello?: object): Promise<RawPeer> {
    const { url, token } = sb.coordinator(POOL);
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const peer = new RawPeer(ws);
    if (hello) peer.send(hello);
    return peer;
  }

  send(data: object | string | Buffer): void {
    this.ws.send(Buffer.isBuffer(data) || typeof data === 'string' ? data : JSON.stringify(data), { binary: false });
  }

  /** The first frame (from `from` on) that `pred` accepts. */
  frame(what: string, pred: (f: Frame) => boolean, from = 0): Promise<Frame> {
    return waitFor(what, () => this.frames.slice(from).find(pred));
  }

  /** Sends a request and waits for its reply. */
  async request(body: { type: string; reqId: number; [field: string]: unknown }): Promise<Frame> {
    this.send(body);
    return this.frame(`the reply to request ${body.reqId}`, (f) => f.type === 'reply' && f.reqId === body.reqId);
  }

  whenClosed(timeoutMs = 20_000): Promise<{ code: number; reason: string }> {
    return waitFor('the coordinator to close the connection', () => this.closed, timeoutMs);
  }

  close(): void {
    this.ws.terminate();
  }
}

const CLIENT_HELLO = { type: 'hello', protocolVersion: 1, role: 'client' };
const workerHello = (name: string) => ({ type: 'hello', protocolVersion: 1, role: 'worker', name, host: 'raw', pid: 1 });

describe('a coordinator no frame can kill', () => {
  const sb = new Sandbox('wire');
  const connect = () => CoordinatorClient.connect(sb.coordinator(POOL).url, sb.coordinator(POOL).token);
  const jobIds = () => (fs.existsSync(path.join(sb.home, 'jobs')) ? fs.readdirSync(path.join(sb.home, 'jobs')).sort() : []);
  const alive = () => {
    process.kill(sb.coordinator(POOL).pid, 0);
    return true;
  };
  const SAVE = `await sky.saveResults(batch.map((x) => ({ out: x.text })));`;
  const runJob = async (name: string) => {
    const r = await sb.run(sb.file(`${name}.ts`, mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output: path.join(sb.dir, name, 'out.jsonl'), pool: POOL, body: SAVE })));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readJsonl(path.join(sb.dir, name, 'out.jsonl')).length, 4);
  };
  before(async () => {
    sb.file('in.jsonl', jsonl(Array.from({ length: 4 }, (_, i) => ({ text: `t${i}` }))));
    await sb.applyPool(POOL, 'pool:\n  workers: 1\n');
  });
  after(() => sb.cleanup());

  test('text that is not JSON, null, an unknown type and missing fields get coded errors without stacks; the fifth bad frame closes the connection; jobs still run', async () => {
    const peer = await RawPeer.open(sb, CLIENT_HELLO);
    peer.send('this is not json');
    const notJson = await peer.frame('the refusal of text that is not JSON', (f) => f.type === 'error');
    assert.equal(notJson.error.code, 'SKYBATCH_E_BAD_FRAME');
    assert.match(notJson.error.message, /not JSON/);
    peer.send('null');
    const nul = await peer.frame('the refusal of null', (f) => f.type === 'error', 1);
    assert.match(nul.error.message, /null, not a message object/);
    const unknown = await peer.request({ type: 'launchMissiles', reqId: 1 });
    assert.equal(unknown.ok, false);
    assert.equal(unknown.error.code, 'SKYBATCH_E_BAD_FRAME');
    assert.match(unknown.error.message, /unknown type "launchMissiles"/);
    // a worker's report sent on a client connection is not a client request: no ok:true for it
    const report = await peer.request({ type: 'batchDone', reqId: 2, jobId: '1', index: 0, attempt: 1, items: 2 });
    assert.equal(report.ok, false);
    assert.equal(report.error.code, 'SKYBATCH_E_BAD_FRAME');
    // a missing job id is a user's mistake: refused by field, not counted against the connection
    const noJob = await peer.request({ type: 'cancel', reqId: 3 });
    assert.equal(noJob.error.code, 'SKYBATCH_E_BAD_OPTION');
    assert.equal(noJob.error.context.field, 'jobId');
    assert.ok(peer.frames.every((f) => f.error === undefined || f.error.stack === undefined), 'no reply carries a stack');
    assert.equal(peer.closed, undefined);
    peer.send({ type: 'status' }); // no reqId: the fifth malformed frame
    const closed = await peer.whenClosed();
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /bad frames/);
    assert.match(fs.readFileSync(path.join(sb.home, 'pools', POOL, 'coordinator.log'), 'utf8'), /closing the connection of a client after 5 bad frames/);
    assert.ok(alive());
    await runJob('after-garbage');
  });

  test('a frame that is not UTF-8 or larger than 64 MB closes only its own connection', async () => {
    const latin = await RawPeer.open(sb, CLIENT_HELLO);
    latin.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    assert.equal((await latin.whenClosed()).code, 1007);
    const big = await RawPeer.open(sb, CLIENT_HELLO);
    big.send(JSON.stringify({ type: 'status', reqId: 1, pad: 'x'.repeat(65 * 1024 * 1024) }));
    assert.equal((await big.whenClosed()).code, 1009);
    assert.ok(alive());
    const client = await connect();
    try {
      assert.equal((await client.request({ type: 'status' })).pool, POOL);
    } finally {
      client.close();
    }
  });

  test('a connection that never says hello is closed within seconds', async () => {
    const silent = await RawPeer.open(sb);
    const closed = await silent.whenClosed(15_000);
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /no hello within/);
  });

  test('a job request with batchSize 0, a total of 5e9 or an option out of range is refused naming the field, and nothing is created', async () => {
    const code = 'export {};\n';
    const hash = createHash('sha256').update(code).digest('hex');
    const job = {
      bundleHash: hash,
      mapperId: 'mapper#1',
      scriptPath: path.join(sb.dir, 'raw.ts'),
      reader: { type: 'json', path: path.join(sb.dir, 'in.jsonl'), options: {} },
      writers: [{ type: 'json', path: path.join(sb.dir, 'raw', 'out.jsonl'), options: {} }],
      batchSize: 2,
      total: 4,
      env: {},
      argv: [],
      cwd: sb.dir,
    };
    const jobsBefore = jobIds();
    const peer = await RawPeer.open(sb, CLIENT_HELLO);
    const cases: [string, object, RegExp][] = [
      ['batchSize', { batchSize: 0 }, /batchSize must be a positive integer, got 0/],
      ['total', { total: 5e9 }, /total makes 2500000000 batches of 2 items; at most 1000000 batches fit/],
      ['batchSize', { batchSize: 1.5 }, /batchSize must be a positive integer, got 1.5/],
      ['total', { total: -1 }, /must not be negative/],
      ['maxAttempts', { maxAttempts: 0 }, /maxAttempts must be a positive integer/],
      ['maxAttempts', { maxAttempts: 60 }, /last retry wait more than 24 h/],
      ['retryBaseMs', { retryBaseMs: -5 }, /must not be negative/],
      ['batchTimeoutMs', { batchTimeoutMs: 0 }, /at least 100 ms/],
      ['onItemError', { onItemError: 'ignore' }, /onItemError/],
      ['writers', { writers: [] }, /at least one writer/],
      ['writers.0.type', { writers: [{ type: '../evil', path: '/tmp/x', options: {} }] }, /registered format name/],
      ['reader', { reader: null }, /reader/],
      ['bundleHash', { bundleHash: '../../evil' }, /64 lowercase hex/],
    ];
    let reqId = 10;
    for (const [field, change, message] of cases) {
      const r = await peer.request({ type: 'submit', reqId: ++reqId, job: { ...job, ...change }, bundle: code });
      assert.equal(r.ok, false, `${JSON.stringify(change)} was accepted`);
      assert.equal(r.error.code, 'SKYBATCH_E_BAD_OPTION', JSON.stringify(r.error));
      assert.equal(r.error.context.field, field);
      assert.match(r.error.message, message);
    }
    const mismatch = await peer.request({ type: 'submit', reqId: ++reqId, job, bundle: 'export const other = 1;\n' });
    assert.equal(mismatch.error.code, 'SKYBATCH_E_BAD_OPTION');
    assert.match(mismatch.error.message, /does not match its hash/);
    // a resume of a job id that is a path never reaches the file system
    const resume = await peer.request({ type: 'resume', reqId: ++reqId, jobId: '../../x' });
    assert.equal(resume.error.code, 'SKYBATCH_E_BAD_OPTION');
    assert.equal(peer.closed, undefined, 'refused options are not bad frames');
    assert.deepEqual(jobIds(), jobsBefore);
    assert.ok(!fs.existsSync(path.join(sb.home, 'evil.mjs')));
    assert.ok(!fs.existsSync(path.join(sb.home, 'bundles', `${hash}.mjs`)));
    const status = await peer.request({ type: 'status', reqId: ++reqId });
    assert.equal(status.ok, true);
    peer.close();
  });

  test('getBundle for an unknown or path-like hash is refused', async () => {
    const worker = await RawPeer.open(sb, workerHello('raw-bundles'));
    await worker.frame('the welcome', (f) => f.type === 'welcome');
    worker.send({ type: 'getBundle', hash: 'a'.repeat(64) });
    const missing = await worker.frame('the refusal of an unknown bundle', (f) => f.type === 'bundleUnavailable');
    assert.equal(missing.error.code, 'SKYBATCH_E_NOT_FOUND');
    assert.equal(missing.hash, 'a'.repeat(64));
    worker.send({ type: 'getBundle', hash: '../../../pools/wire/token' });
    const pathLike = await worker.frame('the refusal of a path-like hash', (f) => f.type === 'error');
    assert.equal(pathLike.error.code, 'SKYBATCH_E_BAD_FRAME');
    assert.ok(!worker.frames.some((f) => f.type === 'bundle'));
    worker.close();
    const client = await RawPeer.open(sb, CLIENT_HELLO);
    const has = await client.request({ type: 'hasBundle', reqId: 1, hash: '../token' });
    assert.equal(has.ok, false);
    client.close();
    assert.ok(alive());
  });

  test('a batch report from a connection that does not hold the batch is refused and changes nothing', async () => {
    const release = path.join(sb.dir, 'release-fence');
    const script = sb.file(
      'fence.ts',
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, 'fence', 'out.jsonl'),
        pool: POOL,
        prelude: `import * as fs from 'node:fs';`,
        body: `${untilFileExists(release)}\n    ${SAVE}`,
      }),
    );
    const run = sb.run(script);
    const client = await connect();
    try {
      const jobId = await waitFor('the fence job to be submitted', async () => (await client.request({ type: 'status' })).jobs.find((j) => j.scriptPath === script)?.jobId);
      const [b0, b1] = await waitFor('batch 0 to run on local-0', async () => {
        const batches = await client.request({ type: 'batches', jobId });
        return batches[0].state === 'running' && batches[0].worker === 'local-0' ? batches : undefined;
      });
      // the intruder even takes the name of the worker that holds the batches
      const intruder = await RawPeer.open(sb, workerHello('local-0'));
      await intruder.frame('the welcome', (f) => f.type === 'welcome');
      const wireError = { code: 'SKYBATCH_E_MAPPER', message: 'made up', retryable: false };
      const reports = [
        { type: 'batchDone', jobId, index: 0, attempt: b0.attempt, items: 2 },
        { type: 'batchStarted', jobId, index: 1, attempt: b1.attempt },
        { type: 'batchFailed', jobId, index: 1, attempt: b1.attempt, error: wireError },
        { type: 'batchReleased', jobId, index: 0, attempt: b0.attempt },
        { type: 'jobFatal', jobId, error: wireError },
      ];
      for (const [i, r] of reports.entries()) {
        intruder.send(r);
        const refusal = await intruder.frame(`the refusal of ${r.type}`, (f) => f.type === 'error', i + 1);
        assert.equal(refusal.error.code, 'SKYBATCH_E_NOT_LEASED', JSON.stringify(refusal));
      }
      // the same reports, several to a frame: each is refused on its own
      const from = intruder.frames.length;
      intruder.send({ type: 'batchReports', jobId, reports: reports.slice(0, 4).map(({ jobId: _, ...r }) => r) });
      const refusals = await waitFor('four refusals of one batchReports frame', () => {
        const errors = intruder.frames.slice(from).filter((f) => f.type === 'error');
        return errors.length >= 4 ? errors : undefined;
      });
      assert.deepEqual(
        refusals.map((f: Frame) => [f.error.code, /^refused (\w+)/.exec(f.error.message)?.[1]]),
        reports.slice(0, 4).map((r) => ['SKYBATCH_E_NOT_LEASED', r.type]),
      );
      // and a malformed one is refused naming the report and field
      intruder.send({ type: 'batchReports', jobId, reports: [{ type: 'batchDone', index: 0, attempt: b0.attempt, items: 'two' }] });
      const bad = await intruder.frame('the refusal of a malformed batchReports frame', (f) => f.type === 'error', from + 4);
      assert.equal(bad.error.code, 'SKYBATCH_E_BAD_FRAME');
      assert.match(bad.error.message, /bad 'batchReports' message: reports\.0\.items: .*got "two"/);
      const after = await client.request({ type: 'batches', jobId });
      assert.equal(after[0].state, 'running');
      assert.equal(after[0].attempt, b0.attempt);
      assert.ok(['queued', 'running'].includes(after[1].state), after[1].state);
      assert.equal((await client.request({ type: 'subscribe', jobId }))?.status, 'RUNNING');
      intruder.close();
    } finally {
      client.close();
    }
    fs.writeFileSync(release, '');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'fence', 'out.jsonl')), [{ out: 't0' }, { out: 't1' }, { out: 't2' }, { out: 't3' }]);
  });
});
