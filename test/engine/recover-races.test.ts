import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, readJsonl, waitFor } from '../harness.js';

const POOL = 'recoverrace';
const N = 12;
const rows = Array.from({ length: N }, (_, i) => ({ text: `t${i}`, n: i }));
const expected = rows.map((r) => ({ out: r.text.toUpperCase() }));

function committed(sb: Sandbox, jobId: string): number {
  const lines = fs.readFileSync(path.join(sb.home, 'jobs', jobId, 'journal.jsonl'), 'utf8').split('\n');
  return new Set(lines.filter((l) => l.startsWith('{"e":"commit"')).map((l) => JSON.parse(l).i)).size;
}

/**
 * A job whose JsonWriter's reduceResults notes that it runs and waits for the file `gate`
 * before merging (so the test holds a reduce, and its lock, where it likes).
 * Its mapper fails rows from 4 on with a TypeError (not retried) until the file `fixed` exists.
 */
function job(sb: Sandbox, name: string) {
  const out = path.join(sb.dir, name, 'out.jsonl');
  const gate = path.join(sb.dir, `${name}.gate`);
  const entered = path.join(sb.dir, `${name}.entered`);
  const fixed = path.join(sb.dir, `${name}.fixed`);
  const script = sb.file(
    `${name}.ts`,
    `import * as fs from 'node:fs';
import * as sky from 'skybatch';
const GATE = ${JSON.stringify(gate)};
const ENTERED = ${JSON.stringify(entered)};
class GateJsonWriter extends sky.JsonWriter {
  override async reduceResults(jobId: string | number): Promise<void> {
    fs.appendFileSync(ENTERED, process.pid + '\\n');
    while (!fs.existsSync(GATE)) await new Promise((r) => setTimeout(r, 25));
    await super.reduceResults(jobId);
  }
}
sky.registry.OUTPUT_WRITER_REGISTRY.register('gatejson', GateJsonWriter);
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    if (Number(batch[0].n) >= 4 && !fs.existsSync(${JSON.stringify(fixed)})) throw new TypeError('not fixed yet');
    await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));
  }
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}));
const job = await ds.map(mapper, {
  poolName: ${JSON.stringify(POOL)},
  batchSize: 2,
  output: new GateJsonWriter(${JSON.stringify(out)}),
});
console.log('RESULT', job.jobId, job.status);
`,
  );
  return { script, out, gate, entered, fixed };
}

describe('recover and resume of one job at once', () => {
  const sb = new Sandbox('recoverrace');
  const gates: string[] = [];
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 1\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(async () => {
    for (const g of gates) fs.writeFileSync(g, '');
    await sb.cleanup();
  });

  test('a job cannot be resumed while a recover of it merges: resume is refused naming the recover, which publishes what was committed', async () => {
    const j = job(sb, 'race');
    gates.push(j.gate);
    const failed = await sb.run(j.script);
    assert.notEqual(failed.code, 0, failed.stdout);
    const jobId = /recover (\d+)/.exec(failed.stderr)![1];
    const recover = sb.cli(['recover', jobId]);
    await waitFor('the recover to be merging (holding the reduce lock)', () => fs.existsSync(j.entered) || undefined);
    const recoverPid = fs.readFileSync(j.entered, 'utf8').trim();
    fs.writeFileSync(j.fixed, '');
    const refused = await sb.cli(['jobs', 'resume', jobId]);
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /SKYBATCH_E_POOL_BUSY/);
    assert.match(refused.stderr, new RegExp(`job ${jobId} cannot be resumed while reduce of job ${jobId} \\(pid ${recoverPid}, since [^)]+\\) merges its outputs`));
    assert.equal(committed(sb, jobId), 2, 'the refused resume ran nothing');
    fs.writeFileSync(j.gate, '');
    const rec = await recover;
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stdout, new RegExp(`job ${jobId}: recovered 4 row\\(s\\)`));
    assert.deepEqual(readJsonl(j.out), expected.slice(0, 4));
  });

  test('two recovers of one job at once: one merges, the other finds it merged; the output is whole once', async () => {
    const j = job(sb, 'twice');
    gates.push(j.gate);
    const failed = await sb.run(j.script);
    assert.notEqual(failed.code, 0, failed.stdout);
    const jobId = /recover (\d+)/.exec(failed.stderr)![1];
    const first = sb.cli(['recover', jobId]);
    await waitFor('the first recover to be merging', () => fs.existsSync(j.entered) || undefined);
    const second = sb.cli(['recover', jobId]);
    fs.writeFileSync(j.gate, '');
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.match(a.stdout, new RegExp(`job ${jobId}: recovered 4 row\\(s\\)`));
    assert.match(b.stdout, new RegExp(`job ${jobId}: nothing to merge, output left as is`));
    assert.deepEqual(readJsonl(j.out), expected.slice(0, 4));
  });
});

describe('resume after a recover', () => {
  const sb = new Sandbox('recoverresume');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 1\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(() => sb.cleanup());

  /** A job failed at row 4 and recovered (`recoverArgs`): its first 4 rows published. */
  async function recovered(name: string, recoverArgs: string[] = []) {
    const j = job(sb, name);
    fs.writeFileSync(j.gate, '');
    const failed = await sb.run(j.script);
    assert.notEqual(failed.code, 0, failed.stdout);
    const jobId = /recover (\d+)/.exec(failed.stderr)![1];
    const rec = await sb.cli(['recover', jobId, ...recoverArgs]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.deepEqual(readJsonl(j.out), expected.slice(0, 4));
    fs.writeFileSync(j.fixed, '');
    return { ...j, jobId };
  }

  test('one resume finishes the job: the batches the recover merged and removed run again, and the output is whole', async () => {
    const j = await recovered('cleaned');
    assert.ok(!fs.existsSync(path.join(path.dirname(j.out), '.sky_batch_tmp')), 'the recover cleaned up');
    const res = await sb.cli(['jobs', 'resume', j.jobId]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(readJsonl(j.out), expected);
    assert.match(fs.readFileSync(path.join(sb.home, 'jobs', j.jobId, 'job.log'), 'utf8'), /a recover merged 2 finished batch\(es\) into the outputs and removed their files: they run again/);
    assert.deepEqual(fs.readdirSync(path.dirname(j.out)), ['out.jsonl']);
  });

  test('after a recover that kept its temp files, the resume merges them: only the batches not done run', async () => {
    const j = await recovered('kept', ['--keep-temp']);
    const before = fs.readFileSync(path.join(sb.home, 'jobs', j.jobId, 'journal.jsonl'), 'utf8');
    const res = await sb.cli(['jobs', 'resume', j.jobId]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(readJsonl(j.out), expected);
    const since = fs.readFileSync(path.join(sb.home, 'jobs', j.jobId, 'journal.jsonl'), 'utf8').slice(before.length);
    const rerun = since.split('\n').filter((l) => l.startsWith('{"e":"commit"')).map((l) => JSON.parse(l).i as number);
    assert.ok(rerun.length > 0 && rerun.every((i) => i >= 2), `batches 0 and 1 were kept, not run again (committed after the resume: ${rerun.join(', ')})`);
  });
});
