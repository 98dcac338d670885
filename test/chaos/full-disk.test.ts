import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, alive, jsonl, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';
import { ROOT, fill, mountTmpfs, unmount } from '../tmpfs.js';

const POOL = 'fulldisk';
const N = 20;
const rows = Array.from({ length: N }, (_, i) => ({ text: `t${i}`, n: i }));
const expected = rows.map((r) => ({ out: r.text.toUpperCase() }));
const many = Array.from({ length: 400 }, (_, i) => ({ text: `m${i}`, n: i }));

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function commits(home: string, jobId: string): number {
  try {
    return fs.readFileSync(path.join(home, 'jobs', jobId, 'journal.jsonl'), 'utf8').split('\n').filter((l) => l.startsWith('{"e":"commit"')).length;
  } catch {
    return 0;
  }
}

describe('a full disk loses no output', { skip: ROOT ? false : 'mounting a tmpfs needs root' }, () => {
  const sb = new Sandbox('fulldisk');
  // its SKYBATCH_HOME is a tmpfs of its own, mounted before its pool starts
  const home = new Sandbox('fulldisk-home');
  const mounts: string[] = [];
  const jobs = (box = sb) => (fs.existsSync(path.join(box.home, 'jobs')) ? fs.readdirSync(path.join(box.home, 'jobs')) : []);
  const script = (name: string, out: string, gate: string, input = 'in.jsonl', batchSize = 2, box = sb) =>
    box.file(
      `${name}.ts`,
      mapperScript({
        batchSize,
        input: path.join(box.dir, input),
        output: path.join(out, 'out.jsonl'),
        pool: POOL,
        prelude: `import * as fs from 'node:fs';`,
        body: `if (Number(batch[0].n) >= 4) { ${untilFileExists(gate)} }
    await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));`,
      }),
    );
  before(async () => {
    sb.file('in.jsonl', jsonl(rows));
    await sb.applyPool(POOL, 'pool:\n  workers: 1\n');
    home.file('many.jsonl', jsonl(many));
  });
  after(async () => {
    // cleanup stops each sandbox's processes, then fails to remove a mount point: unmounted below, then removed
    for (const box of [sb, home]) await box.cleanup().catch(() => {});
    for (const m of mounts) unmount(m);
    for (const box of [sb, home]) fs.rmSync(path.dirname(box.home), { recursive: true, force: true });
  });

  test('an output folder that fills up fails the job naming the file each batch could not write; once there is room, resume completes it', async () => {
    const out = path.join(sb.dir, 'full-out');
    mountTmpfs(out, '2m');
    mounts.push(out);
    const gate = path.join(sb.dir, 'out.gate');
    const known = new Set(jobs());
    const run = sb.run(script('out', out, gate));
    const jobId = await waitFor('the job to start', () => jobs().find((id) => !known.has(id)));
    await waitFor('two batches to commit', () => commits(sb.home, jobId) >= 2 || undefined);
    const filler = fill(out);
    fs.writeFileSync(gate, '');
    const r = await run;
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /SKYBATCH_E_BATCH_FAILED/);
    assert.match(r.stderr, new RegExp(`skybatch recover ${jobId}`));
    // each failure names the file of its own batch and attempt: a batch that only waited behind the
    // one whose write failed is given back, not charged with that failure
    const failures = [...r.stderr.matchAll(/batch \[(\d+), (\d+)\] attempt (\d+) failed[^:]*: (\S+): disk full while trying to write/g)];
    assert.ok(failures.length >= 4, r.stderr);
    for (const [line, s, e, a, file] of failures) {
      assert.ok(file.startsWith(path.join(out, '.sky_batch_tmp', jobId) + '/'), line);
      assert.equal(path.basename(file), `batch_${s.padStart(12, '0')}_${e.padStart(12, '0')}.a${a}.jsonl`, line);
    }
    assert.ok(!fs.existsSync(path.join(out, 'out.jsonl')), 'a job that failed published its output');
    fs.rmSync(filler);
    const res = await sb.cli(['jobs', 'resume', jobId]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(readJsonl(path.join(out, 'out.jsonl')), expected);
  });

  test('an output folder with room for the batch files but not for the merged output fails the reduce naming the file and keeps the batches; recover publishes them once there is room', async () => {
    const out = path.join(sb.dir, 'merge-out');
    mountTmpfs(out, '2m');
    mounts.push(out);
    // 100 rows of 12 KB: 1.2 MB of batch files, and as much again for the merged output (the
    // coordinator's merge ahead must leave the batches their room: runtime/coordinator/merge-ahead.ts)
    const big = Array.from({ length: 100 }, (_, i) => ({ text: `b${i}`.padEnd(12_000, '.'), n: i }));
    sb.file('big.jsonl', jsonl(big));
    const r = await sb.run(script('merge', out, sb.file('merge.gate', ''), 'big.jsonl', 10));
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /SKYBATCH_E_REDUCE/);
    assert.match(r.stderr, new RegExp(`${escape(path.join(out, 'out.jsonl'))}: disk full while trying to write`));
    const jobId = /skybatch recover (\d+)/.exec(r.stderr)![1];
    // no half-written output, and every batch file still there
    assert.deepEqual(fs.readdirSync(out), ['.sky_batch_tmp']);
    assert.equal(fs.readdirSync(path.join(out, '.sky_batch_tmp', jobId, 'out.jsonl')).length, 10);
    execFileSync('mount', ['-o', 'remount,size=8m', out]);
    const rec = await sb.cli(['recover', jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stdout, new RegExp(`job ${jobId}: recovered 100 row\\(s\\)`));
    assert.deepEqual(readJsonl(path.join(out, 'out.jsonl')), big.map((x) => ({ out: x.text.toUpperCase() })));
  });

  test('a SKYBATCH_HOME that fills up mid-job fails the job naming its journal, the coordinator lives on, and resume completes it once there is room', async () => {
    mountTmpfs(home.home, '16m');
    mounts.unshift(home.home);
    await home.applyPool(POOL, 'pool:\n  workers: 1\n');
    const coordinator = home.coordinator(POOL).pid;
    const out = path.join(home.dir, 'home-out');
    const gate = path.join(home.dir, 'home.gate');
    const run = home.run(script('home', out, gate, 'many.jsonl', 1, home));
    const jobId = await waitFor('the job to start', () => jobs(home)[0]);
    await waitFor('two batches to commit', () => commits(home.home, jobId) >= 2 || undefined);
    // 400 commit records are some 25 KB: more than the slack in the journal's last page
    const filler = fill(home.home);
    fs.writeFileSync(gate, '');
    const r = await run;
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /SKYBATCH_E_STORAGE/);
    const journal = escape(path.join(home.home, 'jobs', jobId, 'journal.jsonl'));
    assert.match(r.stderr, new RegExp(`${journal}: disk full while trying to append to the journal`));
    assert.match(r.stderr, new RegExp(`skybatch recover ${jobId}`));
    assert.ok(alive(coordinator), 'the coordinator died of a full disk');
    assert.ok(!fs.existsSync(path.join(out, 'out.jsonl')), 'a job that failed published its output');
    // while the disk is still full, resuming and applying fail naming the file, and break nothing
    const early = await home.cli(['jobs', 'resume', jobId]);
    assert.notEqual(early.code, 0, early.stdout);
    assert.match(early.stderr, new RegExp(`SKYBATCH_E_STORAGE.*${journal}: disk full while trying to`));
    const apply = await home.cli(['pool', 'apply', path.join(home.dir, `${POOL}.pool.yaml`), '--pool', POOL, '-y']);
    assert.notEqual(apply.code, 0, apply.stdout);
    assert.match(apply.stderr, new RegExp(`SKYBATCH_E_STORAGE.*${escape(path.join(home.home, 'pools', POOL, 'pool.lock'))}: disk full while trying to take the lock`));
    assert.ok(alive(coordinator), 'a refused apply stopped the coordinator');
    fs.rmSync(filler);
    const res = await home.cli(['jobs', 'resume', jobId]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(home.coordinator(POOL).pid, coordinator);
    assert.deepEqual(readJsonl(path.join(out, 'out.jsonl')), many.map((r) => ({ out: r.text.toUpperCase() })));
  });
});
