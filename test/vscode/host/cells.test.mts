import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { defineSuite, openNotebook, outputText, waitFor } from './helpers.mjs';
import { quickNotebook } from './controller.test.mjs';

function cellByRole(doc: vscode.NotebookDocument, role: string): vscode.NotebookCell {
  return doc.getCells().find((c) => c.metadata.role === role)!;
}

/** Every text of a cell's outputs (plain text, stdout, stderr, errors). */
function allText(cell: vscode.NotebookCell): string {
  return cell.outputs.flatMap((o) => o.items).filter((i) => i.mime !== 'application/vnd.skybatch.job-output').map((i) => new TextDecoder().decode(i.data)).join('\n');
}

/** Runs one cell, as Shift+Enter does, and waits for its execution to end. */
async function runOne(cell: vscode.NotebookCell, timeoutMs = 60_000): Promise<void> {
  const before = cell.executionSummary?.executionOrder;
  await vscode.commands.executeCommand('notebook.cell.execute', { ranges: [{ start: cell.index, end: cell.index + 1 }], document: cell.notebook.uri });
  await waitFor(`cell ${cell.index} to finish`, () => cell.executionSummary?.executionOrder !== before && cell.executionSummary?.timing?.endTime !== undefined, timeoutMs);
}

const jobsOnDisk = () => {
  const dir = path.join(process.env.SKYBATCH_HOME!, 'jobs');
  return fs.existsSync(dir) ? fs.readdirSync(dir).length : 0;
};

export const cellsSuite = defineSuite('cells run on their own', (t) => {
  t.before(async () => {
    await vscode.workspace.getConfiguration('skybatch').update('applyPoolWithoutAsking', true, vscode.ConfigurationTarget.Workspace);
  });

  t.test('running the reader cell previews its first items; the mapper cell shows one sample batch with no pool running; the writers cell says where it writes', async () => {
    // A pool nobody starts: a dry run must not need it.
    const file = quickNotebook('cells-alone', { settings: 'pool: never-started\nbatchSize: 3', items: 12 });
    const editor = await openNotebook(file);
    const doc = editor.notebook;
    const reader = cellByRole(doc, 'reader');
    await runOne(reader);
    assert.match(allText(reader), /Reader preview: first 10 of 12 items/, allText(reader));
    assert.match(allText(reader), /^0\tt0$/m);
    assert.equal(reader.executionSummary?.success, true);
    const mapper = cellByRole(doc, 'mapper');
    await runOne(mapper);
    const text = allText(mapper);
    assert.match(text, /Dry run: the mapper ran on this machine on items \[0, 2\] of 12, no pool, nothing written/, text);
    assert.match(text, /^0\tt0t0$/m);
    assert.match(text, /^2\tt2t2$/m);
    assert.equal(mapper.executionSummary?.success, true);
    assert.equal(fs.existsSync(path.join(process.env.SKYBATCH_HOME!, 'pools', 'never-started')), false, 'no pool was started');
    assert.equal(fs.existsSync(path.join(path.dirname(file), 'output')), false, 'nothing was written');
    const writers = cellByRole(doc, 'writers');
    await runOne(writers);
    assert.ok(allText(writers).includes(`JsonWriter (json) → ${path.join(path.dirname(file), 'output', 'output.jsonl')}`), allText(writers));
  });

  t.test("a mapper that throws in its dry run: the traceback is under the mapper cell, marked failed", async () => {
    const mapperSrc = "for await (const batch of sky.load()) {\n  throw new Error('dry run says no');\n}";
    const file = quickNotebook('cells-throw', { mapper: mapperSrc, settings: 'pool: never-started\nbatchSize: 2' });
    const editor = await openNotebook(file);
    const mapper = cellByRole(editor.notebook, 'mapper');
    await runOne(mapper);
    const err = mapper.outputs.flatMap((o) => o.items).find((i) => i.mime === 'application/vnd.code.notebook.error');
    assert.ok(err, `no error output under the mapper cell: ${allText(mapper)}`);
    const e = JSON.parse(new TextDecoder().decode(err.data)) as { message: string; stack: string };
    assert.match(e.message, /dry run says no/);
    assert.match(e.stack, /mapper cell, line 2/);
    assert.equal(mapper.executionSummary?.success, false);
  });

  t.test('Shift+Enter through every cell submits exactly one job; Run All marks only the run cell', async () => {
    const file = quickNotebook('cells-shift-enter', { items: 4 });
    const editor = await openNotebook(file);
    const doc = editor.notebook;
    const before = jobsOnDisk();
    const code = doc.getCells().filter((c) => c.kind === vscode.NotebookCellKind.Code);
    for (const c of code) await runOne(c, 120_000);
    const run = cellByRole(doc, 'run');
    await waitFor('the job to finish', () => /: SUCCEEDED/.test(outputText(run)), 90_000);
    assert.equal(jobsOnDisk(), before + 1, 'one job');
    for (const c of code) assert.equal(c.executionSummary?.success, true, `${c.metadata.role} did its work`);
    // Run All: the job only; the other cells did nothing and show no ✓.
    const first = /Job (\d+) on pool/.exec(outputText(run))?.[1];
    void vscode.commands.executeCommand('notebook.execute', doc.uri);
    await waitFor('a second job to succeed', () => {
      const m = /Job (\d+) on pool .*: SUCCEEDED/.exec(outputText(run));
      return m !== null && m[1] !== first;
    }, 90_000);
    assert.equal(jobsOnDisk(), before + 2);
    for (const c of code.filter((c) => c !== run)) assert.equal(c.executionSummary?.success, undefined, `${c.metadata.role} shows no ✓ after Run All`);
  });
});
