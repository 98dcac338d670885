import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CoordinatorClient } from '../../runtime/client/connection.js';
import { type BatchEvent, Sandbox, jsonl, readJsonl } from '../harness.js';

/**
 * The end of a job whose batches take uneven time: a worker that has nothing left to do gets
 * the batches another worker holds queued behind a long one, instead of waiting while they
 * wait (runtime/coordinator/scheduler.ts `askBacks`, `Rebalance.askBack`).
 */
describe('the tail of a job: batches queued behind a long one are given back to an idle worker', () => {
  const sb = new Sandbox('tail-give-back');
  const input = path.join(sb.dir, 'in.jsonl');
  const events: BatchEvent[] = [];
  let client: CoordinatorClient;
  before(async () => {
    await sb.applyPool('tail', 'pool:\n  workers: 2\n');
    fs.writeFileSync(input, jsonl(Array.from({ length: 8 }, (_, i) => ({ i }))));
    client = await sb.watchBatches('tail', events);
  });
  after(async () => {
    client?.close();
    await sb.cleanup();
  });

  test('no batch waits behind the long one, each row is written once, and no mapper is restarted', async () => {
    const out = path.join(sb.dir, 'out.jsonl');
    // Item 0 takes 1.5 s (under the 2 s after which a straggler gets a copy), the others 100 ms,
    // awaited (a GPU call): the mapper process hears the coordinator while batch 0 runs.
    const script = sb.file(
      'uneven.ts',
      `import * as sky from 'skybatch';
const uneven = sky.remoteFunction(async function uneven() {
  for await (const batch of sky.load()) {
    await new Promise((r) => setTimeout(r, batch[0].i === 0 ? 1500 : 100));
    await sky.saveResults(batch.map((x) => ({ i: x.i, pid: process.pid })));
  }
});
const job = await new sky.Dataset(new sky.JsonReader(${JSON.stringify(input)})).map(uneven, { poolName: 'tail', batchSize: 1, output: new sky.JsonWriter(${JSON.stringify(out)}) });
console.log('RESULT', job.status, job.jobId);
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT SUCCEEDED (\d+)/.exec(r.stdout)?.[1];
    assert.ok(jobId, r.stdout);
    const rows = readJsonl(out) as { i: number; pid: number }[];
    assert.deepEqual(rows.map((x) => x.i), [0, 1, 2, 3, 4, 5, 6, 7], 'every row once, in order');
    assert.equal(new Set(rows.map((x) => x.pid)).size, 2, 'two mapper processes did it all: none was stopped');

    const mine = events.filter((e) => e.jobId === jobId);
    const doneAt = new Map(mine.map((e, k) => [e, k]).filter(([e]) => (e as BatchEvent).state === 'done').map(([e, k]) => [(e as BatchEvent).index, k as number]));
    const long = doneAt.get(0)!;
    for (let i = 1; i < 8; i++) assert.ok(doneAt.get(i)! < long, `batch ${i} was done before the long batch 0, not queued behind it`);
    const givenBack = mine.filter((e) => e.state === 'pending' && e.attempt > 0);
    assert.ok(givenBack.length >= 1, 'a batch queued behind batch 0 was given back');
    for (const g of givenBack) {
      const ran = mine.filter((e) => e.index === g.index && e.state === 'done');
      assert.equal(ran.length, 1, `batch ${g.index} ran once after it was given back`);
      const queued = mine.find((e) => e.index === g.index && e.state === 'queued' && e.attempt === g.attempt)!;
      assert.notEqual(ran[0].worker, queued.worker, `batch ${g.index} ran on the worker that had nothing to do`);
    }
  });
});
