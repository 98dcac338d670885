import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, mapperScript, readJsonl } from '../harness.js';

const POOL = 'skip';
const rows = Array.from({ length: 20 }, (_, i) => ({ text: i === 13 ? 'poison' : `t${i}` }));

describe("onItemError: 'skip' — one poison row costs one row", () => {
  const sb = new Sandbox('skip');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(() => sb.cleanup());

  const script = (name: string, body: string, extra: string) =>
    sb.file(name + '.ts', mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output: path.join(sb.dir, name, 'out.jsonl'), pool: POOL, batchSize: 4, body, extra }));

  test('a batch that keeps failing is split down to single items; only the poison row goes to errors.jsonl', async () => {
    const r = await sb.run(
      script('poison', `if (batch.some((x) => x.text === 'poison')) throw new Error('cannot tokenize poison');\n    await sky.saveResults(batch.map((x) => ({ out: x.text })));`, ", onItemError: 'skip', maxAttempts: 2"),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'poison', 'out.jsonl')), rows.filter((x) => x.text !== 'poison').map((x) => ({ out: x.text })));
    const errors = readJsonl(path.join(sb.dir, 'poison', 'errors.jsonl')) as { index: number; input: unknown; error: string; code: string; stack: string }[];
    assert.equal(errors.length, 1);
    assert.equal(errors[0].index, 13);
    assert.deepEqual(errors[0].input, { text: 'poison' });
    assert.match(errors[0].error, /cannot tokenize poison/);
    assert.match(errors[0].stack, /poison\.ts:\d+/);
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    const log = (await sb.cli(['jobs', 'logs', jobId])).stdout;
    assert.match(log, /batch \[12, 15\] split into 4 single-item batches/);
    assert.match(log, /item 13 skipped into errors\.jsonl/);
  });

  test('items the mapper marks with failItem are skipped and the rest of their batch is written', async () => {
    const r = await sb.run(
      script('marked', `await sky.saveResults(batch.map((x) => (String(x.text).endsWith('5') ? sky.failItem(new Error('no five: ' + x.text)) : { out: x.text })));`, ", onItemError: 'skip'"),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      readJsonl(path.join(sb.dir, 'marked', 'out.jsonl')),
      rows.filter((x) => !x.text.endsWith('5')).map((x) => ({ out: x.text })),
    );
    const errors = readJsonl(path.join(sb.dir, 'marked', 'errors.jsonl')) as { index: number; error: string }[];
    assert.deepEqual(errors.map((e) => [e.index, e.error]), [[5, 'no five: t5'], [15, 'no five: t15']]);
  });

  test("with the default onItemError: 'fail', a marked item fails the job naming it", async () => {
    const r = await sb.run(script('strict', `await sky.saveResults(batch.map((x) => (x.text === 't6' ? sky.failItem(new Error('bad six')) : { out: x.text })));`, ''));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_ITEM_FAILED/);
    assert.match(r.stderr, /batch \[4, 7\]: item 6 failed: bad six/);
  });
});
