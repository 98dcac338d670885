import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { CellConsoleRouter } from '../../extension/core/cell-console.js';
import { generateJobScript } from '../../extension/core/job-script.js';
import type { NotebookCellData } from '../../extension/core/notebook-format.js';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { mapStack, scriptMapOf } from '../../extension/core/script-map.js';
import { JobLauncher, scriptPathFor } from '../../extension/job-launcher.js';
import * as errors from '../../runtime/control/error-channel.js';
import { CLI, Sandbox, jsonl } from '../harness.js';

const cells = (defs2: string): NotebookCellData[] => [
  { kind: 'markdown', source: '# Console' },
  { kind: 'code', role: 'definitions', language: 'typescript', source: "import * as sky from 'skybatch';\nconsole.log('defs one');\nconsole.log('defs one again');" },
  { kind: 'code', role: 'definitions', language: 'typescript', source: defs2 },
  { kind: 'code', role: 'reader', language: 'typescript', source: "(console.log('opening in.jsonl'), new sky.JsonReader('in.jsonl'))" },
  { kind: 'code', role: 'mapper', language: 'typescript', source: 'for await (const batch of sky.load()) await sky.saveResults(batch);' },
  { kind: 'code', role: 'writers', language: 'typescript', source: "[new sky.JsonWriter('out/out.jsonl')].map((w) => (console.log('writing the output'), w))" },
  { kind: 'code', role: 'run', language: 'yaml', source: 'pool: nowhere\nbatchSize: 2' },
];

/**
 * Submits the notebook as the controller does (its generated script, `skybatch run`, the
 * launcher), to a pool that is not running: the cells' top-level code runs and prints, then
 * the submission fails. Each stdout line goes through the router the controller uses.
 */
async function submit(sb: Sandbox, name: string, nb: NotebookCellData[]) {
  const dir = path.join(sb.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'in.jsonl'), jsonl([{ text: 'a' }]));
  const notebook = path.join(dir, `${name}.skybatch`);
  const settings = parseRunSettings('pool: nowhere\nbatchSize: 2').settings!;
  const script = generateJobScript(nb, settings, path.basename(notebook));
  const routers = { stdout: new CellConsoleRouter(), stderr: new CellConsoleRouter() };
  const routed: { cell: number | undefined; line: string }[] = [];
  const routedErr: { cell: number | undefined; line: string }[] = [];
  const launcher = new JobLauncher({
    engine: { cli: CLI, errors },
    notebookPath: notebook,
    script,
    env: { SKYBATCH_HOME: sb.home },
    onEvent: () => undefined,
    onOutput: (line, stream) => {
      const r = routers[stream].line(line);
      if (!('marker' in r)) (stream === 'stdout' ? routed : routedErr).push({ cell: r.cell, line });
    },
  });
  const r = await launcher.run();
  return { r, routed, routedErr, map: scriptMapOf(script, scriptPathFor(notebook)) };
}

describe("a submitted job's console output", () => {
  const sb = new Sandbox('cell-console');
  after(() => sb.cleanup());

  test('each line printed by the top-level code of the definitions, reader and writers cells carries that cell', async () => {
    const { routed, r } = await submit(sb, 'prints', cells("console.log('defs two');"));
    assert.notEqual(r.code, 0, 'no pool: the submission itself fails');
    const of = (cell: number) => routed.filter((x) => x.cell === cell).map((x) => x.line);
    assert.deepEqual(of(1), ['defs one', 'defs one again']);
    assert.deepEqual(of(2), ['defs two']);
    assert.deepEqual(of(3), ['opening in.jsonl']);
    assert.deepEqual(of(5), ['writing the output']);
    assert.deepEqual(of(4), [], 'the mapper cell runs only on workers');
    assert.ok(routed.every((x) => x.cell !== undefined || !/^(defs|opening|writing)/.test(x.line)), JSON.stringify(routed));
    assert.ok(routed.every((x) => !x.line.startsWith('SKYBATCH_CONSOLE_CELL')), 'markers are not output');
  });

  test('stderr lines (console.error, console.warn) carry their cell too; no marker is left in the error message', async () => {
    const { r, routed, routedErr } = await submit(sb, 'stderr', cells("console.error('defs two complains');\nconsole.warn('and warns');\nconsole.log('and says');"));
    assert.notEqual(r.code, 0, 'no pool: the submission itself fails');
    const of = (lines: typeof routed, cell: number) => lines.filter((x) => x.cell === cell).map((x) => x.line);
    assert.deepEqual(of(routedErr, 2), ['defs two complains', 'and warns']);
    assert.deepEqual(of(routed, 2), ['and says']);
    assert.deepEqual(of(routedErr, 1), [], 'cell 1 printed nothing on stderr');
    assert.ok(routedErr.some((x) => x.cell === undefined), `the submission's failure is the script's own: ${JSON.stringify(routedErr)}`);
    assert.ok(r.error, JSON.stringify(r));
    assert.doesNotMatch(`${r.error.message}\n${r.error.stack ?? ''}`, /SKYBATCH_CONSOLE_CELL/);
  });

  test('a timer or promise a cell left behind prints under that cell, while a later cell runs', async () => {
    const nb = cells("setTimeout(() => console.log('late from defs two'), 50);\nvoid new Promise((r) => setTimeout(r, 100)).then(() => { process.stdout.write('no newline from defs two'); console.error('late error from defs two'); });");
    // the reader cell waits 300 ms, printing before and after: both timers fire meanwhile
    nb[3] = { ...nb[3], source: "(console.log('reader starts'), await new Promise((r) => setTimeout(r, 300)), console.log('reader waited'), new sky.JsonReader('in.jsonl'))" } as NotebookCellData;
    const { routed, routedErr } = await submit(sb, 'late', nb);
    const of = (lines: typeof routed, cell: number) => lines.filter((x) => x.cell === cell).map((x) => x.line);
    assert.deepEqual(of(routed, 2), ['late from defs two', 'no newline from defs two'], JSON.stringify(routed));
    assert.deepEqual(of(routed, 3), ['reader starts', 'reader waited'], 'a line left open by another cell ends before the next cell writes');
    assert.deepEqual(of(routedErr, 2), ['late error from defs two']);
  });

  test('a script that exits on its own: its error is its stderr, with no marker in it', async () => {
    const { r } = await submit(sb, 'exits', cells("console.error('giving up');\nprocess.exit(3);"));
    assert.equal(r.code, 3);
    assert.ok(r.error, JSON.stringify(r));
    assert.match(r.error.message, /giving up/);
    assert.doesNotMatch(r.error.message, /SKYBATCH_CONSOLE_CELL/);
  });

  test("the markers keep every cell line where it was: a throw maps to its cell's line", async () => {
    const { r, routed, map } = await submit(sb, 'throws', cells("console.log('before');\n\nthrow new Error('defs two broke');"));
    assert.ok(r.error?.stack, JSON.stringify(r));
    assert.match(r.error!.message, /defs two broke/);
    const m = mapStack(r.error!.stack!, map, r.error!.scriptLine);
    assert.equal(m.origin?.cell, 2);
    assert.equal(m.origin?.cellLine, 2);
    assert.deepEqual(routed.filter((x) => x.cell === 2).map((x) => x.line), ['before']);
    assert.equal(routed.filter((x) => x.cell === 3).length, 0, 'the reader cell never ran');
  });
});
