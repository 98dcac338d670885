import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import type { PoolSummary } from '../../runtime/protocol.js';
import { Sandbox, jsonl, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

describe('an autoscaled pool', () => {
  const sb = new Sandbox('autoscale');
  after(() => sb.cleanup());

  test('grows from zero with a job’s backlog up to max, shrinks after the idle delay, and lets a long batch finish', async () => {
    const applied = await sb.applyPool('auto', 'pool:\n  workers: { min: 0, max: 3 }\n  idle_delay: 2s\n');
    assert.match(applied.stdout, /0\/0 workers ready/);
    const gate = path.join(sb.dir, 'gate');
    const items = [...Array.from({ length: 11 }, (_, i) => `q${i}`), 'slow'];
    sb.file('in.jsonl', jsonl(items.map((text) => ({ text }))));
    const script = sb.file(
      'job.ts',
      mapperScript({
        prelude: "import * as fs from 'node:fs';",
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, 'out.jsonl'),
        pool: 'auto',
        batchSize: 1,
        body: `if (batch[0].text === 'slow') { ${untilFileExists(gate)} } else await new Promise((r) => setTimeout(r, 300));
    await sky.saveResults(batch.map((x) => ({ text: x.text, worker: process.env.SKYBATCH_WORKER })));`,
      }),
    );
    const c = sb.coordinator('auto');
    const client = await CoordinatorClient.connect(c.url, c.token);
    let most = 0;
    const status = async (): Promise<PoolSummary> => {
      const s = await client.request({ type: 'status' });
      most = Math.max(most, s.backend!.workers.length, s.workers.filter((w) => w.state !== 'gone').length);
      return s;
    };
    try {
      const idle = await status();
      assert.equal(idle.workers.length, 0);
      assert.deepEqual([idle.autoscale?.min, idle.autoscale?.max, idle.autoscale?.wanted], [0, 3, 0]);
      assert.match(idle.autoscale!.reason, /at min 0: nothing to run/);

      const run = sb.run(script);
      const grown = await waitFor('the pool to grow to max with the backlog', async () => {
        const s = await status();
        return s.workers.filter((w) => w.state === 'busy' || w.state === 'idle').length === 3 ? s : undefined;
      }, 60_000);
      assert.equal(grown.workersWanted, 3);
      // The slow batch may also get a straggler's copy on an idle worker (it runs past 3 times
      // the median batch): then two workers hold it, and the pool keeps both.
      const holders = (s: PoolSummary) => s.workers.filter((w) => w.batches.some(([start]) => start === 11)).map((w) => w.name).sort();
      const { shrinking, slow } = await waitFor('the scale-down to fire while the slow batch runs', async () => {
        const s = await status();
        const h = holders(s);
        const job = s.jobs[0];
        const done = job?.batchesDone === 11 && h.length > 0 && h.length < 3 && s.autoscale?.wanted === h.length && s.backend!.workers.length === h.length;
        return done ? { shrinking: s, slow: h } : undefined;
      }, 60_000).catch(async (err: Error) => {
        throw new Error(`${err.message}; status: ${JSON.stringify(await status())}`);
      });
      assert.match(shrinking.autoscale!.reason, new RegExp(`${slow.length} worker\\(s\\) busy`));
      assert.deepEqual(shrinking.backend!.workers.map((w) => w.name).sort(), slow, 'the idle workers went; those holding a batch stayed');
      fs.writeFileSync(gate, '');
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      const out = readJsonl(path.join(sb.dir, 'out.jsonl')) as { text: string; worker: string }[];
      assert.deepEqual(out.map((x) => x.text), items, 'exact output, the long batch published');
      assert.ok(slow.includes(out[11].worker), `${out[11].worker} held the slow batch`);
      const job = (await status()).jobs[0];
      assert.equal(job.retries, 0, 'no batch was lost to the scale-down');
      const empty = await waitFor('the pool to shrink back to zero', async () => {
        const s = await status();
        return s.backend!.workers.length === 0 && sb.workerPids('auto').length === 0 ? s : undefined;
      }, 30_000);
      assert.match(empty.autoscale!.reason, /at min 0|shrinking to 0/);
      assert.equal(most, 3, 'never more than max');
      const log = fs.readFileSync(path.join(sb.home, 'pools', 'auto', 'coordinator.log'), 'utf8');
      assert.match(log, /autoscaling from 0 to 3 worker\(s\): growing to 3 \(max 3\)/);
    } finally {
      client.close();
    }
  });
});
