import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { JsonReader, type JsonlIndex } from '../../formats/json-reader.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-reader-state-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test("the job's line index keeps every k-th entry for batches of k strides, and every batch and single item reads the same rows", async () => {
  // 50,000 rows with blank and whitespace-only lines and CRLF endings among them: an index of
  // 4,096-8,191 entries has a stride above 1
  const file = path.join(dir, 'rows.jsonl');
  let text = '\uFEFF';
  for (let i = 0; i < 50_000; i++) {
    text += JSON.stringify({ i, t: 'é'.repeat(i % 5) }) + (i % 7 === 0 ? '\r\n' : '\n');
    if (i % 997 === 0) text += '\n  \t\n';
  }
  fs.writeFileSync(file, text);
  const full = new JsonReader(file);
  assert.equal(await full.length(), 50_000);
  const whole = full.exportJobState() as JsonlIndex;
  assert.ok(whole.stride > 1 && whole.offsets.length > 4000, `stride ${whole.stride}, ${whole.offsets.length} entries`);

  const sent = full.exportJobState(1000) as JsonlIndex;
  const k = Math.floor(1000 / whole.stride);
  assert.equal(sent.stride, whole.stride * k);
  assert.ok(sent.stride <= 1000);
  assert.equal(sent.offsets.length, Math.ceil(whole.offsets.length / k));
  assert.deepEqual(JSON.parse(JSON.stringify(sent)), sent, 'it travels as JSON');
  // batches smaller than two strides keep the whole index
  assert.equal((full.exportJobState(whole.stride) as JsonlIndex).offsets.length, whole.offsets.length);

  const worker = new JsonReader(file);
  worker.importJobState(JSON.parse(JSON.stringify(sent)));
  for (const [s, e] of [[0, 999], [1000, 1999], [49_000, 49_999], [12_345, 12_345], [0, 0], [49_999, 49_999], [31_337, 32_336]]) {
    assert.deepEqual(await worker.downloadBatch(s, e), await full.downloadBatch(s, e), `batch [${s}, ${e}]`);
  }
  const rows = await worker.downloadBatch(2000, 2999);
  assert.deepEqual(rows.map((r) => r.i), Array.from({ length: 1000 }, (_, j) => 2000 + j));
});

test('a malformed line read through the thinned index is still named by its line number', async () => {
  const file = path.join(dir, 'bad.jsonl');
  const lines = Array.from({ length: 40_000 }, (_, i) => JSON.stringify({ i }));
  lines[30_123] = '{"i": 30123,';
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const full = new JsonReader(file);
  await full.length();
  const worker = new JsonReader(file);
  worker.importJobState(full.exportJobState(5000));
  await assert.rejects(worker.downloadBatch(30_000, 34_999), /bad\.jsonl line 30124:/);
});
