import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, alive, within, jsonl, listFiles, mapperScript, pidsMatching, waitFor } from '../harness.js';

const POOL = 'frozen';
const ITEMS = 750;
// The mappers' sleeps alone keep the job running for at least ITEMS / 3 × 90 ms / 2 workers = 11 s, however
// fast the framework gets, so the freeze loop below (one every 2.5 to 3.5 s) freezes at least twice.

describe('chaos: mappers freeze, the output does not change', () => {
  const sb = new Sandbox('frozen');
  const stopped: number[] = [];
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: ITEMS }, (_, i) => ({ text: `item-${i}`, n: i }))));
  });
  after(async () => {
    for (const pid of stopped) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await sb.cleanup();
  });

  const job = (out: string) =>
    sb.file(
      `${out}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, out, 'out.jsonl'),
        pool: POOL,
        batchSize: 3,
        body: `await new Promise((r) => setTimeout(r, 90));
    await sky.saveResults(batch.map((x) => ({ text: String(x.text).split('').reverse().join(''), square: Number(x.n) ** 2 })));`,
        extra: ', batchTimeoutMs: 2000',
      }),
    );

  test('SIGSTOP of a random mapper process every ~3 s (alive, frozen, its agent still answering): output byte-identical to a fault-free run', async (t) => {
    const clean = await sb.run(job('clean'));
    assert.equal(clean.code, 0, clean.stderr);

    const run = sb.run(job('chaos'));
    let done = false;
    void run.then(() => (done = true));
    await waitFor('the chaos job to start', () => fs.existsSync(path.join(sb.dir, 'chaos', '.sky_batch_tmp')) || done || undefined);
    const deadline = Date.now() + 120_000;
    while (!done && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2500 + Math.random() * 1000));
      const mappers = pidsMatching('mapper-process.js', sb.workerPids(POOL)).filter((p) => !stopped.includes(p));
      if (done || mappers.length === 0) continue;
      const pid = mappers[Math.floor(Math.random() * mappers.length)];
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
    }
    const r = await within(run, Math.max(0, deadline - Date.now()));
    t.diagnostic(`${stopped.length} mappers frozen during the job`);
    assert.ok(r, 'the job hangs');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(stopped.length >= 2, `only ${stopped.length} mappers were frozen; the job was too short to prove anything`);
    const a = fs.readFileSync(path.join(sb.dir, 'clean', 'out.jsonl'));
    const b = fs.readFileSync(path.join(sb.dir, 'chaos', 'out.jsonl'));
    assert.equal(b.toString().split('\n').length - 1, ITEMS);
    assert.ok(a.equals(b), 'the output differs from the fault-free run');
    const chaos = path.join(sb.dir, 'chaos');
    const left = fs.readdirSync(chaos);
    if (left.length !== 1) {
      // what stayed behind and when it was written, and what the job logged
      for (const f of listFiles(chaos)) t.diagnostic(`left: ${f}, written ${Date.now() - fs.statSync(path.join(chaos, f)).mtimeMs} ms before the check`);
      for (const id of fs.readdirSync(path.join(sb.home, 'jobs'))) t.diagnostic(`job ${id} log tail:\n${tail(path.join(sb.home, 'jobs', id, 'job.log'), 40)}`);
    }
    assert.deepEqual(left, ['out.jsonl']);
    // every frozen mapper was killed by its agent (at its batch's timeout, or as a zombie when the job ended)
    await waitFor('the frozen mappers to be killed', () => stopped.every((p) => !alive(p)) || undefined, 45_000);
  });
});

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(${(err as Error).message})`;
  }
}
