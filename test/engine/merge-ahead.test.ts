import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { withWinners } from '../../formats/attempts.js';
import { type MergedAhead, mergeBatches } from '../../formats/batch-merge.js';
import { jobTmpDir } from '../../formats/batch-files.js';
import { Sandbox, jsonl, listFiles, readJsonl, waitFor } from '../harness.js';

// The coordinator merges a built-in JsonWriter's output while its job runs
// (runtime/coordinator/merge-ahead.ts); the reduce step takes what still holds and merges the rest.

const AHEAD = /^batch_merge-ahead\.[0-9a-f]{8}\.part$/;

describe('merge ahead: the reduce step takes the files merged while the job ran, as far as they still hold', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-ahead-unit-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const name = (s: number, e: number) => `batch_${String(s).padStart(12, '0')}_${String(e).padStart(12, '0')}.a1.jsonl`;
  const winners = [
    { start: 0, end: 1, attempt: 1, rows: 2 },
    { start: 2, end: 3, attempt: 1, rows: 2 },
    { start: 4, end: 5, attempt: 1, rows: 2 },
  ];
  const bodies = ['{"a":0}\n{"a":1}\n', '{"b":2}\n{"b":3}', '{"c":4}\n{"c":5}\n'];
  /** Stages the three batch files and a temp file holding `ahead` of them merged (each as the coordinator appends it), plus `tail`. */
  function stage(label: string, ahead: number, tail = ''): { out: string; merged: MergedAhead } {
    const out = path.join(dir, label, 'out.jsonl');
    const tmp = jobTmpDir(out, '7');
    fs.mkdirSync(tmp, { recursive: true });
    winners.forEach((w, i) => fs.writeFileSync(path.join(tmp, name(w.start, w.end)), bodies[i]));
    const merged: MergedAhead = { tmp: path.join(tmp, 'batch_merge-ahead.0123abcd.part'), files: [] };
    let text = '';
    for (let i = 0; i < ahead; i++) {
      const body = bodies[i] + (bodies[i].endsWith('\n') ? '' : '\n');
      const file = path.join(tmp, name(winners[i].start, winners[i].end));
      const { ino, ctimeMs } = fs.statSync(file);
      merged.files.push({ path: file, size: bodies[i].length, bytes: body.length, lines: 2, ino, ctimeMs });
      text += body;
    }
    fs.writeFileSync(merged.tmp, text + tail);
    return { out, merged };
  }
  const merge = (out: string, merged: MergedAhead) =>
    withWinners({ jobId: '7', winners, complete: true, mergedAhead: (s, t) => (s === out && t === out ? merged : undefined) }, () => mergeBatches(out, out, '7', { checkRows: true }));
  const whole = '{"a":0}\n{"a":1}\n{"b":2}\n{"b":3}\n{"c":4}\n{"c":5}\n';

  test('takes them, cuts what a write left past them, appends the rest, and renames the temp file into place', async () => {
    const { out, merged } = stage('torn', 2, '{"c":4}\n{"c'); // a third append cut short (a full disk)
    const report = await merge(out, merged);
    assert.deepEqual([report.files, report.rows, report.mergedAhead], [3, 6, 2]);
    assert.equal(fs.readFileSync(out, 'utf8'), whole);
    assert.equal(fs.existsSync(merged.tmp), false, 'the temp file became the output');
  });

  test('a file that changed since it was merged ahead is read again, and so is every file after it', async () => {
    const { out, merged } = stage('changed', 3);
    await new Promise((r) => setTimeout(r, 20)); // a later ctime, whatever the file system's clock granularity
    fs.writeFileSync(merged.files[1].path, '{"B":2}\n{"B":3}'); // batch [2, 3] rewritten in place: same size
    const report = await merge(out, merged);
    assert.equal(report.mergedAhead, 1);
    assert.equal(fs.readFileSync(out, 'utf8'), '{"a":0}\n{"a":1}\n{"B":2}\n{"B":3}\n{"c":4}\n{"c":5}\n');
  });

  test('rows are still checked for the files taken: a short one fails SKYBATCH_E_INCOMPLETE and the output is untouched', async () => {
    const { out, merged } = stage('short', 2);
    merged.files[0].lines = 1;
    fs.writeFileSync(out, 'previous\n');
    await assert.rejects(merge(out, merged), /SKYBATCH_E_INCOMPLETE|hold 1 rows where 2 were expected/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'previous\n');
  });

  test('nothing usable (the first file differs, or the temp file is gone): an ordinary merge', async () => {
    const a = stage('first', 2);
    fs.rmSync(a.merged.files[0].path);
    fs.writeFileSync(a.merged.files[0].path, '{"A":0}\n{"A":1}\n'); // replaced: another inode
    assert.equal((await merge(a.out, a.merged)).mergedAhead, 0);
    assert.equal(fs.readFileSync(a.out, 'utf8'), whole.replace('{"a":0}\n{"a":1}', '{"A":0}\n{"A":1}'));
    const b = stage('gone', 2);
    fs.rmSync(b.merged.tmp);
    assert.equal((await merge(b.out, b.merged)).mergedAhead, 0);
    assert.equal(fs.readFileSync(b.out, 'utf8'), whole);
  });
});

