import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { ImageWriter, InputReader, JsonReader, JsonWriter, Registry, SkybatchError, utils } from '../../formats/index.js';
import { MAX_INDEX_ENTRIES } from '../../formats/json-reader.js';
import { parsePoolConfig } from '../../runtime/pool-config.js';
import { listFiles, readJsonl } from '../harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-formats-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function rejectsWith(code: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof SkybatchError, `expected SkybatchError, got ${err}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('JsonReader', () => {
  test('reads any slice of a large file through its sparse index, skipping blank lines and CRLF', async () => {
    const file = path.join(tmp, 'big.jsonl');
    const n = 150_000; // past 2 x MAX_INDEX_ENTRIES index entries: the stride doubles
    const lines: string[] = [];
    for (let i = 0; i < n; i++) lines.push(JSON.stringify({ i }) + (i % 1000 === 7 ? '\r\n\n' : '\n'));
    fs.writeFileSync(file, lines.join(''));
    const reader = new JsonReader(file);
    assert.equal(await reader.length(), n);
    const state = reader.exportJobState()!;
    assert.ok(state.stride >= 2 && state.offsets.length <= 2 * MAX_INDEX_ENTRIES);
    const worker = new JsonReader(file);
    worker.importJobState(JSON.parse(JSON.stringify(state)));
    for (const [s, e] of [[0, 0], [0, 9], [7, 8], [131_071, 131_075], [n - 3, n - 1], [65_535, 65_540]]) {
      assert.deepEqual(await worker.downloadBatch(s, e), Array.from({ length: e - s + 1 }, (_, k) => ({ i: s + k })), `rows ${s}..${e}`);
    }
  });

  test('a UTF-8 BOM and whitespace-only lines are skipped, and every slice of a large file still lines up', async () => {
    const file = path.join(tmp, 'bom.jsonl');
    const n = 150_000;
    const blanks = ['   \n', '\t\r\n', ' \t \n', '\r\n', '\n'];
    const parts: string[] = ['\uFEFF'];
    for (let i = 0; i < n; i++) parts.push(JSON.stringify({ i }) + (i % 997 === 3 ? '\n' + blanks[i % blanks.length] : i % 5 === 1 ? ' \r\n' : '\n'));
    parts.push('  \t');
    fs.writeFileSync(file, parts.join(''));
    const reader = new JsonReader(file);
    assert.equal(await reader.length(), n);
    const worker = new JsonReader(file);
    worker.importJobState(JSON.parse(JSON.stringify(reader.exportJobState())));
    for (const [s, e] of [[0, 0], [0, 9], [3, 5], [131_071, 131_075], [n - 3, n - 1], [65_535, 65_540], [99_700, 99_800]]) {
      assert.deepEqual(await worker.downloadBatch(s, e), Array.from({ length: e - s + 1 }, (_, k) => ({ i: s + k })), `rows ${s}..${e}`);
    }

    const small = path.join(tmp, 'bom-small.jsonl');
    fs.writeFileSync(small, '\uFEFF  \n{"a":1}\n \t \n\r\n  {"a":2}  \r\n\t\n{"a":3}');
    const r = new JsonReader(small);
    assert.equal(await r.length(), 3);
    assert.deepEqual(await r.downloadBatch(0, 2), [{ a: 1 }, { a: 2 }, { a: 3 }]);
    assert.deepEqual(await r.downloadBatch(1, 1), [{ a: 2 }]);
    assert.deepEqual(await utils.loadJsonlFromCloud(small), [{ a: 1 }, { a: 2 }, { a: 3 }]);
    fs.writeFileSync(small, '\uFEFF{"a":1}\n   \n{"a":\n');
    await assert.rejects(new JsonReader(small).downloadBatch(1, 1), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', /bom-small\.jsonl line 3: /));
    await assert.rejects(utils.loadJsonlFromCloud(small), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', /bom-small\.jsonl line 3: /));
  });

  test('relative paths are made absolute at construction', () => {
    assert.equal(new JsonReader('data/x.jsonl').path, path.resolve('data/x.jsonl'));
    assert.equal(new JsonReader('file:///abs/x.jsonl').path, '/abs/x.jsonl');
    assert.equal(new JsonReader('s3://b/k.jsonl').path, 's3://b/k.jsonl');
  });

  test('a malformed line, a non-object and non-UTF-8 bytes name the file and line', async () => {
    const file = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('{"a":1}\n\n{"a":2}\n{"a":\n[1,2]\n'), Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d, 0x0a])]));
    const r = new JsonReader(file);
    assert.equal(await r.length(), 5);
    assert.deepEqual(await r.downloadBatch(0, 1), [{ a: 1 }, { a: 2 }]);
    await assert.rejects(r.downloadBatch(2, 2), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', new RegExp(`${file} line 4: `)));
    await assert.rejects(r.downloadBatch(3, 3), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', /line 5: expected a JSON object, got an array/));
    await assert.rejects(r.downloadBatch(4, 4), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', /line 6: not valid UTF-8/));
  });

  test('lines read as one array must each be one object: lines that only parse together are refused by line', async () => {
    const file = path.join(tmp, 'glued.jsonl');
    const read = async (text: string, s: number, e: number) => {
      fs.writeFileSync(file, text);
      const r = new JsonReader(file);
      await r.length();
      return r.downloadBatch(s, e);
    };
    // two objects on one line, and the next line finishing the second: two lines, two objects together
    await assert.rejects(read('{"a":1},{"b":[{}\n{}]}\n', 0, 1), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', new RegExp(`${file} line 1: `)));
    await assert.rejects(read('{"a":1}\n{"a":\n2}\n', 0, 2), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', /line 2: /));
    await assert.rejects(read('{"a":1}\n2\n', 0, 1), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', /line 2: expected a JSON object, got number/));
    await assert.rejects(read('{"a":1}\n[{"a":2}]\n', 0, 1), rejectsWith('SKYBATCH_E_MALFORMED_JSONL', /line 2: expected a JSON object, got an array/));
    // a "},{" inside a string is only text
    assert.deepEqual(await read('{"s":"},{"}\r\n{"s":"} , {"}\n{"b":2}', 0, 2), [{ s: '},{' }, { s: '} , {' }, { b: 2 }]);
    assert.deepEqual(await read('{"a":1}\n{"a":2}\n{"a":3}\n', 1, 2), [{ a: 2 }, { a: 3 }]);
  });

  test('a missing file is a clear not-found error', async () => {
    await assert.rejects(new JsonReader(path.join(tmp, 'nope.jsonl')).length(), rejectsWith('SKYBATCH_E_NOT_FOUND', /nope\.jsonl: no such file/));
  });
});

describe('JsonWriter', () => {
  const job = { id: '7' };
  test('batch files merge in index order, by column selection, and cleanup leaves no temp files', async () => {
    const out = path.join(tmp, 'jw', 'out.jsonl');
    const w = new JsonWriter(out, { column: ['b', 'a'] });
    // uploaded out of order, with start indices whose string order differs from numeric order
    await w.uploadBatch([{ a: 10, b: 'x', c: 0 }], 10, 10, job.id);
    await w.uploadBatch([{ a: 2, b: 'y' }, { a: 3, b: 'z' }], 2, 3, job.id);
    await w.uploadBatch([{ a: 9, b: 'w' }], 9, 9, job.id);
    assert.deepEqual((await utils.listBatchFiles(out, job.id)).map((p) => utils.parseBatchPath(p)), [[2, 3], [9, 9], [10, 10]]);
    await w.reduceResults(job.id);
    await w.cleanup(job.id);
    assert.deepEqual(readJsonl(out), [{ b: 'y', a: 2 }, { b: 'z', a: 3 }, { b: 'w', a: 9 }, { b: 'x', a: 10 }]);
    assert.deepEqual(listFiles(path.dirname(out)), ['out.jsonl']);
  });

  test('a single column keeps just that key', async () => {
    const out = path.join(tmp, 'one.jsonl');
    const w = new JsonWriter(out, { column: 'output' });
    await w.uploadBatch([{ output: 'a', other: 1 }], 0, 0, '1');
    await w.reduceResults('1');
    assert.deepEqual(readJsonl(out), [{ output: 'a' }]);
  });

  test('a missing column, binary data and unserialisable values are errors naming the item and batch', async () => {
    const w = new JsonWriter(path.join(tmp, 'err.jsonl'), { column: 'output' });
    await assert.rejects(w.uploadBatch([{ output: 1 }, { nope: 2 }], 4, 5, '9'), rejectsWith('SKYBATCH_E_MISSING_COLUMN', /item 5 has no column 'output' \(it has: nope\) \(job 9, batch \[4, 5\]\)/));
    const all = new JsonWriter(path.join(tmp, 'err2.jsonl'));
    await assert.rejects(all.uploadBatch([{ img: new Uint8Array(3) }], 0, 0, '9'), rejectsWith('SKYBATCH_E_SERIALIZE', /column 'img' of item 0 holds binary data/));
    await assert.rejects(all.uploadBatch([{ n: 1n }], 0, 0, '9'), rejectsWith('SKYBATCH_E_SERIALIZE', /item 0 cannot be written as JSON.*job 9, batch \[0, 0\]/));
    assert.throws(() => new JsonWriter('x.jsonl', { column: [] }), rejectsWith('SKYBATCH_E_BAD_OPTION', /option 'column'/));
  });
});

describe('ImageWriter', () => {
  test('writes {dir}/{index:08d}.png from RGBA pixels or PNG bytes, and a manifest', async () => {
    const dir = path.join(tmp, 'imgs') + '/';
    const w = new ImageWriter(dir, { column: 'image' });
    const rgba = { width: 2, height: 1, data: new Uint8Array([255, 0, 0, 255, 0, 255, 0, 255]) };
    const png = PNG.sync.write(Object.assign(new PNG({ width: 1, height: 1 }), { data: Buffer.from([1, 2, 3, 255]) }));
    await w.uploadBatch([{ image: rgba }, { image: png }], 4, 5, '3');
    await w.reduceResults('3');
    await w.cleanup('3');
    assert.deepEqual(listFiles(dir), ['00000004.png', '00000005.png', '_manifest.jsonl']);
    const decoded = PNG.sync.read(fs.readFileSync(path.join(dir, '00000004.png')));
    assert.deepEqual([decoded.width, decoded.height, ...decoded.data.subarray(0, 8)], [2, 1, 255, 0, 0, 255, 0, 255, 0, 255]);
    assert.deepEqual(fs.readFileSync(path.join(dir, '00000005.png')), png);
    assert.deepEqual(readJsonl(path.join(dir, '_manifest.jsonl')), [{ file: '00000004.png', index: 4 }, { file: '00000005.png', index: 5 }]);
  });

  test('a missing or invalid image fails the batch naming the item, before anything is written', async () => {
    const dir = path.join(tmp, 'badimgs');
    const w = new ImageWriter(dir);
    await assert.rejects(w.uploadBatch([{ image: new Uint8Array(40) }], 0, 0, '1'), rejectsWith('SKYBATCH_E_BAD_IMAGE', /item 0, column 'image': 40 bytes that are not a PNG/));
    await assert.rejects(w.uploadBatch([{ image: { width: 2, height: 2, data: new Uint8Array(3) } }], 0, 0, '1'), rejectsWith('SKYBATCH_E_BAD_IMAGE', /'data' has 3 bytes, expected 2x2x4 = 16/));
    await assert.rejects(w.uploadBatch([{ image: 'cat.png' }], 3, 3, '1'), rejectsWith('SKYBATCH_E_BAD_IMAGE', /item 3.*got string \(job 1, batch \[3, 3\]\)/));
    await assert.rejects(w.uploadBatch([{ picture: 1 }], 0, 0, '1'), rejectsWith('SKYBATCH_E_MISSING_COLUMN', /no column 'image'/));
    assert.deepEqual(listFiles(dir), []);
  });
});

describe('registries and pool files', () => {
  test('the decorator and register() forms register a class; an unregistered class is a clear error', () => {
    const reg = new Registry<InputReader<object>>('input reader');
    @reg.typeRegister('nums')
    class Nums extends InputReader<{ n: number }> {
      length() {
        return this.options.n;
      }
      downloadBatch(s: number, e: number) {
        return Array.from({ length: e - s + 1 }, (_, i) => ({ i: s + i }));
      }
    }
    class Other extends Nums {}
    assert.equal(reg.get('nums'), Nums);
    assert.equal(reg.nameOf(new Nums('', { n: 1 })), 'nums');
    assert.throws(() => reg.nameOf(new Other('', { n: 1 })), rejectsWith('SKYBATCH_E_UNREGISTERED_FORMAT', /class Other is not registered/));
    reg.register('other', Other);
    assert.equal(reg.nameOf(new Other('', { n: 1 })), 'other');
    assert.throws(() => reg.get('zzz'), rejectsWith('SKYBATCH_E_UNREGISTERED_FORMAT', /no input reader registered as 'zzz' \(known: nums, other\)/));
  });

  test('a valid pool file parses with its defaults', () => {
    const c = parsePoolConfig('pool:\n  workers: 3\nresources:\n  accelerators: L4:1\n  cpus: 4+\nsetup: |\n  echo hi\nenvs:\n  N: 5\n');
    assert.deepEqual(c, { pool: { workers: 3 }, resources: { accelerators: 'L4:1', cpus: '4+' }, setup: 'echo hi\n', envs: { N: '5' } });
  });
});
