import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, listFiles, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

const POOL = 'fail';
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `t${i}` }));
const doubled = (n: number) => rows(n).map((r) => ({ output: r.text + r.text }));
const DOUBLE = `await sky.saveResults(batch.map((x) => ({ output: String(x.text).repeat(2) })));`;

function jobLine(stdout: string): { jobId: string; status: string } {
  const m = /RESULT (\S+) (\S+)/.exec(stdout);
  assert.ok(m, `no RESULT line in:\n${stdout}`);
  return { jobId: m[1], status: m[2] };
}

describe('failures are handled and reported clearly', () => {
  const sb = new Sandbox('failures');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\nsetup: echo ran >> ../setup-count.txt\n');
    sb.file('in8.jsonl', jsonl(rows(8)));
  });
  after(() => sb.cleanup());

  test('a wrong result count names the job, the batch range and both lengths, and keeps finished batches', async () => {
    const script = sb.file(
      'count.ts',
      mapperScript({
        input: path.join(sb.dir, 'in8.jsonl'),
        output: path.join(sb.dir, 'count/out.jsonl'),
        pool: POOL,
        body: `const res = batch.map((x) => ({ output: x.text })); if (batch.some((x) => x.text === 't6')) res.pop(); await sky.saveResults(res);`,
      }),
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_RESULT_COUNT/);
    assert.match(r.stderr, /job (\d+)[^\n]*batch \[6, 7\][^\n]*got 1 results for 2 input items/);
    const jobId = /job (\d+) failed/.exec(r.stderr)![1];
    assert.match(r.stderr, new RegExp(`skybatch recover ${jobId}`));
    // nothing already written is lost: recover merges the finished batches in order
    const rec = await sb.cli(['recover', jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    const out = readJsonl(path.join(sb.dir, 'count/out.jsonl')) as { output: string }[];
    const got = out.map((o) => o.output);
    assert.ok(got.length >= 0 && got.every((t, i, a) => i === 0 || Number(t.slice(1)) > Number(a[i - 1].slice(1))), 'recovered rows are in index order');
    assert.ok(!got.includes('t6'));
    assert.deepEqual(listFiles(path.join(sb.dir, 'count')), ['out.jsonl'], 'recover cleans up temp files');
  });

  test('a mapper that throws before its first batch fails the job at once with its message and stack', async () => {
    const script = sb.file(
      'early.ts',
      mapperScript({ input: path.join(sb.dir, 'in8.jsonl'), output: path.join(sb.dir, 'early/out.jsonl'), pool: POOL, before: `throw new Error('model weights not found');`, body: DOUBLE }),
    );
    const t0 = Date.now();
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /model weights not found/);
    assert.match(r.stderr, /early\.ts:\d+/, 'the stack points into the user script');
    assert.ok(Date.now() - t0 < 15_000);
  });

  test('a mapper that throws after its first batch is retried with backoff and the job succeeds', async () => {
    const marker = path.join(sb.dir, 'flaky-marker');
    const script = sb.file(
      'flaky.ts',
      mapperScript({
        input: path.join(sb.dir, 'in8.jsonl'),
        output: path.join(sb.dir, 'flaky/out.jsonl'),
        pool: POOL,
        prelude: `import * as fs from 'node:fs';`,
        body: `if (batch[0].text === 't4' && !fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, 'x'); throw new Error('flaky GPU'); }\n    ${DOUBLE}`,
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /flaky GPU/);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'flaky/out.jsonl')), doubled(8));
    const { jobId } = jobLine(r.stdout);
    const q = await sb.cli(['jobs', 'queue']);
    assert.match(q.stdout, new RegExp(`^${jobId}\\s+${POOL}\\s+SUCCEEDED\\s+4/4`, 'm'));
  });

  test('a batch that keeps failing fails the job after 4 attempts, without holding up other batches', async () => {
    const script = sb.file(
      'poison.ts',
      mapperScript({
        input: path.join(sb.dir, 'in8.jsonl'),
        output: path.join(sb.dir, 'poison/out.jsonl'),
        pool: POOL,
        body: `console.log('mapping', batch[0].text); if (batch[0].text === 't2') throw new Error('poison row'); ${DOUBLE}`,
      }),
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_BATCH_FAILED/);
    assert.match(r.stderr, /batch \[2, 3\] failed 4 times; last error: Error: poison row/);
    const jobId = /job (\d+) failed/.exec(r.stderr)![1];
    const log = await sb.cli(['jobs', 'logs', jobId]);
    assert.equal((log.stdout.match(/batch \[2, 3\] attempt \d failed/g) ?? []).length, 4);
    assert.match(log.stdout, /\[local-\d\] mapping t0/, 'mapper output is in the job log');
    assert.doesNotMatch(log.stdout, /batch \[(0|4|6), \d\] attempt/, 'no other batch was charged for the poison one');
    // the other three batches finished and are recoverable
    assert.equal((await sb.cli(['recover', jobId])).code, 0);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'poison/out.jsonl')), doubled(8).filter((_, i) => i !== 2 && i !== 3));
  });

  test('a mapper that hangs is stopped after the batch timeout and its batch retried', async () => {
    const marker = path.join(sb.dir, 'hang-marker');
    const script = sb.file(
      'hang.ts',
      mapperScript({
        input: path.join(sb.dir, 'in8.jsonl'),
        output: path.join(sb.dir, 'hang/out.jsonl'),
        pool: POOL,
        prelude: `import * as fs from 'node:fs';`,
        body: `if (batch[0].text === 't2' && !fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, ''); await new Promise(() => {}); }\n    ${DOUBLE}`,
        extra: ', batchTimeoutMs: 1500',
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /batch \[2, 3\] ran longer than 1500 ms on worker local-\d \(attempt \d+\)/); // attempt 1 unless a slow mapper start on a loaded machine already used one
    assert.deepEqual(readJsonl(path.join(sb.dir, 'hang/out.jsonl')), doubled(8));
  });

  test('near the end of a job a straggling batch is copied to an idle worker; the first to finish wins', async () => {
    const marker = path.join(sb.dir, 'straggle-marker');
    sb.file('in10.jsonl', jsonl(rows(10)));
    const script = sb.file(
      'straggle.ts',
      mapperScript({
        input: path.join(sb.dir, 'in10.jsonl'),
        output: path.join(sb.dir, 'straggle/out.jsonl'),
        pool: POOL,
        batchSize: 1,
        prelude: `import * as fs from 'node:fs';`,
        body: `if (batch[0].text === 't9' && !fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, ''); await new Promise((r) => setTimeout(r, 20_000)); }\n    ${DOUBLE}`,
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'straggle/out.jsonl')), doubled(10));
    const jobId = jobLine(r.stdout).jobId;
    const log = (await sb.cli(['jobs', 'logs', jobId])).stdout;
    assert.match(log, /batch \[9, 9\] is straggling on local-\d; running a copy on local-\d, first to finish wins/);
    assert.doesNotMatch(log, /attempt \d+ failed/, 'the slow copy was not counted as a failure');
    assert.deepEqual(listFiles(path.join(sb.dir, 'straggle')), ['out.jsonl'], 'the losing copy left nothing behind');
  });

  test('malformed JSONL fails with the file and line', async () => {
    const bad = sb.file('bad.jsonl', '{"text": "a"}\n{"text": "b"}\n{"text": oops}\n{"text": "d"}\n');
    const script = sb.file('bad.ts', mapperScript({ input: bad, output: path.join(sb.dir, 'bad/out.jsonl'), pool: POOL, body: DOUBLE }));
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_MALFORMED_JSONL/);
    assert.ok(r.stderr.includes(`${bad} line 3:`), r.stderr);
  });

  test('a worker killed with SIGKILL mid-job has its batches re-dispatched; the output is complete', async () => {
    sb.file('in40.jsonl', jsonl(rows(40)));
    const script = sb.file(
      'slow.ts',
      mapperScript({
        input: path.join(sb.dir, 'in40.jsonl'),
        output: path.join(sb.dir, 'slow/out.jsonl'),
        pool: POOL,
        batchSize: 2,
        body: `await new Promise((r) => setTimeout(r, 100)); ${DOUBLE}`,
      }),
    );
    const before = sb.workerPids(POOL);
    assert.equal(before.length, 2);
    const run = sb.run(script);
    await waitFor('a job to be running', () => fs.existsSync(path.join(sb.dir, 'slow/.sky_batch_tmp')) || undefined);
    process.kill(before[0], 'SIGKILL');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'slow/out.jsonl')), doubled(40));
    // the local backend starts a replacement; setup does not run again in its folder
    await waitFor('a replacement worker', () => (sb.workerPids(POOL).length === 2 ? true : undefined));
    assert.equal(fs.readFileSync(path.join(sb.home, 'pools', POOL, 'workers', 'setup-count.txt'), 'utf8'), 'ran\nran\n');
  });

  test('cancel stops the job, keeps the pool, and recover merges what finished', async () => {
    const script = sb.file(
      'cancel.ts',
      mapperScript({
        input: path.join(sb.dir, 'in40.jsonl'),
        output: path.join(sb.dir, 'cancel/out.jsonl'),
        pool: POOL,
        batchSize: 1,
        before: `const fs = await import('node:fs');`,
        // the last items wait for a gate that never opens, so the job is still running when the cancel lands
        body: `if (batch.some((x) => x.text === 't38' || x.text === 't39')) { ${untilFileExists(path.join(sb.dir, 'cancel.never'))} }
    await new Promise((r) => setTimeout(r, 150)); ${DOUBLE}`,
        extra: ', stream: false',
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    const { jobId, status } = jobLine(r.stdout);
    assert.equal(status, 'PENDING', 'stream: false returns right after submission');
    await waitFor('a few batches', async () => {
      const q = await sb.cli(['jobs', 'queue']);
      const m = new RegExp(`^${jobId}\\s+\\S+\\s+RUNNING\\s+(\\d+)/40`, 'm').exec(q.stdout);
      return m && Number(m[1]) >= 3 ? true : undefined;
    });
    const c = await sb.cli(['jobs', 'cancel', jobId]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /CANCELLED/);
    const st = await sb.cli(['pool', 'status', POOL]);
    assert.match(st.stdout, /running, 2\/2 workers/);
    const rec = await sb.cli(['recover', jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    const out = readJsonl(path.join(sb.dir, 'cancel/out.jsonl')) as { output: string }[];
    assert.ok(out.length >= 3 && out.length < 40, `recovered ${out.length} rows`);
    assert.deepEqual(listFiles(path.join(sb.dir, 'cancel')), ['out.jsonl']);
  });

  test('a second job reuses the workers: setup ran once per worker', async () => {
    const countFile = path.join(sb.home, 'pools', POOL, 'workers', 'setup-count.txt');
    const runsBefore = fs.readFileSync(countFile, 'utf8');
    const script = sb.file('again.ts', mapperScript({ input: path.join(sb.dir, 'in8.jsonl'), output: path.join(sb.dir, 'again/out.jsonl'), pool: POOL, body: DOUBLE }));
    assert.equal((await sb.run(script)).code, 0);
    assert.equal((await sb.run(script)).code, 0);
    assert.equal(fs.readFileSync(countFile, 'utf8'), runsBefore);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'again/out.jsonl')), doubled(8));
  });
});
