import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import { Journal } from '../../runtime/store/journal.js';
import { readJournal } from '../../runtime/store/job-store.js';
import type { JobSpec } from '../../runtime/protocol.js';
import { Sandbox, alive, jsonl, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

const POOL = 'journal';
const N = 30;
const rows = Array.from({ length: N }, (_, i) => ({ text: `t${i}` }));
const expected = rows.map((r) => ({ out: r.text.toUpperCase() }));

function journalLines(home: string, jobId: string): string[] {
  return fs.readFileSync(path.join(home, 'jobs', jobId, 'journal.jsonl'), 'utf8').split('\n').slice(0, -1);
}

function records(home: string, jobId: string): { e: string; status?: string; a?: number; i?: number; error?: { code: string; message: string } }[] {
  return journalLines(home, jobId).flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return []; // a torn line, as replay skips it
    }
  });
}

describe('the journal survives torn writes and restarts', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-journal-unit-'));
  const saved = process.env.SKYBATCH_HOME;
  before(() => (process.env.SKYBATCH_HOME = home));
  after(() => {
    process.env.SKYBATCH_HOME = saved;
    fs.rmSync(home, { recursive: true, force: true });
  });

  const spec = (jobId: string): JobSpec => ({
    jobId,
    pool: 'p',
    createdAt: new Date().toISOString(),
    bundleHash: 'x',
    mapperId: 'm#1',
    scriptPath: '/s.ts',
    reader: { type: 'json', path: '/in.jsonl', options: {} },
    writers: [{ type: 'json', path: '/out.jsonl', options: {} }],
    batchSize: 1,
    total: 4,
    env: {},
    argv: [],
    cwd: '/',
  });

  test('a torn last line is dropped (skipped, with a note in the job log) and the next record starts on its own line', () => {
    const dir = path.join(home, 'jobs', '1');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'journal.jsonl');
    fs.writeFileSync(file, `{"e":"status","status":"PENDING","at":"x"}\n{"e":"commit","i":0,"s":0,"x":0,"a":1,"w":"w","n":1}\n{"e":"commit","i":1,"s":1,`);
    assert.deepEqual([...readJournal('1').committed.keys()], [0]);
    const j = new Journal('1');
    j.append({ e: 'commit', i: 2, s: 2, x: 2, a: 1, w: 'w', n: 1 });
    j.close();
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.pop(), '', 'the file ends with a newline');
    assert.equal(lines[2], '{"e":"commit","i":1,"s":1,', 'the torn line stands alone, skipped by replay');
    assert.deepEqual(JSON.parse(lines[3]), { e: 'commit', i: 2, s: 2, x: 2, a: 1, w: 'w', n: 1 }, 'the next record starts on its own line');
    assert.deepEqual([...readJournal('1').committed.keys()], [0, 2]);
    assert.match(fs.readFileSync(path.join(dir, 'job.log'), 'utf8'), /journal: dropped a torn last line \(\d+ bytes/);
  });

  test('a complete last record that only lacks its newline is kept', () => {
    const dir = path.join(home, 'jobs', '2');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'journal.jsonl'), `{"e":"commit","i":0,"s":0,"x":0,"a":1,"w":"w","n":1}`);
    const j = new Journal('2');
    j.append({ e: 'commit', i: 1, s: 1, x: 1, a: 1, w: 'w', n: 1 });
    j.close();
    assert.deepEqual([...readJournal('2').committed.keys()], [0, 1]);
  });

  test('attempt numbers stay unique across restarts, even when a restart lost its status records', () => {
    fs.mkdirSync(path.join(home, 'jobs', '3'), { recursive: true });
    // attempts of one batch must never repeat: their temp files are told apart by them
    const seen = new Set<number>();
    // three loads of the job, each "crashing" (no close) after leasing its first batch twice
    for (let load = 0; load < 3; load++) {
      const run = new JobRun(spec('3'), readJournal('3'), new Journal('3'));
      run.setStatus('RUNNING');
      for (let i = 0; i < 2; i++) {
        const b = run.batch(0)!;
        run.lease(b, 'w');
        assert.ok(!seen.has(b.current), `attempt ${b.current} of batch 0 was handed out twice`);
        seen.add(b.current);
        run.release(0, b.current);
      }
    }
    // a load whose status records were lost (a journal cut short by a power loss)
    const file = path.join(home, 'jobs', '3', 'journal.jsonl');
    const kept = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.includes('"status"'));
    fs.writeFileSync(file, kept.join('\n') + '\n');
    const run = new JobRun(spec('3'), readJournal('3'), new Journal('3'));
    const b = run.batch(0)!;
    run.lease(b, 'w');
    assert.ok(b.current > Math.max(...seen), `attempt ${b.current} of batch 0 may repeat one of ${[...seen].join(', ')}`);
  });
});

