import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImageWriter } from '../../formats/image-writer.js';
import { JsonWriter } from '../../formats/json-writer.js';
import { builtinWriters, onlyBuiltinWriters } from '../../runtime/coordinator/builtin-reduce.js';
import { isNoReduceWriter } from '../../runtime/coordinator/no-reduce-writer.js';
import { spec } from './spec.js';

describe('which jobs the coordinator reduces in its own process', async () => {
  const json = (path: string, extra: object = {}) => ({ type: 'json', path, options: { column: 'out' }, builtin: true, ...extra });

  test("built-in local writers: skybatch's own classes, built with the job's options", async () => {
    const ws = (await builtinWriters(spec({ writers: [json('/o/a.jsonl'), { type: 'image', path: '/o/img/', options: {}, builtin: true }] })))!;
    assert.deepEqual(ws.map((w) => w.constructor), [JsonWriter, ImageWriter]);
    assert.deepEqual(ws[0].options, { column: 'out' });
  });

  test('not: a writer the client did not mark built-in, or a built-in name the coordinator does not know', async () => {
    assert.equal(await builtinWriters(spec({ writers: [json('/o/a.jsonl'), json('/o/b.jsonl', { builtin: undefined })] })), undefined);
    assert.equal(await builtinWriters(spec({ writers: [json('/o/a.jsonl', { type: 'mine' })] })), undefined);
    assert.equal(await builtinWriters(spec({ writers: [json('/o/a.jsonl', { type: 'toString' })] })), undefined, 'an inherited property is not a class of ours');
  });

  test('not: a cloud or relative output (the job environment and the SDK stay out of the coordinator), nor more than 10,000 batches', async () => {
    assert.equal(await builtinWriters(spec({ writers: [json('s3://b/a.jsonl')] })), undefined);
    assert.equal(await builtinWriters(spec({ writers: [json('gs://b/a.jsonl')] })), undefined);
    assert.equal(await builtinWriters(spec({ writers: [json('rel/a.jsonl')] })), undefined);
    assert.ok(await builtinWriters(spec({ writers: [json('file:///o/a.jsonl')], total: 10_000, batchSize: 1 })));
    assert.equal(await builtinWriters(spec({ writers: [json('/o/a.jsonl')], total: 10_001, batchSize: 1 })), undefined);
    // a reduce process still skips the bundle for them
    assert.deepEqual(onlyBuiltinWriters(spec({ writers: [json('s3://b/a.jsonl')] }))!.map((w) => w.constructor), [JsonWriter]);
  });

  test("a user's writer with no reduce step: a stand-in bearing its class name, local or '' paths only; never for a wrong type mark", async () => {
    const none = (path: string, extra: object = {}) => ({ type: 'mine', path, options: {}, noReduceStep: 'Discard', ...extra });
    const ws = (await builtinWriters(spec({ writers: [json('/o/a.jsonl'), none('/o/b'), none('')] })))!;
    assert.deepEqual(
      ws.map((w) => `${w.constructor.name}(${w.path})`),
      ['JsonWriter(/o/a.jsonl)', 'Discard(/o/b)', 'Discard()'],
    );
    assert.ok(ws.slice(1).every((w) => isNoReduceWriter(w) && !(w instanceof JsonWriter)));
    assert.equal(await builtinWriters(spec({ writers: [none('s3://b/x')] })), undefined);
    assert.equal(await builtinWriters(spec({ writers: [none('', { noReduceStep: undefined })] })), undefined);
    assert.equal(await builtinWriters(spec({ writers: [none(''), none('/o/c', { noReduceStep: 1 })] })), undefined);
  });
});
