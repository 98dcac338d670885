import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as os from 'node:os';
import { withWinners } from '../../formats/attempts.js';
import { mergeBatches } from '../../formats/batch-merge.js';
import { jobTmpDir } from '../../formats/batch-files.js';
import { SkybatchError } from '../../formats/common/errors.js';
import { Sandbox, alive, jsonl, listFiles, waitFor } from '../harness.js';

const IN_PROCESS = "reducing in the coordinator's process";

/** Lines of a job's log (the coordinator's notes, the reduce step's lines prefixed `[reduce]`). */
function jobLog(sb: Sandbox, jobId: string): string {
  return fs.readFileSync(path.join(sb.home, 'jobs', jobId, 'job.log'), 'utf8');
}

async function status(sb: Sandbox, jobId: string): Promise<string | undefined> {
  const r = await sb.cli(['jobs', 'queue']);
  return new RegExp(`^${jobId}\\s+\\S+\\s+(\\S+)`, 'm').exec(r.stdout)?.[1];
}

/**
 * One script, two writers: `WRITER=builtin` maps into skybatch's own JsonWriter (reduced in
 * the coordinator), `WRITER=subclass` into a subclass that changes nothing (a user class:
 * reduced in a reduce process by the same reduceResults). Items 8..11 (all of batch [8, 11])
 * and item 5 fail and are skipped, so the job has an empty batch and a batch with a hole.
 */
function twinScript(sb: Sandbox, pool: string): string {
  return sb.file(
    'twin.ts',
    `import * as sky from 'skybatch';
class SameJson extends sky.JsonWriter {}
sky.registry.OUTPUT_WRITER_REGISTRY.register('samejson', SameJson);
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((x) => (x.i === 5 || (x.i >= 8 && x.i <= 11) ? sky.failItem(new Error('no ' + x.i)) : { out: x.text + '\\u00e9', dropped: x.i })));
  }
});
const W = process.env.WRITER === 'subclass' ? SameJson : sky.JsonWriter;
const ds = new sky.Dataset(new sky.JsonReader(process.env.INPUT!));
const job = await ds.map(mapper, { poolName: ${JSON.stringify(pool)}, batchSize: 4, onItemError: 'skip', output: new W(process.env.OUTPUT!, { column: 'out' }) });
console.log('RESULT', job.jobId, job.status);
`,
  );
}

describe('built-in writers reduce in the coordinator, byte for byte as the reduce process did', () => {
  const POOL = 'inproc';
  const sb = new Sandbox('inproc');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: 23 }, (_, i) => ({ i, text: `t${i} "q" \\ ${'x'.repeat(i)}` }))));
  });
  after(() => sb.cleanup());
  const ids: Record<string, string> = {};

  test('the same job through both paths: same output and errors.jsonl bytes; only the built-in one skipped the reduce process', async () => {
    const script = twinScript(sb, POOL);
    for (const w of ['builtin', 'subclass']) {
      const r = await sb.run(script, { WRITER: w, INPUT: path.join(sb.dir, 'in.jsonl'), OUTPUT: path.join(sb.dir, w, 'out.jsonl') });
      assert.equal(r.code, 0, r.stderr);
      ids[w] = /RESULT (\d+) SUCCEEDED/.exec(r.stdout)![1];
    }
    assert.match(jobLog(sb, ids.builtin), new RegExp(IN_PROCESS));
    assert.doesNotMatch(jobLog(sb, ids.subclass), new RegExp(IN_PROCESS), 'a user class never reduces in the coordinator');
    const read = (w: string, f: string) => fs.readFileSync(path.join(sb.dir, w, f));
    assert.ok(read('builtin', 'out.jsonl').equals(read('subclass', 'out.jsonl')), 'out.jsonl differs between the two paths');
    assert.equal(read('builtin', 'out.jsonl').toString().split('\n').length - 1, 23 - 5, 'every row but the 5 skipped ones');
    assert.doesNotMatch(read('builtin', 'out.jsonl').toString(), /dropped/, 'the column option applies');
    // errors.jsonl carries each item's stack: the same script and line on both paths
    assert.ok(read('builtin', 'errors.jsonl').equals(read('subclass', 'errors.jsonl')), 'errors.jsonl differs between the two paths');
    for (const w of ['builtin', 'subclass']) assert.deepEqual(listFiles(path.join(sb.dir, w)), ['errors.jsonl', 'out.jsonl'], `${w}: temp files are gone`);
  });

  test('a second reduce (`skybatch recover`) of a published built-in job changes nothing', async () => {
    const out = path.join(sb.dir, 'builtin', 'out.jsonl');
    const before = fs.readFileSync(out);
    const r = await sb.cli(['recover', ids.builtin]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /already published/);
    assert.ok(fs.readFileSync(out).equals(before));
  });
});

