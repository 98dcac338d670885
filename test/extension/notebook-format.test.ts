import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { NotebookFormatError, ROLES, parse, serialize, type NotebookCellData } from '../../extension/core/notebook-format.js';
import { ROOT } from '../harness.js';

// A small deterministic generator: cells with the awkward content a real notebook can hold.
function rng(seed: number) {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
}
const PIECES = ['', 'x', '```', '````', '```ts mapper', '\\```ts reader', '<!-- cell -->', '\\<!-- cell -->', '  indented', '# title', '~~~', 'a ``` b', '\t', ' '];

function randomCells(r: () => number): NotebookCellData[] {
  const n = Math.floor(r() * 6);
  return Array.from({ length: n }, () => {
    const lines = Array.from({ length: Math.floor(r() * 4) }, () => PIECES[Math.floor(r() * PIECES.length)]);
    const source = lines.join('\n');
    if (r() < 0.4) return { kind: 'markdown', source };
    const role = ROLES[Math.floor(r() * ROLES.length)];
    return { kind: 'code', role, language: role === 'run' ? 'yaml' : r() < 0.8 ? 'typescript' : 'javascript', source };
  });
}

describe('.skybatch format', () => {
  test('cells survive a write and a read exactly, whatever their content', () => {
    const r = rng(7);
    for (let i = 0; i < 3000; i++) {
      const cells = randomCells(r);
      const text = serialize(cells);
      assert.deepEqual(parse(text), cells, `case ${i}:\n${text}`);
      assert.equal(serialize(parse(text)), text);
    }
  });

  test('every sample notebook reads and writes back byte for byte', () => {
    const files = ['quickstart/quickstart.skybatch', 'custom-formats/custom-formats.skybatch', 'images/images.skybatch', 'python-quickstart/python-quickstart.skybatch'];
    for (const f of files) {
      const text = fs.readFileSync(path.join(ROOT, 'samples', f), 'utf8');
      const cells = parse(text);
      assert.deepEqual(
        cells.filter((c) => c.kind === 'code').map((c) => (c as { role: string }).role).filter((r) => r !== 'definitions'),
        ['reader', 'mapper', 'writers', 'run'],
        f,
      );
      assert.equal(serialize(cells), text, f);
    }
  });

  test('a code cell whose content holds a fence gets a longer fence', () => {
    const cells: NotebookCellData[] = [{ kind: 'code', role: 'mapper', language: 'typescript', source: 'const md = `\n```\n`;' }];
    const text = serialize(cells);
    assert.ok(text.startsWith('````ts mapper\n'), text);
    assert.deepEqual(parse(text), cells);
  });

  test('a truncated file is an error naming the line, not an empty notebook', () => {
    assert.throws(() => parse('# t\n\n```ts reader\nnew sky.JsonReader("a")\n'), (e: unknown) => e instanceof NotebookFormatError && e.line === 3 && /never closed/.test(e.message));
    assert.throws(() => parse('a\0b'), /NUL bytes/);
    assert.throws(() => parse('```ts reader\nx\n```\nno blank line\n'), /line 4: expected a blank line between cells/);
  });

  test('an empty file is an empty notebook, and Markdown fences without a role stay Markdown', () => {
    assert.deepEqual(parse(''), []);
    const md = '# Notes\n\n```ts\nconst x = 1;\n```';
    assert.deepEqual(parse(md + '\n'), [{ kind: 'markdown', source: md }]);
  });
});
