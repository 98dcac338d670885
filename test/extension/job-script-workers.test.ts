import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateJobScript } from '../../extension/core/job-script.js';
import type { NotebookCellData } from '../../extension/core/notebook-format.js';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { pruneEntry } from '../../runtime/client/prune.js';

const definitions = `import * as fs from 'node:fs';
fs.appendFileSync('runs.log', 'prepared input\\n');
const PREFIX = process.env.PREFIX ?? '>';
function label(s: string) { return PREFIX + s; }
function unusedHelper() { return 1; }
@sky.registry.INPUT_READER_REGISTRY.typeRegister('letters')
class Letters extends sky.InputReader<{ n: number }> {
  length() { return this.options.n; }
  async downloadBatch(s: number, e: number) { return Array.from({ length: e - s + 1 }, (_, i) => ({ c: String.fromCharCode(97 + s + i) })); }
}`;

const cells: NotebookCellData[] = [
  { kind: 'code', role: 'definitions', language: 'typescript', source: definitions },
  { kind: 'code', role: 'reader', language: 'typescript', source: `new Letters('', { n: 5 })` },
  { kind: 'code', role: 'mapper', language: 'typescript', source: `for await (const b of sky.load()) await sky.saveResults(b.map((x) => ({ out: label(String(x.c)) })));` },
  { kind: 'code', role: 'writers', language: 'typescript', source: `new sky.JsonWriter('out.jsonl')` },
  { kind: 'code', role: 'run', language: 'yaml', source: 'pool: p\nbatchSize: 2' },
];

describe("a notebook's generated script follows the rules of any script on workers", () => {
  test('workers get the mapper, the custom reader and the definitions they use; the rest runs once, where the notebook runs', () => {
    const s = generateJobScript(cells, parseRunSettings('pool: p\nbatchSize: 2').settings!, 'n.skybatch');
    const r = pruneEntry('/nb/.n.skybatch.ts', s.code, { name: 'mapper', site: [] }, [
      { kind: 'reader', type: 'letters', builtin: false },
      { kind: 'writer', type: 'json', builtin: true },
    ]);
    assert.equal(r.code.split('\n').length, s.code.split('\n').length, 'lines line up, so errors map back to cells');
    for (const kept of ["import * as sky from 'skybatch';", "const PREFIX = process.env.PREFIX ?? '>';", 'function label(s: string)', "typeRegister('letters')", 'const __skybatchMapper = sky.remoteFunction(async function mapper() {']) {
      assert.ok(r.code.includes(kept), `kept: ${kept}`);
    }
    for (const dropped of ["fs.appendFileSync('runs.log'", 'unusedHelper', "import * as fs from 'node:fs'", 'const __skybatchReader', 'const __skybatchWriters', 'new sky.Dataset', 'console.log']) {
      assert.ok(!r.code.includes(dropped), `runs only where the notebook runs: ${dropped}`);
    }
  });
});
