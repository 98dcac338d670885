import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { handLoop, singleRun, splitRun } from '../../bench/peers/hand-loop.js';

/** What the double-text job must write for `input`: empty lines and lone CRs skipped, as JsonReader does. */
function expected(input: string): string {
  return input
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter(Boolean)
    .map((l) => JSON.stringify({ output: String((JSON.parse(l) as { text: unknown }).text).repeat(2) }) + '\n')
    .join('');
}

describe('the bench hand loop (peer of the double-text job)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-handloop-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // CRLF, empty lines, multi-byte text, a line longer than the loop's 4 MB read chunk, no final newline
  const long = 'x'.repeat(5 << 20);
  const text =
    Array.from({ length: 3000 }, (_, i) => `{"text": "${['héllo', '世界', 'sky'][i % 3]}-${i}"}${i % 7 === 0 ? '\r' : ''}\n${i % 11 === 0 ? '\n' : ''}`).join('') +
    `{"text": "${long}"}\n\r\n{"text": 42}`;
  const input = path.join(dir, 'in.jsonl');
  fs.writeFileSync(input, text);
  const want = expected(text);

  test('one process writes exactly what the job writes', async () => {
    await singleRun(input, path.join(dir, 'one.jsonl'));
    assert.equal(fs.readFileSync(path.join(dir, 'one.jsonl'), 'utf8'), want);
  });

  test('byte ranges cut anywhere, even inside a line or a character, put every line in exactly one part', () => {
    const size = fs.statSync(input).size;
    for (const cuts of [[1], [size - 1], [37, 38, 39], [10_000, 10_001, size - 3], Array.from({ length: 9 }, (_, i) => Math.floor(((i + 1) * size) / 10))]) {
      const bounds = [0, ...cuts, size];
      let got = '';
      for (let i = 0; i + 1 < bounds.length; i++) {
        const part = path.join(dir, `part${i}.jsonl`);
        handLoop(input, part, bounds[i], bounds[i + 1]);
        got += fs.readFileSync(part, 'utf8');
      }
      assert.equal(got, want, `cuts at ${cuts.join(', ')}`);
    }
  });

  test('the 2-process split, concatenated, equals one process', async () => {
    await splitRun(input, path.join(dir, 'two.jsonl'), 2);
    assert.equal(fs.readFileSync(path.join(dir, 'two.jsonl'), 'utf8'), want);
  });
});
