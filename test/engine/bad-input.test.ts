import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, mapperScript, readJsonl } from '../harness.js';

const POOL = 'badin';

describe('bad input: a clear error, and nothing already done is lost', () => {
  const sb = new Sandbox('badin');
  before(() => sb.applyPool(POOL, 'pool:\n  workers: 2\n'));
  after(() => sb.cleanup());

  const run = (name: string, opts: { input?: string; body: string; output?: string; extra?: string; batchSize?: number }) =>
    sb.run(
      sb.file(
        `${name}.ts`,
        mapperScript({ input: opts.input ?? path.join(sb.dir, 'in.jsonl'), output: opts.output ?? path.join(sb.dir, name, 'out.jsonl'), pool: POOL, body: opts.body, extra: opts.extra, batchSize: opts.batchSize }),
      ),
    );
  const SAVE = `await sky.saveResults(batch.map((x) => ({ out: x.text })));`;

  before(() => sb.file('in.jsonl', jsonl(Array.from({ length: 8 }, (_, i) => ({ text: `t${i}` })))));

  test('empty input is refused before anything is submitted', async () => {
    const empty = sb.file('empty.jsonl', '\n\n');
    const r = await run('empty', { input: empty, body: SAVE });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_EMPTY_INPUT/);
    assert.ok(r.stderr.includes(empty));
    assert.match((await sb.cli(['jobs', 'queue'])).stdout, /^no jobs/m);
  });

  test('a 50 MB line is read whole and mapped like any other', async () => {
    const big = 'x'.repeat(50 * 1024 * 1024);
    const file = sb.file('big.jsonl', `{"text":"a"}\n{"text":"${big}"}\n{"text":"c"}\n`);
    const r = await run('big', { input: file, body: `await sky.saveResults(batch.map((x) => ({ len: String(x.text).length })));`, batchSize: 1 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'big', 'out.jsonl')), [{ len: 1 }, { len: big.length }, { len: 1 }]);
  });

  test('non-UTF-8 bytes fail with the file and line; batches before it are kept', async () => {
    // one worker, so the batches before the bad line have certainly finished when it is reached
    await sb.applyPool('single', 'pool:\n  workers: 1\n');
    const file = sb.file('latin1.jsonl', Buffer.concat([Buffer.from('{"text":"ok1"}\n{"text":"ok2"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
    const script = sb.file('latin1.ts', mapperScript({ input: file, output: path.join(sb.dir, 'latin1', 'out.jsonl'), pool: 'single', body: SAVE, batchSize: 1 }));
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(`${file} line 3: not valid UTF-8`), r.stderr);
    const jobId = /job (\d+) failed/.exec(r.stderr)![1];
    assert.equal((await sb.cli(['recover', jobId])).code, 0);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'latin1', 'out.jsonl')), [{ out: 'ok1' }, { out: 'ok2' }]);
  });

  test('a result that cannot be serialised names the item and batch', async () => {
    const r = await run('bigint', { body: `await sky.saveResults(batch.map((x) => ({ out: x.text === 't5' ? 10n : x.text })));` });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_SERIALIZE/);
    assert.match(r.stderr, /item 1 cannot be written as JSON: Do not know how to serialize a BigInt \(job \d+, batch \[4, 5\]\)/);
  });

  test('a missing column names the column, the item and what the result has', async () => {
    const r = await run('column', { body: `await sky.saveResults(batch.map((x) => (x.text === 't3' ? { outptu: 1 } : { output: x.text })));`, extra: '' });
    assert.equal(r.code, 0, 'without a column filter every key is written');
    const s = sb.file(
      'column2.ts',
      `import * as sky from 'skybatch';
const m = sky.remoteFunction(async function m() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => (x.text === 't3' ? { outptu: 1 } : { output: x.text })));
});
await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))})).map(m, { poolName: '${POOL}', batchSize: 2, output: new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'column2', 'o.jsonl'))}, { column: 'output' }) });
`,
    );
    const r2 = await sb.run(s);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /SKYBATCH_E_MISSING_COLUMN/);
    assert.match(r2.stderr, /result for item 3 has no column 'output' \(it has: outptu\) \(job \d+, batch \[2, 3\]\)/);
  });

  test('a mapper that never calls saveResults fails its batch with a clear error, not a job stuck at 0%', async () => {
    const r = await run('nosave', { body: `void batch;` });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_SAVE_RESULTS/);
    assert.match(r.stderr, /batch \[\d+, \d+\]: the mapper asked for the next batch without calling saveResults\(\) for this one/);
  });

  test('a mapper that saves twice for one batch is told so', async () => {
    const r = await run('twice', { body: `${SAVE}\n    ${SAVE}` });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /saveResults\(\) was called twice for one batch/);
  });

  test('a mapper that returns before load() is exhausted fails the job', async () => {
    const r = await run('early-return', { body: `${SAVE}\n    return;` });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the mapper returned before load\(\) was exhausted/);
  });

  test('a writer that tries to write outside its output prefix is refused', async () => {
    const s = sb.file(
      'escape.ts',
      `import * as sky from 'skybatch';
@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('sneaky')
class Sneaky extends sky.OutputWriter<Record<string, never>> {
  async uploadBatch(results: sky.Item[], s: number) {
    await sky.utils.uploadBytesToCloud('x', \`\${this.path}/../../escaped-\${s}.txt\`);
    return this.path;
  }
}
const m = sky.remoteFunction(async function m() {
  for await (const batch of sky.load()) await sky.saveResults(batch);
});
await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))})).map(m, { poolName: '${POOL}', batchSize: 4, output: new Sneaky(${JSON.stringify(path.join(sb.dir, 'jail', 'out') + '/')}) });
`,
    );
    const r = await sb.run(s);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_BAD_PATH/);
    assert.match(r.stderr, /Sneaky\([^)]*jail\/out\/\) may write only under/);
    assert.ok(!fs.readdirSync(sb.dir).some((f) => f.startsWith('escaped-')), 'nothing was written outside');
  });

  test('the output directory is not left with half a file when the job fails', () => {
    assert.ok(!fs.existsSync(path.join(sb.dir, 'nosave', 'out.jsonl')));
  });
});
