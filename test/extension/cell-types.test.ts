import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import typescript from 'typescript';
import type * as TS from 'typescript';
import { CellTypes, scriptCompilerOptions } from '../../extension/core/cell-types.js';
import { CellTypesService, type CompletionsAnswer, type DetailsAnswer, type HoverAnswer, type SignatureAnswer } from '../../extension/core/cell-types-service.js';
import { generateJobScript } from '../../extension/core/job-script.js';
import { parse, type NotebookCellData } from '../../extension/core/notebook-format.js';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { ROOT, listFiles } from '../harness.js';

// TypeScript is CommonJS: its default export is the namespace the extension gets from VS Code.
const ts = typescript as unknown as typeof TS;

const SAMPLES = listFiles(path.join(ROOT, 'samples')).filter((f) => f.endsWith('.skybatch'));

const settingsOf = (cells: NotebookCellData[]) => parseRunSettings(cells.find((c) => c.kind === 'code' && c.role === 'run')!.source).settings!;

describe('typed cells', () => {
  test('every sample notebook is found (the list below is not empty by accident)', () => {
    assert.ok(SAMPLES.length >= 4, SAMPLES.join(', '));
  });

  for (const sample of SAMPLES) {
    test(`the generated script of ${sample} type-checks against the skybatch package (tsc)`, () => {
      const file = path.join(ROOT, 'samples', sample);
      const cells = parse(fs.readFileSync(file, 'utf8'));
      const script = generateJobScript(cells, settingsOf(cells), path.basename(file));
      // Where the extension writes it, so the notebook's relative imports resolve as at run time.
      const scriptPath = path.join(path.dirname(file), `.${path.basename(file)}.ts`);
      const options = scriptCompilerOptions(ts, ROOT);
      const host = ts.createCompilerHost(options);
      const read = host.readFile.bind(host);
      host.readFile = (f) => (f === scriptPath ? script.code : read(f));
      const exists = host.fileExists.bind(host);
      host.fileExists = (f) => f === scriptPath || exists(f);
      const getSource = host.getSourceFile.bind(host);
      host.getSourceFile = (f, lang, ...rest) => (f === scriptPath ? ts.createSourceFile(f, script.code, lang) : getSource(f, lang, ...rest));
      const program = ts.createProgram([scriptPath], options, host);
      const diags = ts.getPreEmitDiagnostics(program);
      assert.deepEqual(diags.map((d) => ts.formatDiagnostic(d, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' })), []);
      // The package the script imports is the engine's own declarations, not something else named skybatch.
      assert.ok(program.getSourceFiles().some((f) => f.fileName === path.join(ROOT, 'out', 'index.d.ts')));
    });
  }

  test('a type error in a cell is one of the script', () => {
    const cells = parse(fs.readFileSync(path.join(ROOT, 'samples/quickstart/quickstart.skybatch'), 'utf8'));
    const mapper = cells.find((c) => c.kind === 'code' && c.role === 'mapper') as Extract<NotebookCellData, { kind: 'code' }>;
    mapper.source = mapper.source.replace('sky.saveResults(', 'sky.saveResult(');
    const types = new CellTypes(ts, path.join(ROOT, 'samples/quickstart/.quickstart.skybatch.ts'), ROOT);
    assert.ok(types.update(cells));
    assert.match(types.diagnostics().map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('\n'), /Property 'saveResult' does not exist/);
    types.dispose();
  });

  describe('in the cells of a notebook', () => {
    const cells: NotebookCellData[] = [
      { kind: 'markdown', source: '# typed' },
      { kind: 'code', role: 'definitions', language: 'typescript', source: 'const SUFFIX = "!";\nfunction shout(s: string) {\n  return s.toUpperCase() + SUFFIX;\n}' },
      { kind: 'code', role: 'reader', language: 'typescript', source: "new sky.JsonReader('data.jsonl')" },
      { kind: 'code', role: 'mapper', language: 'typescript', source: 'for await (const batch of sky.load()) {\n  await sky.saveResults(batch.map((item) => ({ out: shout(String(item.text)) })));\n  sky.\n}' },
      { kind: 'code', role: 'writers', language: 'typescript', source: "new sky.JsonWriter('out.jsonl', { column: 'out' })" },
      { kind: 'code', role: 'run', language: 'yaml', source: 'pool: p\nbatchSize: 2' },
    ];
    const types = new CellTypes(ts, path.join(ROOT, 'samples/quickstart/.typed.skybatch.ts'), ROOT);
    after(() => types.dispose());

    test('`sky.` completes the API, in the mapper cell as in the others', () => {
      assert.ok(types.update(cells));
      const c = types.completions(3, 2, 6, '.');
      const names = c!.entries.map((e) => e.name);
      for (const n of ['load', 'saveResults', 'JsonReader', 'JsonWriter', 'pythonFunction', 'utils', 'registry']) assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
      const d = c!.details('saveResults');
      assert.match(ts.displayPartsToString(d!.displayParts), /saveResults\(results: /);
    });

    test('hovers show the types of the API, the items and the definitions of other cells', () => {
      const batch = types.hover(3, 0, 'for await (const ba'.length);
      assert.match(batch!.signature, /^const batch: sky\.Item\[\]$/);
      assert.deepEqual(batch!.range, { cell: 3, line: 0, character: 17, endLine: 0, endCharacter: 22 });
      const shout = types.hover(3, 1, '  await sky.saveResults(batch.map((item) => ({ out: sho'.length);
      assert.match(shout!.signature, /^function shout\(s: string\): string$/);
      const reader = types.hover(2, 0, 'new sky.JsonRe'.length);
      assert.match(reader!.signature, /JsonReader/);
      assert.ok(reader!.documentation.length > 0, 'the API is documented (TSDoc)');
    });

    test('signature help names the parameters of a writer', () => {
      const h = types.signatureHelp(4, 0, "new sky.JsonWriter('out.jsonl', ".length);
      assert.ok(h, 'signature help');
      const sig = h.items[h.selectedItemIndex];
      assert.equal(h.argumentIndex, 1);
      assert.deepEqual(sig.parameters.map((p) => p.name), ['path', 'options']);
    });

    test("the worker thread's side answers in plain JSON, asked with the notebook's cells each time", () => {
      const service = new CellTypesService(ts, ROOT);
      const at = { notebook: 'file:///nb.skybatch', scriptPath: path.join(ROOT, 'samples/quickstart/.svc.skybatch.ts'), cells };
      const c = service.answer({ ...at, id: 1, kind: 'completions', cell: 3, line: 2, character: 6, trigger: '.' }) as CompletionsAnswer;
      assert.deepEqual(structuredClone(c), c);
      assert.ok(c.entries.some((e) => e.name === 'saveResults'), JSON.stringify(c.entries.slice(0, 5)));
      const d = service.answer({ ...at, id: 2, kind: 'details', cell: 3, line: 2, character: 6, entry: { name: 'saveResults' } }) as DetailsAnswer;
      assert.match(d.detail, /saveResults\(results: /);
      const h = service.answer({ ...at, id: 3, kind: 'hover', cell: 3, line: 0, character: 19 }) as HoverAnswer;
      assert.equal(h.signature, 'const batch: sky.Item[]');
      const sig = service.answer({ ...at, id: 4, kind: 'signature', cell: 4, line: 0, character: "new sky.JsonWriter('out.jsonl', ".length }) as SignatureAnswer;
      assert.deepEqual(sig.signatures[sig.activeSignature].parameters.map((p) => p.label.split(':')[0].replace('?', '')), ['path', 'options']);
      assert.equal(sig.activeParameter, 1);
      assert.equal(service.answer({ ...at, id: 5, kind: 'forget' }), undefined);
      service.dispose();
    });

    test('a notebook missing a role has no script, and says so instead of answering wrongly', () => {
      assert.equal(types.update(cells.filter((c) => c.kind !== 'code' || c.role !== 'writers')), false);
      assert.equal(types.completions(3, 2, 6, '.'), undefined);
    });
  });
});
