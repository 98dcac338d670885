import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEBIAN_PYTHON_PATH, pythonMappers } from '../engine/python-harness.js';
import { Sandbox, jsonl, waitFor } from '../harness.js';

const POOL = 'pychaos';
const ITEMS = 1500;
// The mappers' sleeps alone keep the job running for at least ITEMS × 12 ms / 2 workers = 9 s, however fast
// the framework gets, so the kill loop below (one kill every 1.5 to 2.5 s) kills at least twice.

function parentOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

describe('chaos: workers die during a Python job, the output does not change', () => {
  const sb = new Sandbox('pychaos');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n', DEBIAN_PYTHON_PATH);
    sb.file('in.jsonl', jsonl(Array.from({ length: ITEMS }, (_, i) => ({ text: `item-${i}`, n: i }))));
    sb.file(
      'reverse.py',
      `import skybatch as sky

@sky.batch.remote_function
def reverse():
    import time
    for batch in sky.batch.load():
        time.sleep(0.012)
        sky.batch.save_results([{"text": item["text"][::-1], "square": item["n"] ** 2} for item in batch])
`,
    );
  });
  after(() => sb.cleanup());

  test('SIGKILL of a random worker every ~2 s: every row exactly once, in order; no Python process outlives its worker', async (t) => {
    const script = sb.file(
      'reverse.ts',
      `import * as sky from 'skybatch';
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}));
const job = await ds.map(sky.pythonFunction('reverse.py', 'reverse'), { poolName: ${JSON.stringify(POOL)}, batchSize: 1, retryBaseMs: 50, output: new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'out', 'out.jsonl'))}) });
console.log('RESULT', job.jobId, job.status);
`,
    );
    const run = sb.run(script);
    let kills = 0;
    let done = false;
    const orphaned = new Set<number>();
    void run.then(() => (done = true));
    await waitFor('the Python job to start', () => fs.existsSync(path.join(sb.dir, 'out', '.sky_batch_tmp')) || done || undefined, 60_000);
    while (!done) {
      await new Promise((r) => setTimeout(r, 1500 + Math.random() * 1000));
      const pids = sb.workerPids(POOL);
      if (done || pids.length === 0) continue;
      const victim = pids[Math.floor(Math.random() * pids.length)];
      // its Python mapper: worker agent → mapper process → python
      for (const py of pythonMappers(sb.home)) if (parentOf(parentOf(py) ?? 0) === victim) orphaned.add(py);
      process.kill(victim, 'SIGKILL');
      kills++;
    }
    const r = await run;
    t.diagnostic(`${kills} workers killed during the job`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(kills >= 2, `only ${kills} kills happened; the job was too short to prove anything`);
    const want = Array.from({ length: ITEMS }, (_, n) => JSON.stringify({ text: `item-${n}`.split('').reverse().join(''), square: n * n }) + '\n').join('');
    assert.equal(fs.readFileSync(path.join(sb.dir, 'out', 'out.jsonl'), 'utf8'), want);
    assert.deepEqual(fs.readdirSync(path.join(sb.dir, 'out')), ['out.jsonl']);
    // A killed worker's mapper process exits when its agent's channel closes; its Python goes with it.
    assert.ok(orphaned.size >= 1, 'no killed worker had a Python mapper running');
    await waitFor('no Python mapper process to be left over', () => pythonMappers(sb.home).length === 0 || undefined, 15_000);
  });
});