describe('a coordinator SIGKILLed while it merges a built-in output in its own process', () => {
  const POOL = 'inprockill';
  const sb = new Sandbox('inprockill');
  const N = 40_000;
  const pad = 'p'.repeat(900);
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: N }, (_, i) => ({ i }))));
  });
  after(() => sb.cleanup());

  /**
   * Runs a ~37 MB JsonWriter job and SIGKILLs the coordinator as its merge appears: `final`,
   * the reduce step's `.partial` sibling of the output (item 0 fails and is skipped, so batch 0
   * is two files and the merge ahead stops before it: the reduce step merges it all); `ahead`,
   * the temp file the coordinator merges into while the job runs (merge-ahead.ts). Then the
   * restarted coordinator must publish every row once.
   */
  async function killDuringMerge(kind: 'final' | 'ahead'): Promise<void> {
    const dir = path.join(sb.dir, kind);
    fs.mkdirSync(dir, { recursive: true });
    const out = path.join(dir, 'out.jsonl');
    const skip = kind === 'final';
    const script = sb.file(
      `${kind}.ts`,
      `import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => (${skip} && x.i === 0 ? sky.failItem(new Error('no 0')) : { i: x.i, pad: ${JSON.stringify(pad)} })));
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}));
const job = await ds.map(mapper, { poolName: ${JSON.stringify(POOL)}, batchSize: 2000, stream: false, onItemError: 'skip', output: new sky.JsonWriter(${JSON.stringify(out)}) });
console.log('RESULT', job.jobId, job.status);
`,
    );
    const coordinator = sb.coordinator(POOL).pid;
    const killed = () => process.kill(coordinator, 'SIGKILL');
    if (kind === 'final') {
      // the reduce step writes its `.partial` sibling for tens of ms: kill as it appears
      let partial: string | undefined;
      const watcher = fs.watch(dir, (_event, name) => {
        if (partial || !name || !/^out\.jsonl\.[0-9a-f]{8}\.partial$/.test(String(name))) return;
        partial = String(name);
        killed();
      });
      try {
        const run = await sb.run(script); // stream: false: returns once submitted
        assert.equal(run.code, 0, run.stderr);
        await waitFor('the merge to start writing its partial output', () => partial, 90_000);
      } finally {
        watcher.close();
      }
    } else {
      const run = await sb.run(script);
      assert.equal(run.code, 0, run.stderr);
      // the merged-ahead temp file is there from the first commit to the job's end
      const tmpRoot = path.join(dir, '.sky_batch_tmp');
      await waitFor('the merge ahead to begin', () => (fs.existsSync(tmpRoot) && listFiles(tmpRoot).some((f) => /batch_merge-ahead\.[0-9a-f]{8}\.part$/.test(f)) ? true : undefined), 90_000);
      killed();
    }
    await waitFor('the coordinator to die', () => (!alive(coordinator) ? true : undefined));
    assert.ok(!fs.existsSync(out), 'nothing was published under the output name by the killed merge');
    const jobId = fs.readdirSync(path.join(dir, '.sky_batch_tmp'))[0];
    if (kind === 'final') assert.match(jobLog(sb, jobId), new RegExp(IN_PROCESS));

    const apply = await sb.cli(['pool', 'apply', path.join(sb.dir, `${POOL}.pool.yaml`), '--pool', POOL, '-y']);
    assert.equal(apply.code, 0, apply.stderr);
    await waitFor('the job to succeed', async () => ((await status(sb, jobId)) === 'SUCCEEDED' ? true : undefined), 60_000);
    const lines = fs.readFileSync(out, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    const first = skip ? 1 : 0;
    assert.equal(lines.length, N - first, 'every row once');
    lines.forEach((l, i) => assert.equal(l, JSON.stringify({ i: i + first, pad }), `row ${i + first}`));
    assert.deepEqual(listFiles(dir), skip ? ['errors.jsonl', 'out.jsonl'] : ['out.jsonl'], 'the stale partial and the temp files are gone');
  }

  test('in the reduce step: no output under the published name; the restarted coordinator publishes every row once and the job SUCCEEDS', () => killDuringMerge('final'));
  test('in the merge ahead, while the job runs: the same', () => killDuringMerge('ahead'));
});

