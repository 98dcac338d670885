import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, listFiles, readJsonl, untilFileExists, waitFor } from '../harness.js';

const POOL = 'reducecrash';
const N = 12;
const rows = Array.from({ length: N }, (_, i) => ({ text: `t${i}` }));
const expected = rows.map((r) => ({ out: r.text.toUpperCase() }));

/** Whether `pid` is a live process (a zombie that nobody reaped counts as dead). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

async function status(sb: Sandbox, jobId: string): Promise<string | undefined> {
  const r = await sb.cli(['jobs', 'queue']);
  return new RegExp(`^${jobId}\\s+\\S+\\s+(\\S+)`, 'm').exec(r.stdout)?.[1];
}

/**
 * A job with two outputs: a writer whose reduceResults records its pid and then waits for
 * the file `gate` (so the test decides when the reduce may go on), then a JsonWriter.
 */
function gatedJob(sb: Sandbox, name: string, extra = ''): { script: string; out: string; gate: string; entered: string } {
  const out = path.join(sb.dir, name, 'out.jsonl');
  const gate = path.join(sb.dir, `${name}.gate`);
  const entered = path.join(sb.dir, `${name}.entered`);
  const script = sb.file(
    `${name}.ts`,
    `import * as fs from 'node:fs';
import * as sky from 'skybatch';
class GateWriter extends sky.OutputWriter<{ gate: string; entered: string }> {
  uploadBatch(): string {
    return this.path;
  }
  override async reduceResults(): Promise<void> {
    fs.appendFileSync(this.options.entered, process.pid + '\\n');
    while (!fs.existsSync(this.options.gate)) await new Promise((r) => setTimeout(r, 25));
  }
}
sky.registry.OUTPUT_WRITER_REGISTRY.register('gate', GateWriter);
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}));
const job = await ds.map(mapper, {
  poolName: ${JSON.stringify(POOL)},
  batchSize: 2,
  stream: false,
  output: [new GateWriter(${JSON.stringify(path.join(sb.dir, name, 'gate') + '/')}, { gate: ${JSON.stringify(gate)}, entered: ${JSON.stringify(entered)} }), new sky.JsonWriter(${JSON.stringify(out)})],
  ${extra}
});
console.log('RESULT', job.jobId, job.status);
`,
  );
  return { script, out, gate, entered };
}

describe('a coordinator killed during reduce', () => {
  const sb = new Sandbox('reducecrash');
  const poolFile = () => path.join(sb.dir, `${POOL}.pool.yaml`);
  // reduce processes orphaned on purpose: stopped at the end even when a test failed half-way
  const orphans = new Set<number>();
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  const gates = new Set<string>();
  after(async () => {
    for (const gate of gates) fs.writeFileSync(gate, ''); // any other reduce waiting in the gate writer goes on and exits
    for (const pid of orphans) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await sb.cleanup();
  });

  /** Submits the gated job and waits until its reduce process is inside the gate; returns the job id and that process's pid. */
  async function startReduce(name: string): Promise<{ jobId: string; reducer: number; out: string; gate: string; entered: string }> {
    const job = gatedJob(sb, name);
    const r = await sb.run(job.script);
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    const pid = await waitFor('the reduce to reach the gate writer', () => (fs.existsSync(job.entered) ? Number(fs.readFileSync(job.entered, 'utf8').trim()) : undefined), 60_000);
    orphans.add(pid);
    gates.add(job.gate);
    return { jobId, reducer: pid, ...job };
  }

  test('the orphaned reduce finishes and cleans up; the restarted coordinator publishes nothing new and the job SUCCEEDS with the exact output', async () => {
    const { jobId, reducer, out, gate, entered } = await startReduce('orphan');
    process.kill(sb.coordinator(POOL).pid, 'SIGKILL');
    fs.writeFileSync(gate, '');
    await waitFor('the orphaned reduce process to finish', () => !alive(reducer) || undefined, 30_000);
    assert.deepEqual(readJsonl(out), expected, 'the orphan published the whole output');

    const apply = await sb.cli(['pool', 'apply', poolFile(), '--pool', POOL, '-y']);
    assert.equal(apply.code, 0, apply.stderr);
    await waitFor('the job to succeed', async () => ((await status(sb, jobId)) === 'SUCCEEDED' ? true : undefined), 60_000);
    assert.deepEqual(readJsonl(out), expected, 'the output is still whole after the second coordinator');
    assert.deepEqual(listFiles(path.dirname(out)), ['out.jsonl'], 'temp files are gone');
    assert.equal(fs.readFileSync(entered, 'utf8').trim().split('\n').length, 1, 'reduceResults ran once: the outputs were already published');
  });

  test('a coordinator restarted while the orphaned reduce still runs waits for it instead of reducing a second time', async () => {
    const { jobId, reducer, out, gate, entered } = await startReduce('waits');
    process.kill(sb.coordinator(POOL).pid, 'SIGKILL');
    const apply = await sb.cli(['pool', 'apply', poolFile(), '--pool', POOL, '-y']);
    assert.equal(apply.code, 0, apply.stderr);
    const log = path.join(sb.home, 'jobs', jobId, 'job.log');
    await waitFor('the new coordinator to wait for the orphan', () => (fs.readFileSync(log, 'utf8').includes(`waiting for reduce process ${reducer}`) ? true : undefined), 30_000);
    assert.ok(alive(reducer), 'the orphan is left to finish');
    fs.writeFileSync(gate, '');
    await waitFor('the job to succeed', async () => ((await status(sb, jobId)) === 'SUCCEEDED' ? true : undefined), 60_000);
    assert.deepEqual(readJsonl(out), expected);
    assert.deepEqual(listFiles(path.dirname(out)), ['out.jsonl']);
    assert.equal(fs.readFileSync(entered, 'utf8').trim().split('\n').length, 1, 'only one reduce ever ran the writers');
  });
});

