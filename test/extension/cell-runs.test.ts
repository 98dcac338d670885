import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { generateJobScript, type CellRunTail } from '../../extension/core/job-script.js';
import { parse, type NotebookCellData } from '../../extension/core/notebook-format.js';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { mapStack, scriptMapOf } from '../../extension/core/script-map.js';
import { JobLauncher } from '../../extension/job-launcher.js';
import * as errors from '../../runtime/control/error-channel.js';
import { CLI, ROOT, Sandbox } from '../harness.js';

const RUNNER = pathToFileURL(path.join(ROOT, 'out', 'runtime', 'client', 'cell-run.js')).href;

interface CellLine {
  kind: string;
  error?: { code: string; message: string; stack?: string };
  [k: string]: unknown;
}

/**
 * Runs one cell of a notebook on its own, the way the extension does: the generated script,
 * cut to the cell, run by `skybatch run` next to the notebook; returns its SKYBATCH_CELL line.
 */
async function runCellOf(sb: Sandbox, notebook: string, kind: CellRunTail['kind']) {
  const cells = parse(fs.readFileSync(notebook, 'utf8'));
  const run = cells.find((c): c is Extract<NotebookCellData, { kind: 'code' }> => c.kind === 'code' && c.role === 'run')!;
  const settings = parseRunSettings(run.source).settings!;
  const script = generateJobScript(cells, settings, path.basename(notebook), { kind, runner: RUNNER });
  const file = path.join(path.dirname(notebook), `.${path.basename(notebook)}.${kind}.ts`);
  let out: CellLine | undefined;
  const stdout: string[] = [];
  // The extension's own launcher: it writes the script, runs `skybatch run` and removes the script.
  const launcher = new JobLauncher({
    engine: { cli: CLI, errors },
    notebookPath: notebook,
    scriptPath: file,
    script,
    env: { SKYBATCH_HOME: sb.home },
    onEvent: () => undefined,
    onOutput: (line) => {
      if (line.startsWith('SKYBATCH_CELL ')) out = JSON.parse(line.slice('SKYBATCH_CELL '.length)) as CellLine;
      else stdout.push(line);
    },
  });
  const r = await launcher.run();
  assert.equal(fs.existsSync(file), false, 'the script is removed');
  // A script that fails before runCell (a static import of a missing package) is reported by the launcher.
  out ??= r.error ? { kind: 'error', error: r.error } : undefined;
  assert.ok(out, `no SKYBATCH_CELL line:\n${stdout.join('\n')}`);
  return { out, r, map: scriptMapOf(script, file), cells };
}

/** A copy of a shipped sample in a folder with no node_modules above it, as a new user's workspace is. */
function copySample(sb: Sandbox, name: string): string {
  const dir = path.join(sb.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(path.join(ROOT, 'samples', name))) if (/\.(skybatch|jsonl|yaml)$/.test(f)) fs.copyFileSync(path.join(ROOT, 'samples', name, f), path.join(dir, f));
  return path.join(dir, `${name}.skybatch`);
}

function noNodeModulesAbove(dir: string): void {
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) assert.ok(!fs.existsSync(path.join(d, 'node_modules')), `${d}/node_modules exists`);
}