describe('the local merge (plain reads and writes through one buffer)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-localmerge-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  const stage = (name: string, files: [number, number, string][]) => {
    const out = path.join(root, name, 'out.jsonl');
    const tmp = jobTmpDir(out, '9');
    fs.mkdirSync(tmp, { recursive: true });
    for (const [s, e, body] of files) fs.writeFileSync(path.join(tmp, `batch_${String(s).padStart(12, '0')}_${String(e).padStart(12, '0')}.a1.jsonl`), body);
    return out;
  };
  const winners = (rows: [number, number, number][]) => rows.map(([start, end, n]) => ({ start, end, attempt: 1, rows: n }));

  test('concatenates in index order, ends a file without a last newline, counts rows; a big file goes through in pieces', async () => {
    const big = Array.from({ length: 400_000 }, (_, i) => `{"i":${i}}`).join('\n') + '\n'; // > 8 MiB: read in pieces of the reused buffer
    const out = stage('order', [[4, 5, '{"b":4}\n{"b":5}'], [0, 1, '{"a":0}\n{"a":1}\n'], [2, 3, '{"x":2}\n{"x":3}\n'], [6, 400_005, big]]);
    const report = await withWinners({ jobId: '9', winners: winners([[0, 1, 2], [2, 3, 2], [4, 5, 2], [6, 400_005, 400_000]]), complete: true }, () => mergeBatches(out, out, '9', { checkRows: true }));
    assert.deepEqual([report.files, report.rows, report.written], [4, 400_006, true]);
    assert.equal(fs.readFileSync(out, 'utf8'), '{"a":0}\n{"a":1}\n{"x":2}\n{"x":3}\n{"b":4}\n{"b":5}\n' + big);
    assert.deepEqual(fs.readdirSync(path.dirname(out)).filter((f) => f.endsWith('.partial')), []);
  });

  test('a batch file short of its rows fails SKYBATCH_E_INCOMPLETE naming it; the existing output is untouched and no partial is left', async () => {
    const out = stage('short', [[0, 1, '{"a":0}\n{"a":1}\n'], [2, 4, '{"x":2}\n{"x":3}\n']]);
    fs.writeFileSync(out, 'previous\n');
    await assert.rejects(
      withWinners({ jobId: '9', winners: winners([[0, 1, 2], [2, 4, 3]]), complete: true }, () => mergeBatches(out, out, '9', { checkRows: true })),
      (err: unknown) => err instanceof SkybatchError && err.code === 'SKYBATCH_E_INCOMPLETE' && /\[2, 4\]/.test(err.message) && /hold 2 rows where 3 were expected/.test(err.message),
    );
    assert.equal(fs.readFileSync(out, 'utf8'), 'previous\n');
    assert.deepEqual(fs.readdirSync(path.dirname(out)).filter((f) => f.endsWith('.partial')), []);
  });
});
