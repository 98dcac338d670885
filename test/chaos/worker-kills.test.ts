import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, mapperScript, waitFor } from '../harness.js';

const POOL = 'chaos';
const ITEMS = 3000;
// The mappers' sleeps alone keep the job running for at least ITEMS × 8 ms / 2 workers = 12 s, however fast
// the framework gets, so the kill loop below (one kill every 1.5 to 2.5 s) kills at least twice.

describe('chaos: workers die, the output does not change', () => {
  const sb = new Sandbox('chaos');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: ITEMS }, (_, i) => ({ text: `item-${i}`, n: i }))));
  });
  after(() => sb.cleanup());

  const job = (out: string) =>
    sb.file(
      `${out}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, out, 'out.jsonl'),
        pool: POOL,
        batchSize: 1,
        body: `await new Promise((r) => setTimeout(r, 8));
    await sky.saveResults(batch.map((x) => ({ text: String(x.text).split('').reverse().join(''), square: Number(x.n) ** 2 })));`,
      }),
    );

  test('SIGKILL of a random worker every ~2 s: output byte-identical to a fault-free run, no row lost or duplicated', async (t) => {
    const clean = await sb.run(job('clean'));
    assert.equal(clean.code, 0, clean.stderr);

    const run = sb.run(job('chaos'));
    let kills = 0;
    let done = false;
    void run.then(() => (done = true));
    await waitFor('the chaos job to start', () => fs.existsSync(path.join(sb.dir, 'chaos', '.sky_batch_tmp')) || done || undefined);
    while (!done) {
      await new Promise((r) => setTimeout(r, 1500 + Math.random() * 1000));
      const pids = sb.workerPids(POOL);
      if (done || pids.length === 0) continue;
      process.kill(pids[Math.floor(Math.random() * pids.length)], 'SIGKILL');
      kills++;
    }
    const r = await run;
    t.diagnostic(`${kills} workers killed during the job`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(kills >= 2, `only ${kills} kills happened; the job was too short to prove anything`);
    const a = fs.readFileSync(path.join(sb.dir, 'clean', 'out.jsonl'));
    const b = fs.readFileSync(path.join(sb.dir, 'chaos', 'out.jsonl'));
    assert.equal(b.toString().split('\n').length - 1, ITEMS);
    assert.ok(a.equals(b), 'the output differs from the fault-free run');
    assert.deepEqual(fs.readdirSync(path.join(sb.dir, 'chaos')), ['out.jsonl']);
  });
});
