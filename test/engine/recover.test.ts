import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, listFiles, mapperScript, readJsonl } from '../harness.js';

const POOL = 'recover';
const rows = Array.from({ length: 8 }, (_, i) => ({ text: `t${i}` }));
// batches [0, 1], [2, 3], [4, 5] commit; [6, 7] fails at once (a TypeError is not retried)
const finished = rows.slice(0, 6).map((r) => ({ out: r.text.toUpperCase() }));

describe('recovery is idempotent', () => {
  const sb = new Sandbox('recover');
  before(async () => {
    // one worker: batches run in order, so exactly the first three have committed when the fourth fails
    await sb.applyPool(POOL, 'pool:\n  workers: 1\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(() => sb.cleanup());

  /** Runs a job that fails on item t6 and returns its id. */
  async function failedJob(name: string): Promise<{ jobId: string; out: string }> {
    const out = path.join(sb.dir, name, 'out.jsonl');
    const script = sb.file(
      `${name}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: out,
        pool: POOL,
        body: `if (batch.some((x) => x.text === 't6')) throw new TypeError('bad row');
    await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));`,
      }),
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    return { jobId: /job (\d+) failed/.exec(r.stderr)![1], out };
  }

  test('recover says how many rows it wrote; run again, it finds nothing to merge and leaves the output as it is', async () => {
    const { jobId, out } = await failedJob('twice');
    const first = await sb.cli(['recover', jobId]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`job ${jobId}: recovered 6 row\\(s\\) into ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.deepEqual(readJsonl(out), finished);
    const bytes = fs.readFileSync(out);

    const second = await sb.cli(['recover', jobId]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`job ${jobId}: nothing to merge, output left as is`));
    assert.ok(fs.readFileSync(out).equals(bytes), 'the second recover left the output alone');
    assert.deepEqual(listFiles(path.dirname(out)), ['out.jsonl']);

    // what a program (the extension) reads instead of the sentence
    const json = await sb.cli(['recover', jobId, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { jobId: string; alreadyPublished?: string; outputs: { path: string }[] };
    assert.equal(report.jobId, jobId);
    assert.ok(report.alreadyPublished, 'the report says the outputs were published already');
    assert.ok(fs.readFileSync(out).equals(bytes));
  });

  test('recover after a by-hand reduceResults(42) + cleanup(42) (a number id) leaves the output alone', async () => {
    const { jobId, out } = await failedJob('byhand');
    const script = sb.file(
      'byhand-reduce.ts',
      `import * as sky from 'skybatch';
const w = new sky.JsonWriter(${JSON.stringify(out)});
await w.reduceResults(${Number(jobId)});
await w.cleanup(${Number(jobId)});
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(out), finished, 'a number job id means the same as its string');
    assert.deepEqual(listFiles(path.dirname(out)), ['out.jsonl'], 'cleanup(number) removed the temp files');
    const bytes = fs.readFileSync(out);

    const rec = await sb.cli(['recover', jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stdout, /nothing to merge, output left as is/);
    assert.ok(fs.readFileSync(out).equals(bytes), 'recover did not truncate the output merged by hand');
  });

  test('reduceResults by hand for a job id with no batch files leaves the existing output and says so', async () => {
    const out = sb.file('nofiles/out.jsonl', '{"kept":true}\n');
    const script = sb.file(
      'nofiles.ts',
      `import * as sky from 'skybatch';
await new sky.JsonWriter(${JSON.stringify(out)}).reduceResults('4242');
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /job 4242 has no batch files under .*: nothing to merge, output left as is/);
    assert.equal(fs.readFileSync(out, 'utf8'), '{"kept":true}\n');
  });

  test('recover of a job that succeeded merges nothing and leaves its output alone', async () => {
    const out = path.join(sb.dir, 'ok', 'out.jsonl');
    const script = sb.file('ok.ts', mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output: out, pool: POOL, body: `await sky.saveResults(batch.map((x) => ({ out: x.text })));` }));
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT (\d+) SUCCEEDED/.exec(r.stdout)![1];
    const bytes = fs.readFileSync(out);
    const rec = await sb.cli(['recover', jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.match(rec.stdout, new RegExp(`job ${jobId}: nothing to merge, output left as is \\(they were published at `));
    assert.ok(fs.readFileSync(out).equals(bytes));
  });

  test('recover of a job id that does not exist is an error', async () => {
    const r = await sb.cli(['recover', '9999']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error \[SKYBATCH_E_JOB_NOT_FOUND\]: job 9999 not found/);
  });
});
