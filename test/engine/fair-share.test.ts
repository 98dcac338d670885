import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import { Sandbox, jsonl, mapperScript, readJsonl, waitFor } from '../harness.js';

const LONG = 40;

interface Row {
  text: string;
  worker: string;
  from: number;
  to: number;
}

describe('several jobs on one pool', () => {
  const sb = new Sandbox('fair');
  after(() => sb.cleanup());

  test('a short job submitted after a long one runs beside it and finishes first', async () => {
    await sb.applyPool('fair', 'pool:\n  workers: 2\n');
    // Once the short job is done, the long one's batches stop sleeping: the test need not wait out its length.
    const gate = path.join(sb.dir, 'short-done');
    const script = (name: string, items: number, ms: number) => {
      sb.file(`${name}.jsonl`, jsonl(Array.from({ length: items }, (_, i) => ({ text: `${name}${i}` }))));
      return sb.file(
        `${name}.ts`,
        mapperScript({
          input: path.join(sb.dir, `${name}.jsonl`),
          output: path.join(sb.dir, `${name}.out.jsonl`),
          pool: 'fair',
          batchSize: 1,
          prelude: "import * as fs from 'node:fs';",
          body: `const from = Date.now(); if (!fs.existsSync(${JSON.stringify(gate)})) await new Promise((r) => setTimeout(r, ${ms})); await sky.saveResults(batch.map((x) => ({ text: x.text, worker: process.env.SKYBATCH_WORKER, from, to: Date.now() })));`,
        }),
      );
    };
    // long enough (40 batches of 1 s on 2 workers) that a loaded machine still starts and finishes the short job inside it
    const longScript = script('long', LONG, 1000);
    const shortScript = script('short', 3, 200);
    const c = sb.coordinator('fair');
    const client = await CoordinatorClient.connect(c.url, c.token);
    try {
      const longRun = sb.run(longScript);
      await waitFor('the long job to hold both workers', async () => {
        const s = await client.request({ type: 'status' });
        return s.workers.length === 2 && s.workers.every((w) => w.batches.length > 0) ? s : undefined;
      });
      await new Promise((r) => setTimeout(r, 1000)); // "a second apart", as the issue puts it
      // and the long job's batches are timed (1 s each): a worker moved to the short job gives back the long batch it has queued
      await waitFor('a few batches of the long job done', async () => ((await client.request({ type: 'status' })).jobs.find((j) => j.scriptPath.endsWith('long.ts'))?.batchesDone ?? 0) >= 4 || undefined, 30_000);
      const shortRun = sb.run(shortScript);
      const short = await shortRun;
      assert.equal(short.code, 0, short.stderr);
      const jobsNow = (await client.request({ type: 'status' })).jobs;
      const longJob = jobsNow.find((j) => j.scriptPath.endsWith('long.ts'))!;
      assert.notEqual(longJob.status, 'SUCCEEDED', 'the long job is still running when the short one has finished');
      assert.ok(longJob.batchesDone < longJob.batchesTotal);
      fs.writeFileSync(gate, '');
      const long = await longRun;
      assert.equal(long.code, 0, long.stderr);

      const longRows = readJsonl(path.join(sb.dir, 'long.out.jsonl')) as Row[];
      const shortRows = readJsonl(path.join(sb.dir, 'short.out.jsonl')) as Row[];
      assert.deepEqual(longRows.map((r) => r.text), Array.from({ length: LONG }, (_, i) => `long${i}`));
      assert.deepEqual(shortRows.map((r) => r.text), ['short0', 'short1', 'short2']);
      const shortFrom = Math.min(...shortRows.map((r) => r.from));
      const shortTo = Math.max(...shortRows.map((r) => r.to));
      const beside = longRows.filter((r) => r.from < shortTo && r.to > shortFrom);
      assert.ok(beside.length > 0, 'a batch of the long job ran while the short job ran: both made progress at once');
      assert.ok(Math.max(...longRows.map((r) => r.to)) > shortTo, 'the short job finished first');
      const overlapping = (a: Row, b: Row) => a.worker === b.worker && a.from < b.to && b.from < a.to;
      assert.ok(!longRows.some((l) => shortRows.some((s) => overlapping(l, s))), 'a worker runs one job at a time');
      const summaries = (await client.request({ type: 'status' })).jobs;
      const done = (suffix: string) => Date.parse(summaries.find((j) => j.scriptPath.endsWith(suffix))!.finishedAt!);
      assert.ok(done('short.ts') < done('long.ts'));
      // The worker that took the short job finished the long batch it was running, and did not
      // start the one it had queued: that went back to the long job.
      const submitted = Date.parse(summaries.find((j) => j.scriptPath.endsWith('short.ts'))!.createdAt);
      for (const w of new Set(shortRows.map((r) => r.worker))) {
        const first = Math.min(...shortRows.filter((r) => r.worker === w).map((r) => r.from));
        const between = longRows.filter((r) => r.worker === w && r.from > submitted && r.from < first);
        assert.deepEqual(between, [], `${w} started no long batch between the short job's submission and its first short batch`);
      }
    } finally {
      client.close();
    }
  });
});