describe('pool down and restarts end jobs clearly', () => {
  const sb = new Sandbox('journal');
  const leftovers: number[] = [];
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(async () => {
    for (const pid of leftovers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await sb.cleanup();
  });

  // The last item waits for `gate` when one is given, so the job cannot finish before the test acts.
  const script = (name: string, extra = '', gate?: string) =>
    sb.file(
      `${name}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, name, 'out.jsonl'),
        pool: POOL,
        batchSize: 1,
        before: gate ? `const fs = await import('node:fs');` : '',
        body: `${gate ? `if (batch[0].text === 't${N - 1}') { ${untilFileExists(gate)} }` : ''}
    await new Promise((r) => setTimeout(r, 150)); await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));`,
        extra,
      }),
    );
  const commits = (jobId: string) => records(sb.home, jobId).filter((r) => r.e === 'commit').length;
  const applyAgain = () => sb.cli(['pool', 'apply', path.join(sb.dir, `${POOL}.pool.yaml`), '--pool', POOL, '-y']);

  test('a coordinator killed after a torn journal write resumes the job; the torn line is skipped and every record after it parses', async () => {
    const r = await sb.run(script('torn', ', stream: false'));
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    await waitFor('some batches to commit', () => commits(jobId) >= 4 || undefined);
    process.kill(sb.coordinator(POOL).pid, 'SIGKILL');
    const torn = '{"e":"commit","i":29,"s":29,"x":29,"a"';
    fs.appendFileSync(path.join(sb.home, 'jobs', jobId, 'journal.jsonl'), torn);
    const apply = await applyAgain();
    assert.equal(apply.code, 0, apply.stderr);
    await waitFor('the job to succeed', () => records(sb.home, jobId).some((x) => x.status === 'SUCCEEDED') || undefined, 60_000);
    for (const line of journalLines(sb.home, jobId).filter((l) => l !== torn)) assert.doesNotThrow(() => JSON.parse(line), `journal line does not parse: ${line}`);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'torn', 'out.jsonl')), expected);
    assert.match(fs.readFileSync(path.join(sb.home, 'jobs', jobId, 'job.log'), 'utf8'), /journal: dropped a torn last line/);
  });

  test('pool down during a job ends it CANCELLED with the recovery command; the next apply does not resume it', async () => {
    const jobs = () => (fs.existsSync(path.join(sb.home, 'jobs')) ? fs.readdirSync(path.join(sb.home, 'jobs')) : []);
    const known = new Set(jobs());
    const gate = path.join(sb.dir, 'down.gate');
    const run = sb.run(script('down', '', gate));
    const jobId = await waitFor('the job to start', () => jobs().find((id) => !known.has(id) && fs.existsSync(path.join(sb.home, 'jobs', id, 'journal.jsonl'))));
    await waitFor('some batches to commit', () => commits(jobId) >= 3 || undefined);
    const down = await sb.cli(['pool', 'down', POOL, '-y']);
    assert.equal(down.code, 0, down.stderr);
    const r = await run;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_CANCELLED/);
    assert.match(r.stderr, new RegExp(`skybatch recover ${jobId}`));
    const last = records(sb.home, jobId).filter((x) => x.e === 'status').pop()!;
    assert.equal(last.status, 'CANCELLED');
    assert.match(last.error!.message, /pool down/);
    assert.match(last.error!.message, new RegExp(`skybatch recover ${jobId}$`));
    const q = await sb.cli(['jobs', 'queue']);
    assert.match(q.stdout, new RegExp(`^${jobId}\\s+${POOL}\\s+CANCELLED`, 'm'));

    const apply = await applyAgain();
    assert.equal(apply.code, 0, apply.stderr);
    assert.doesNotMatch(fs.readFileSync(path.join(sb.home, 'jobs', jobId, 'job.log'), 'utf8'), /coordinator restarted: resuming/);
    assert.match((await sb.cli(['jobs', 'queue'])).stdout, new RegExp(`^${jobId}\\s+${POOL}\\s+CANCELLED`, 'm'));
    // it is not lost: resuming it on purpose finishes it
    fs.writeFileSync(gate, '');
    const res = await sb.cli(['jobs', 'resume', jobId]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'down', 'out.jsonl')), expected);
  });

  test('pool down after the coordinator died mid-job marks the job CANCELLED on disk', async () => {
    const r = await sb.run(script('dead', ', stream: false'));
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    await waitFor('some batches to commit', () => commits(jobId) >= 2 || undefined);
    leftovers.push(...sb.workerPids(POOL));
    process.kill(sb.coordinator(POOL).pid, 'SIGKILL');
    const down = await sb.cli(['pool', 'down', POOL, '-y']);
    assert.equal(down.code, 0, down.stderr);
    const last = records(sb.home, jobId).filter((x) => x.e === 'status').pop()!;
    assert.equal(last.status, 'CANCELLED');
    assert.match(last.error!.message, new RegExp(`skybatch recover ${jobId}$`));
  });
  test('pool down while a job merges its outputs lets the merge finish: the job SUCCEEDED', async () => {
    const apply = await applyAgain();
    assert.equal(apply.code, 0, apply.stderr);
    const s = sb.file(
      'merging.ts',
      `import * as sky from 'skybatch';
class SlowMerge extends sky.JsonWriter {
  async reduceResults(jobId: string) {
    await new Promise((r) => setTimeout(r, 2000));
    return super.reduceResults(jobId);
  }
}
sky.registry.OUTPUT_WRITER_REGISTRY.register('slow-merge', SlowMerge);
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));
});
const job = await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))})).map(mapper, { poolName: '${POOL}', batchSize: 10, output: new SlowMerge(${JSON.stringify(path.join(sb.dir, 'merging', 'out.jsonl'))}) });
console.log('RESULT', job.jobId, job.status);
`,
    );
    const jobs = () => (fs.existsSync(path.join(sb.home, 'jobs')) ? fs.readdirSync(path.join(sb.home, 'jobs')) : []);
    const known = new Set(jobs());
    const run = sb.run(s);
    const jobId = await waitFor('the job to start', () => jobs().find((id) => !known.has(id) && fs.existsSync(path.join(sb.home, 'jobs', id, 'job.log'))));
    await waitFor('the merge to start', () => /reducing outputs/.test(fs.readFileSync(path.join(sb.home, 'jobs', jobId, 'job.log'), 'utf8')) || undefined, 60_000);
    const down = await sb.cli(['pool', 'down', POOL, '-y']);
    assert.equal(down.code, 0, down.stderr);
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`RESULT ${jobId} SUCCEEDED`));
    assert.deepEqual(readJsonl(path.join(sb.dir, 'merging', 'out.jsonl')), expected);
    assert.equal(records(sb.home, jobId).filter((x) => x.e === 'status').pop()!.status, 'SUCCEEDED');
  });
});
