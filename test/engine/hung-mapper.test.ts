import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, alive, jsonl, mapperScript, pidsMatching, readJsonl, waitFor, within } from '../harness.js';

const POOL = 'hung';
const N = 12;
const rows = Array.from({ length: N }, (_, i) => ({ text: `t${i}` }));
const doubled = rows.map((r) => ({ output: r.text + r.text }));
const DOUBLE = `await sky.saveResults(batch.map((x) => ({ output: String(x.text).repeat(2) })));`;
/** A child the spinning mapper starts, told apart by its unusual argument. */
const SLEEP = 987658;

describe('a frozen mapper never holds a job', () => {
  const sb = new Sandbox('hung');
  const stopped: number[] = [];
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(async () => {
    const spinner = path.join(sb.dir, 'spin.marker');
    if (fs.existsSync(spinner)) stopped.push(Number(fs.readFileSync(spinner, 'utf8')));
    stopped.push(...pidsMatching(`sleep\u0000${SLEEP}`));
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sb.cleanup();
  });

  const script = (name: string, body: string) =>
    sb.file(
      `${name}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, name, 'out.jsonl'),
        pool: POOL,
        batchSize: 1,
        prelude: `import * as fs from 'node:fs';\nimport { spawn } from 'node:child_process';`,
        body,
        extra: ', batchTimeoutMs: 3000',
      }),
    );

  test('a mapper stopped with SIGSTOP while it holds a prefetched batch: the job completes with the exact output and the frozen mapper is killed', async () => {
    const pidFile = path.join(sb.dir, 'stop.pid');
    const s = script(
      'sigstop',
      `await new Promise((r) => setTimeout(r, 30));
    if (batch[0].text === 't3' && !fs.existsSync(${JSON.stringify(pidFile)})) { fs.writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); await new Promise((r) => setTimeout(r, 60_000)); }
    ${DOUBLE}`,
    );
    const run = sb.run(s);
    const pid = await waitFor('the mapper to take t3', () => (fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8') ? Number(fs.readFileSync(pidFile, 'utf8')) : undefined));
    process.kill(pid, 'SIGSTOP');
    stopped.push(pid);
    const r = await within(run, 60_000);
    assert.ok(r, 'the job hangs: a batch held by the frozen mapper was never taken back');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'sigstop', 'out.jsonl')), doubled);
    await waitFor('the frozen mapper process to be killed', () => !alive(pid) || undefined, 15_000);
  });

  test('a mapper that spins synchronously between batches: its prefetched batch is reclaimed, the job completes, the worker is useful again', async () => {
    const marker = path.join(sb.dir, 'spin.marker');
    const s = script(
      'spin',
      `await new Promise((r) => setTimeout(r, 30));
    ${DOUBLE}
    if (batch[0].text === 't3' && !fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, String(process.pid)); spawn('sleep', ['${SLEEP}'], { stdio: 'ignore' }); for (;;) {} }`,
    );
    const run = sb.run(s);
    const r = await within(run, 60_000);
    assert.ok(r, 'the job hangs on the batch prefetched behind the spinning mapper');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'spin', 'out.jsonl')), doubled);
    const pid = Number(fs.readFileSync(marker, 'utf8'));
    await waitFor('the spinning mapper process to be killed', () => !alive(pid) || undefined, 15_000);
    await waitFor('the process it started to be killed with it', () => pidsMatching(`sleep\u0000${SLEEP}`).length === 0 || undefined, 5_000);
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    const log = (await sb.cli(['jobs', 'logs', jobId])).stdout;
    // Taken back either by the stall check (no batch started within batchTimeoutMs) or, when the
    // other worker finishes the rest first, by the straggler copy of the spinning batch winning;
    // both give the queued batches back uncharged (scheduler.test.ts covers the stall check alone).
    assert.match(log, /did not start batch \[\d+, \d+\] within 3000 ms|was waiting on local-\d behind a mapper that is being stopped; given back/);
    assert.doesNotMatch(log, /attempt \d+ failed/, 'a batch that never started is not charged');

    // both workers take batches of the next job: the one whose mapper hung got a fresh mapper
    const who = sb.file(
      'who.ts',
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, 'who', 'out.jsonl'),
        pool: POOL,
        batchSize: 1,
        body: `await new Promise((r) => setTimeout(r, 100)); await sky.saveResults(batch.map(() => ({ worker: process.env.SKYBATCH_WORKER })));`,
      }),
    );
    const again = await sb.run(who);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(new Set((readJsonl(path.join(sb.dir, 'who', 'out.jsonl')) as { worker: string }[]).map((o) => o.worker)), new Set(['local-0', 'local-1']));
  });
});
