import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CoordinatorClient } from '../../runtime/client/connection.js';
import { type BatchEvent, Result, Sandbox, alive, jsonl, pidsMatching, readJsonl, waitFor, within } from '../harness.js';

const POOL = 'silent';
const ITEMS = 300;
/** Far longer than any deadline here: a batch that waited for a retry's backoff would fail the test. */
const RETRY_BASE_MS = 600_000;

/**
 * A TCP relay between a worker and the coordinator that can be cut like a network
 * partition: from then on nothing passes either way and no close is passed on, so the
 * coordinator's side of the connection stays open; new connections are taken and never
 * answered.
 */
async function partitionable(target: URL): Promise<{ port: number; cut(): void; close(): void }> {
  let cut = false;
  const sockets = new Set<net.Socket>();
  const keep = (s: net.Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    return s;
  };
  const server = net.createServer((a) => {
    keep(a);
    if (cut) return;
    const b = keep(net.connect(Number(target.port), target.hostname));
    for (const [from, to] of [[a, b], [b, a]]) {
      from.on('data', (d) => !cut && to.write(d));
      from.on('end', () => !cut && to.end());
      from.on('close', () => !cut && to.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => (cut = true),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('a worker that goes silent without closing its connection (frozen or partitioned)', () => {
  const sb = new Sandbox('silent-worker');
  const input = path.join(sb.dir, 'in.jsonl');
  const log = () => fs.readFileSync(path.join(sb.home, 'pools', POOL, 'coordinator.log'), 'utf8');
  let client: CoordinatorClient;
  const events: BatchEvent[] = [];
  const stopped: number[] = [];
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: ITEMS }, (_, i) => ({ text: `t${i}` }))));
    client = await sb.watchBatches(POOL, events);
  });
  after(async () => {
    client?.close();
    for (const pid of stopped) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await sb.cleanup();
  });

  /**
   * Batches of 100 ms each until `gate` exists, then instant (the rest of the job proves
   * nothing); on worker `victim` the first batch never ends, so the worker is sure to be
   * silenced while it runs one.
   */
  const script = (name: string, gate: string, victim: string) =>
    sb.file(
      `${name}.ts`,
      `import * as fs from 'node:fs';
import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    if (process.env.SKYBATCH_WORKER === ${JSON.stringify(victim)}) await new Promise(() => {});
    if (!fs.existsSync(${JSON.stringify(gate)})) await new Promise((r) => setTimeout(r, 100));
    await sky.saveResults(batch.map((x) => ({ out: x.text })));
  }
});
const job = await new sky.Dataset(new sky.JsonReader(${JSON.stringify(input)})).map(mapper, {
  poolName: ${JSON.stringify(POOL)}, batchSize: 1, output: new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, name, 'out.jsonl'))}), retryBaseMs: ${RETRY_BASE_MS},
});
console.log('RESULT', job.jobId, job.status);
`,
    );

  /**
   * Runs a job, silences `victim` (by `silence`) as soon as a batch runs on it, and checks
   * that this batch runs again on another worker with no retry backoff (the job's is ten
   * minutes), that the output is exact, and what happened to the batch, in order.
   */
  async function silenceDuringJob(name: string, victim: string, silence: () => void): Promise<void> {
    const gate = path.join(sb.dir, `${name}.gate`);
    const from = events.length;
    const run: Promise<Result> = sb.run(script(name, gate, victim));
    let hit: BatchEvent | undefined;
    try {
      hit = await waitFor(`a batch running on ${victim}`, () => events.slice(from).find((e) => e.state === 'running' && e.worker === victim), 60_000);
      silence();
      const again = await waitFor(
        `batch ${hit.index} to run again elsewhere`,
        () => events.slice(from).find((e) => e.index === hit!.index && e.state === 'running' && e.attempt !== hit!.attempt),
        60_000,
      );
      assert.notEqual(again.worker, victim);
    } finally {
      fs.writeFileSync(gate, '');
    }
    const r = await within(run, 90_000);
    assert.ok(r, 'the job hangs');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT \S+ SUCCEEDED/);
    assert.deepEqual(
      (readJsonl(path.join(sb.dir, name, 'out.jsonl')) as { out: string }[]).map((o) => o.out),
      Array.from({ length: ITEMS }, (_, i) => `t${i}`),
    );
    const mine = events.slice(from).filter((e) => e.index === hit!.index);
    const story = mine.slice(mine.indexOf(hit!)).map((e) => [e.state, e.worker === victim ? 'victim' : e.worker === undefined ? '-' : 'other', e.attempt === hit!.attempt ? 'lost' : 'new']);
    assert.deepEqual(story, [
      ['running', 'victim', 'lost'],
      ['retrying', '-', 'lost'],
      ['queued', 'other', 'new'],
      ['running', 'other', 'new'],
      ['done', 'other', 'new'],
    ]);
    assert.equal(mine.find((e) => e.state === 'retrying')?.error?.code, 'SKYBATCH_E_WORKER_LOST');
    assert.match(log(), new RegExp(`worker ${victim} left \\(code 1006\\)`), 'dropped by the heartbeat, not by a closed socket');
  }

  test('a frozen worker (SIGSTOP of its agent and its mapper): its running batch goes to another worker without waiting for a retry backoff', async () => {
    const agent = sb.workerPids(POOL).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').includes('--name local-1 '));
    assert.ok(agent, 'no agent process for local-1');
    const frozen: number[] = [];
    try {
      await silenceDuringJob('frozen', 'local-1', () => {
        frozen.push(agent, ...pidsMatching('', [agent]));
        for (const p of frozen) process.kill(p, 'SIGSTOP');
      });
    } finally {
      for (const p of frozen) if (alive(p)) process.kill(p, 'SIGCONT');
    }
  });

  test('a partitioned worker (nothing passes, no socket closes): its running batch goes to another worker without waiting for a retry backoff', async () => {
    const c = sb.coordinator(POOL);
    const relay = await partitionable(new URL(c.url));
    const worker = sb.spawnCli(['worker', '--coordinator', `ws://127.0.0.1:${relay.port}`, '--name', 'cut-1', '--workdir', path.join(sb.dir, 'cut-1')], { env: { SKYBATCH_TOKEN: c.token } });
    try {
      await waitFor('worker cut-1 to be ready', async () => (await sb.status(POOL)).workers.some((w) => w.name === 'cut-1' && w.state === 'idle') || undefined, 60_000);
      await silenceDuringJob('partitioned', 'cut-1', () => relay.cut());
    } finally {
      stopped.push(...pidsMatching('', [worker.pid!]));
      worker.kill('SIGKILL');
      relay.close();
    }
  });

  test('a worker whose mapper runs synchronously past the heartbeat window is not dropped: its agent answers the pings', async () => {
    const before = log().match(/ left \(code/g)?.length ?? 0;
    const from = events.length;
    const r = await sb.run(
      sb.file(
        'busy.ts',
        `import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    const until = Date.now() + 5000; // longer than three missed heartbeats (3-4 s)
    while (Date.now() < until);
    await sky.saveResults(batch.map((x) => ({ out: x.text })));
  }
});
const job = await new sky.Dataset(new sky.JsonReader(${JSON.stringify(sb.file('one.jsonl', jsonl([{ text: 't0' }])))})).map(mapper, {
  poolName: ${JSON.stringify(POOL)}, batchSize: 1, output: new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'busy', 'out.jsonl'))}),
});
console.log('RESULT', job.jobId, job.status);
`,
      ),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((readJsonl(path.join(sb.dir, 'busy', 'out.jsonl')) as { out: string }[]).map((o) => o.out), ['t0']);
    assert.deepEqual(events.slice(from).filter((e) => e.state === 'retrying' || e.state === 'failed'), []);
    assert.equal(log().match(/ left \(code/g)?.length ?? 0, before, 'no worker left during the job');
  });
});