describe('notebook cells run on their own, with no pool', () => {
  const sb = new Sandbox('cell-runs');
  after(() => sb.cleanup());

  test('the reader cell previews its first items', async () => {
    const nb = copySample(sb, 'quickstart');
    const { out } = await runCellOf(sb, nb, 'reader');
    assert.equal(out.kind, 'reader', JSON.stringify(out));
    const total = fs.readFileSync(path.join(path.dirname(nb), 'data.jsonl'), 'utf8').trim().split('\n').length;
    assert.equal(out.total, total);
    const first = JSON.parse(fs.readFileSync(path.join(path.dirname(nb), 'data.jsonl'), 'utf8').split('\n')[0]);
    assert.deepEqual((out.items as unknown[])[0], first);
    assert.equal((out.items as unknown[]).length, Math.min(10, total));
  });

  test("the mapper cell runs the mapper on one small batch from the reader in a process of its own, with no pool, and writes nothing", async () => {
    const nb = copySample(sb, 'quickstart');
    const { out } = await runCellOf(sb, nb, 'mapper');
    assert.equal(out.kind, 'mapper', JSON.stringify(out));
    const items = fs.readFileSync(path.join(path.dirname(nb), 'data.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string });
    // batchSize 2 in the sample's run cell: one batch of 2 items.
    assert.deepEqual(out.results, items.slice(0, 2).map((i) => ({ output: i.text.repeat(2) })));
    assert.equal(fs.existsSync(path.join(path.dirname(nb), 'output')), false, 'a dry run writes no output');
    assert.equal(fs.existsSync(path.join(sb.home, 'pools')), false, 'no pool was started');
  });

  test('the mapper cell of the image sample returns its images as previews', async () => {
    const nb = copySample(sb, 'images');
    const { out } = await runCellOf(sb, nb, 'mapper');
    assert.equal(out.kind, 'mapper', JSON.stringify(out).slice(0, 500));
    const first = (out.results as { image: { $image?: string } }[])[0];
    assert.match(first.image.$image ?? '', /^data:image\/png;base64,/);
  });

  test("a mapper that throws in its dry run: the error's stack maps to the mapper cell's line", async () => {
    const nb = copySample(sb, 'quickstart');
    const src = fs.readFileSync(nb, 'utf8').replace('for await (const batch of sky.load()) {\n', "for await (const batch of sky.load()) {\n  if (batch.length) throw new Error('dry run failure');\n");
    const bad = path.join(path.dirname(nb), 'throws.skybatch');
    fs.writeFileSync(bad, src);
    const { out, map, r } = await runCellOf(sb, bad, 'mapper');
    assert.equal(out.kind, 'error');
    assert.notEqual(r.code, 0);
    assert.match(out.error!.message, /dry run failure/);
    const m = mapStack(out.error!.stack!, map);
    assert.equal(m.origin?.label, 'mapper cell');
    assert.equal(m.origin?.cellLine, 2, 'the line that throws (0-based)');
  });

  test('the writers cell is checked and says where each writer writes', async () => {
    const nb = copySample(sb, 'custom-formats');
    const { out } = await runCellOf(sb, nb, 'writers');
    assert.equal(out.kind, 'writers', JSON.stringify(out));
    const ws = out.writers as { className: string; where: string }[];
    assert.deepEqual(ws.map((w) => w.className), ['TextWriter', 'YamlWriter']);
    assert.equal(ws[1].where, path.join(path.dirname(nb), 'output', 'metadata.yaml'));
  });

  test('every shipped sample notebook packs for the workers in a folder with no node_modules', async () => {
    for (const name of ['quickstart', 'custom-formats', 'images']) {
      const nb = copySample(sb, name);
      noNodeModulesAbove(path.dirname(nb));
      const { out } = await runCellOf(sb, nb, 'pack');
      assert.equal(out.kind, 'pack', `${name}: ${JSON.stringify(out.error ?? out)}`);
    }
  });

  test('a package that is not installed stops the job before any pool: the error names the package, the cell and line, and the npm install, in full', async () => {
    const nb = copySample(sb, 'quickstart');
    const src = fs.readFileSync(nb, 'utf8').replace('```ts reader', "```ts definitions\nimport { parse } from 'yaml';\nexport const parsed = () => parse('a: 1');\n```\n\n```ts reader");
    const bad = path.join(path.dirname(nb), 'needs-yaml.skybatch');
    fs.writeFileSync(bad, src.replace('await sky.saveResults(batch.map((item) => ({ output: String(item.text).repeat(2) })));', 'await sky.saveResults(batch.map(() => parsed()));'));
    const { out, map } = await runCellOf(sb, bad, 'pack');
    assert.equal(out.kind, 'error', JSON.stringify(out));
    assert.equal(out.error!.code, 'SKYBATCH_E_PACKAGE_MISSING');
    assert.match(out.error!.message, /package 'yaml'/);
    assert.match(out.error!.message, /npm install yaml/);
    const m = mapStack(out.error!.stack!, map);
    assert.equal(m.origin?.label, 'definitions cell');
    assert.equal(m.origin?.cellLine, 0);
    assert.equal(fs.existsSync(path.join(sb.home, 'pools')), false, 'no pool was started');
  });

  test("an error the script throws keeps its whole message, not only its first line (a bundling error's were cut after 'for the workers:')", async () => {
    const nb = copySample(sb, 'quickstart');
    const src = fs.readFileSync(nb, 'utf8').replace('```ts reader', "```ts definitions\nthrow new sky.SkybatchError('SKYBATCH_E_SCRIPT_LOAD', 'cannot bundle job.ts for the workers:\\njob.ts:3:4: Could not resolve \"left-pad\"');\n```\n\n```ts reader");
    const bad = path.join(path.dirname(nb), 'two-lines.skybatch');
    fs.writeFileSync(bad, src);
    const { out, map } = await runCellOf(sb, bad, 'definitions');
    assert.equal(out.kind, 'error');
    assert.equal(out.error!.code, 'SKYBATCH_E_SCRIPT_LOAD');
    assert.equal(out.error!.message, 'cannot bundle job.ts for the workers:\njob.ts:3:4: Could not resolve "left-pad"');
    assert.equal(mapStack(out.error!.stack!, map).origin?.label, 'definitions cell');
  });
});