describe('merge ahead on a pool: a JsonWriter job', () => {
  const POOL = 'ahead';
  const sb = new Sandbox('ahead');
  const ROWS = 24;
  const LAST = ROWS - 1;
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: ROWS }, (_, i) => ({ i }))));
  });
  after(() => sb.cleanup());

  /** 12 batches of 2; the batch holding the last item waits for the file GO. */
  const script = () =>
    sb.file(
      'held.ts',
      `import * as fs from 'node:fs';
import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    if (batch.some((x) => x.i === ${LAST})) while (!fs.existsSync(process.env.GO!)) await new Promise((r) => setTimeout(r, 20));
    await sky.saveResults(batch.map((x) => ({ out: 'row ' + x.i })));
  }
});
const job = await new sky.Dataset(new sky.JsonReader(process.env.INPUT!)).map(mapper, { poolName: ${JSON.stringify(POOL)}, batchSize: 2, output: new sky.JsonWriter(process.env.OUTPUT!) });
console.log('RESULT', job.jobId, job.status);
`,
    );
  const expected = Array.from({ length: ROWS }, (_, i) => ({ out: `row ${i}` }));

  /** Starts the held job writing into `label`/out.jsonl; resolves once 11 of its 12 batch files are merged ahead. */
  async function heldJob(label: string) {
    const out = path.join(sb.dir, label, 'out.jsonl');
    const go = path.join(sb.dir, `${label}.go`);
    const run = sb.run(script(), { INPUT: path.join(sb.dir, 'in.jsonl'), OUTPUT: out, GO: go });
    const jobsDir = path.join(sb.dir, label, '.sky_batch_tmp');
    const jobId = await waitFor('the job temp folder', () => (fs.existsSync(jobsDir) ? fs.readdirSync(jobsDir)[0] : undefined));
    const tmp = jobTmpDir(out, jobId);
    const batchBytes = () => fs.readdirSync(tmp).filter((f) => /^batch_\d+_\d+\.a\d+\.jsonl$/.test(f)).reduce((n, f) => n + fs.statSync(path.join(tmp, f)).size, 0);
    const ahead = await waitFor('11 batch files merged ahead', () => {
      if (!fs.existsSync(tmp)) return undefined; // the job's folder may be there a moment before the writer's
      const f = fs.readdirSync(tmp).find((n) => AHEAD.test(n));
      const files = fs.readdirSync(tmp).filter((n) => /^batch_\d+_\d+\.a\d+\.jsonl$/.test(n));
      return f && files.length === 11 && fs.statSync(path.join(tmp, f)).size === batchBytes() ? path.join(tmp, f) : undefined;
    });
    return { out, go, run, jobId, tmp, ahead };
  }

  test('the committed batches are in a temp file before the job ends; the reduce step appends the last and publishes it', async () => {
    const j = await heldJob('held');
    assert.equal(fs.existsSync(j.out), false, 'nothing is published before the job ends');
    fs.writeFileSync(j.go, '');
    const r = await j.run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT \d+ SUCCEEDED/);
    assert.deepEqual(readJsonl(j.out), expected);
    const log = fs.readFileSync(path.join(sb.home, 'jobs', j.jobId, 'job.log'), 'utf8');
    // the last one too, when its commit's turn comes before the reduce step takes the file
    assert.match(log, /(11|12) of 12 batch file\(s\) were merged while the job ran/);
    assert.deepEqual(listFiles(path.dirname(j.out)), ['out.jsonl'], 'no temp file is left');
  });

  test('a batch file changed after it was merged ahead: the output holds what the file holds when the job ends', async () => {
    const j = await heldJob('changed');
    const third = fs.readdirSync(j.tmp).filter((n) => /^batch_\d+_\d+\.a\d+\.jsonl$/.test(n)).sort()[2];
    await new Promise((r) => setTimeout(r, 20)); // a later ctime than its first write, whatever the clock's granularity
    fs.writeFileSync(path.join(j.tmp, third), '{"out":"ROW 4"}\n{"out":"ROW 5"}\n'); // in place, same size
    fs.writeFileSync(j.go, '');
    const r = await j.run;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(j.out), expected.map((e, i) => (i === 4 || i === 5 ? { out: `ROW ${i}` } : e)));
    assert.match(fs.readFileSync(path.join(sb.home, 'jobs', j.jobId, 'job.log'), 'utf8'), /2 of 12 batch file\(s\) were merged while the job ran/);
  });

  test('a cancelled job leaves no merged temp file; `skybatch recover` publishes its committed batches', async () => {
    const j = await heldJob('cancelled');
    const c = await sb.cli(['jobs', 'cancel', j.jobId]);
    assert.equal(c.code, 0, c.stderr);
    await waitFor('the merged temp file to go', () => !fs.existsSync(j.ahead));
    fs.writeFileSync(j.go, ''); // lets the held mapper finish its (now cancelled) batch
    await j.run;
    const rec = await sb.cli(['recover', j.jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.deepEqual(readJsonl(j.out), expected.slice(0, ROWS - 2));
  });
});
