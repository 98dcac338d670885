import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CoordinatorClient } from '../../runtime/client/connection.js';
import { type BatchEvent, Sandbox, alive, jsonl, pidsMatching, readJsonl, waitFor, within } from '../harness.js';

const POOL = 'lost';
const ITEMS = 16;
/** Far longer than the test: a lost batch that waited for a retry's backoff would hang it. */
const RETRY_BASE_MS = 600_000;

/**
 * A worker is lost while the others hold their credit (one batch running, one queued): its
 * batch does not wait behind their queued batches. One of them gives back the batch it has
 * not started, and runs the lost one in its place (runtime/coordinator/scheduler.ts
 * `askBacks`, `Rebalance.retriesWaiting`). For GPU-long batches that is a whole batch sooner.
 */
describe('a lost worker’s batch runs next, not behind the batches the others hold queued', () => {
  const sb = new Sandbox('lost-batch-first');
  const input = path.join(sb.dir, 'in.jsonl');
  const events: BatchEvent[] = [];
  const spawned: number[] = [];
  let client: CoordinatorClient;
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: ITEMS }, (_, i) => ({ i }))));
    client = await sb.watchBatches(POOL, events);
  });
  after(async () => {
    client?.close();
    for (const pid of spawned) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await sb.cleanup();
  });

  test('the lost batch takes the place of a batch queued on a survivor; every row is written once', async () => {
    // a worker outside the pool's own (the pool would start a new one in place of a lost one of its own)
    const c = sb.coordinator(POOL);
    const victim = sb.spawnCli(['worker', '--coordinator', c.url, '--name', 'ext-1', '--workdir', path.join(sb.dir, 'ext-1')], { env: { SKYBATCH_TOKEN: c.token } });
    spawned.push(victim.pid!);
    await waitFor('worker ext-1 to be ready', async () => (await sb.status(POOL)).workers.some((w) => w.name === 'ext-1' && w.state === 'idle') || undefined, 60_000);
    const out = path.join(sb.dir, 'out.jsonl');
    const script = sb.file(
      'slow.ts',
      `import * as sky from 'skybatch';
const slow = sky.remoteFunction(async function slow() {
  for await (const batch of sky.load()) {
    await new Promise((r) => setTimeout(r, 700)); // awaited, as a GPU call: the mapper hears the coordinator meanwhile
    await sky.saveResults(batch.map((x) => ({ i: x.i })));
  }
});
const job = await new sky.Dataset(new sky.JsonReader(${JSON.stringify(input)})).map(slow, {
  poolName: ${JSON.stringify(POOL)}, batchSize: 1, output: new sky.JsonWriter(${JSON.stringify(out)}), retryBaseMs: ${RETRY_BASE_MS},
});
console.log('RESULT', job.status, job.jobId);
`,
    );
    const run = sb.run(script);
    // every worker runs a batch and holds one queued behind it; ext-1 is killed while the batch
    // it runs is young (seen running less than 300 ms ago), so it cannot finish before the kill
    // however late the others started (under load they can start after ext-1's first batch)
    const seen = new Map<number, number>();
    const hit = await waitFor('a batch running on each worker, ext-1’s just started', () => {
      if (!['ext-1', 'local-0', 'local-1'].every((w) => events.some((e) => e.state === 'running' && e.worker === w))) return undefined;
      const now = new Map<number, BatchEvent>();
      for (const e of events) now.set(e.index, e);
      const current = [...now.values()].find((e) => e.state === 'running' && e.worker === 'ext-1');
      if (!current) return undefined;
      if (!seen.has(current.index)) seen.set(current.index, Date.now());
      return Date.now() - seen.get(current.index)! < 300 ? current : undefined;
    }, 60_000).catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(events.slice(0, 40))}`); });
    const atKill = events.length;
    for (const p of [victim.pid!, ...pidsMatching('', [victim.pid!])]) if (alive(p)) process.kill(p, 'SIGKILL');

    const r = await within(run, 90_000);
    assert.ok(r, 'the job hangs');
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT SUCCEEDED (\d+)/.exec(r.stdout)?.[1];
    assert.ok(jobId, r.stdout);
    assert.deepEqual((readJsonl(out) as { i: number }[]).map((x) => x.i), Array.from({ length: ITEMS }, (_, i) => i), 'every row once, in order');

    const mine = events.filter((e) => e.jobId === jobId);
    const story = mine.filter((e) => e.index === hit.index);
    const rerun = story.find((e) => e.state === 'running' && e.attempt !== hit.attempt);
    assert.ok(rerun, `batch ${hit.index} ran again: ${JSON.stringify(story)}`);
    assert.notEqual(rerun.worker, 'ext-1');
    assert.equal(story.find((e) => e.state === 'retrying')?.error?.code, 'SKYBATCH_E_WORKER_LOST');

    // what the worker that ran it again held queued, unstarted, when ext-1 was killed
    const last = new Map<number, BatchEvent>();
    for (const e of events.slice(0, atKill)) if (e.jobId === jobId) last.set(e.index, e);
    const queued = [...last.values()].filter((e) => e.state === 'queued' && e.worker === rerun.worker).map((e) => e.index);
    assert.ok(queued.length > 0, `${rerun.worker} held a batch queued at the kill: ${JSON.stringify(events.slice(0, atKill))}`);
    const rerunAt = mine.indexOf(rerun);
    for (const q of queued) {
      const started = mine.findIndex((e) => e.index === q && e.state === 'running');
      assert.ok(started > rerunAt, `batch ${q}, queued on ${rerun.worker} at the kill, started after the lost batch ${hit.index}, not before it`);
      assert.ok(mine.some((e) => e.index === q && e.state === 'pending' && e.attempt > 0), `batch ${q} was given back`);
      assert.equal(mine.filter((e) => e.index === q && e.state === 'done').length, 1, `batch ${q} ran once`);
    }
  });
});