describe('reduce checks that every committed batch is there before it publishes', () => {
  const sb = new Sandbox('complete');
  const POOL2 = 'complete';
  before(async () => {
    await sb.applyPool(POOL2, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(() => sb.cleanup());

  test('a committed batch whose winner file was deleted fails the job naming the range and `jobs resume`; the output is untouched; resume completes it', async () => {
    const out = path.join(sb.dir, 'lost', 'out.jsonl');
    const gate = path.join(sb.dir, 'lost.gate');
    // the last item waits for the gate, so the test can delete a committed file before the job ends
    const script = sb.file(
      'lost.ts',
      `import * as fs from 'node:fs';
import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    if (batch.some((x) => x.text === 't${N - 1}')) ${untilFileExists(gate, 25)}
    await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));
  }
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}));
const job = await ds.map(mapper, { poolName: ${JSON.stringify(POOL2)}, batchSize: 2, output: new sky.JsonWriter(${JSON.stringify(out)}) });
console.log('RESULT', job.jobId, job.status);
`,
    );
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, '{"previous":"output"}\n');
    const run = sb.run(script);
    const tmp = path.join(sb.dir, 'lost', '.sky_batch_tmp');
    const first = await waitFor('batch [2, 3] to be written', () => listFiles(tmp).find((f) => /batch_0+2_0+3\.a\d+\.jsonl$/.test(f)), 60_000);
    const jobId = first.split('/')[0];
    const journal = path.join(sb.home, 'jobs', jobId, 'journal.jsonl');
    await waitFor('batch [2, 3] to commit', () => (fs.readFileSync(journal, 'utf8').includes('"s":2,"x":3') ? true : undefined));
    fs.rmSync(path.join(tmp, first));
    fs.writeFileSync(gate, '');
    const r = await run;
    assert.notEqual(r.code, 0, 'the job must not succeed with rows missing');
    assert.match(r.stderr, /SKYBATCH_E_INCOMPLETE/);
    assert.match(r.stderr, new RegExp(`job ${jobId}[^\\n]*\\[2, 3\\]`));
    assert.match(r.stderr, new RegExp(`skybatch jobs resume ${jobId}`));
    assert.equal(fs.readFileSync(out, 'utf8'), '{"previous":"output"}\n', 'the output is untouched');
    assert.ok(listFiles(tmp).length > 0, 'the temp files of the other batches are kept');

    const res = await sb.cli(['jobs', 'resume', jobId]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(readJsonl(out), expected, 'resume ran the lost batch again');
    assert.deepEqual(listFiles(path.dirname(out)), ['out.jsonl']);
  });
});
