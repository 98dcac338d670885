import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl } from '../harness.js';

const IN_PROCESS = "reducing in the coordinator's process";

function jobLog(sb: Sandbox, jobId: string): string {
  return fs.readFileSync(path.join(sb.home, 'jobs', jobId, 'job.log'), 'utf8');
}

/** The journal's `published` record without its time. */
function published(sb: Sandbox, jobId: string): unknown {
  const lines = fs.readFileSync(path.join(sb.home, 'jobs', jobId, 'journal.jsonl'), 'utf8').split('\n').filter(Boolean);
  const recs = lines.map((l) => JSON.parse(l) as { e: string; at?: string }).filter((r) => r.e === 'published');
  assert.equal(recs.length, 1, `one published record in job ${jobId}'s journal`);
  const { at: _at, ...rest } = recs[0];
  return rest;
}

/**
 * One script, a user's writer `Sink` (one file per batch in its own folder), four ways:
 * `none`: no reduce step; `noop`: a `reduceResults` that does nothing; `cleanup`: a `cleanup`
 * that leaves a marker; `lie`: a `reduceResults` that leaves a marker, hidden from the client's
 * check (a hostile client), `lie-staged`: the same, staging batch files like a merging writer.
 * Items 3 and 6 fail and are skipped, so errors.jsonl is written next to the output.
 */
function script(sb: Sandbox, pool: string): string {
  return sb.file(
    'sink.ts',
    `import * as fs from 'node:fs';
import * as sky from 'skybatch';
const how = process.env.HOW!;
const marker = (what: string) => fs.writeFileSync(process.env.MARKER! + '.' + what, 'ran');
class Base extends sky.OutputWriter<Record<string, never>> {
  async uploadBatch(results: sky.Item[], s: number, e: number, jobId: string) {
    if (how === 'lie-staged') {
      await sky.utils.uploadBytesToCloud(results.map((r) => JSON.stringify(r) + '\\n').join(''), sky.utils.getBatchPath(this.path, s, e, jobId));
      return '';
    }
    fs.mkdirSync(this.path, { recursive: true });
    fs.writeFileSync(this.path + '/part_' + s + '.json', JSON.stringify(results));
    return '';
  }
}
const Sink =
  how === 'noop' ? class Sink extends Base { reduceResults() {} }
  : how === 'cleanup' ? class Sink extends Base { cleanup() { marker('cleanup'); } }
  : how.startsWith('lie') ? class Sink extends Base { reduceResults() { marker('reduce'); } }
  : class Sink extends Base {};
sky.registry.OUTPUT_WRITER_REGISTRY.register('sink', Sink);
if (how.startsWith('lie')) {
  const real = Object.hasOwn;
  Object.hasOwn = (o: object, k: PropertyKey) => (o === Sink.prototype ? false : real(o, k));
}
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => (x.i === 3 || x.i === 6 ? sky.failItem(new Error('no ' + x.i)) : { i: x.i })));
});
const job = await new sky.Dataset(new sky.JsonReader(process.env.INPUT!)).map(mapper, { poolName: ${JSON.stringify(pool)}, batchSize: 2, onItemError: 'skip', output: new Sink(process.env.OUTPUT!) });
console.log('RESULT', job.jobId, job.status);
`,
  );
}

describe("a user's writer with no reduce step reduces in the coordinator", () => {
  const POOL = 'noreduce';
  const sb = new Sandbox('noreduce');
  let file = '';
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: 9 }, (_, i) => ({ i }))));
    file = script(sb, POOL);
  });
  after(() => sb.cleanup());

  async function run(how: string): Promise<string> {
    const r = await sb.run(file, { HOW: how, INPUT: path.join(sb.dir, 'in.jsonl'), OUTPUT: path.join(sb.dir, how, 'out'), MARKER: path.join(sb.dir, how) });
    assert.equal(r.code, 0, r.stderr);
    const m = /RESULT (\d+) (\w+)/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    assert.equal(m[2], 'SUCCEEDED', r.stdout + r.stderr);
    return m[1];
  }

  test('with the same published record and errors.jsonl as a no-op reduceResults in a reduce process', async () => {
    const none = await run('none');
    const noop = await run('noop');
    assert.match(jobLog(sb, none), new RegExp(`${IN_PROCESS}: every writer is built-in or has no reduce step`));
    assert.doesNotMatch(jobLog(sb, noop), new RegExp(IN_PROCESS), 'a reduceResults of its own, even empty, runs in a reduce process');
    const rec = published(sb, none) as { outputs: { writer: string }[] };
    assert.equal(rec.outputs[0].writer, `Sink(${path.join(sb.dir, 'none', 'out')})`);
    assert.deepEqual(JSON.stringify(rec).replaceAll('/none/', '/X/'), JSON.stringify(published(sb, noop)).replaceAll('/noop/', '/X/'));
    const errors = (how: string) => fs.readFileSync(path.join(sb.dir, how, 'errors.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { index: number });
    assert.deepEqual(errors('none').map((e) => e.index), [3, 6]);
    assert.deepEqual(errors('none'), errors('noop'));
    assert.deepEqual(fs.readdirSync(path.join(sb.dir, 'none', 'out')).sort(), fs.readdirSync(path.join(sb.dir, 'noop', 'out')).sort());
  });

  test('a writer that overrides cleanup only still runs in a reduce process, and its cleanup runs', async () => {
    const id = await run('cleanup');
    assert.doesNotMatch(jobLog(sb, id), new RegExp(IN_PROCESS));
    assert.ok(fs.existsSync(path.join(sb.dir, 'cleanup.cleanup')));
  });

  test('a client hiding a reduce step: the coordinator runs none of its code; a writer staging batch files goes to the reduce process', async () => {
    const coordinator = sb.coordinator(POOL).pid;
    const lie = await run('lie');
    // what the client said is all the coordinator knows: the stand-in publishes, runs nothing
    assert.match(jobLog(sb, lie), new RegExp(IN_PROCESS));
    assert.ok(!fs.existsSync(path.join(sb.dir, 'lie.reduce')), "the hidden reduceResults did not run (and not in the coordinator's process)");
    const staged = await run('lie-staged');
    assert.doesNotMatch(jobLog(sb, staged), new RegExp(IN_PROCESS), 'batch files in the temp folder: the reduce process runs the real class');
    assert.ok(fs.existsSync(path.join(sb.dir, 'lie-staged.reduce')), 'the reduce process ran the hidden reduceResults');
    assert.equal(sb.coordinator(POOL).pid, coordinator, 'the same coordinator throughout');
  });
});
