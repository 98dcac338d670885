import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { api, defineSuite, notebookText, openNotebook, outputText, POOL, runAll, runCell, waitFor, WS, write } from './helpers.mjs';

const JOB_OUTPUT_MIME = 'application/vnd.skybatch.job-output';

function cellByRole(doc: vscode.NotebookDocument, role: string): vscode.NotebookCell {
  return doc.getCells().find((c) => c.metadata.role === role)!;
}

/** The error output under a cell, as VS Code's error renderer gets it. */
function errorOf(cell: vscode.NotebookCell): { name: string; message: string; stack: string } | undefined {
  const item = cell.outputs.flatMap((o) => o.items).find((i) => i.mime === 'application/vnd.code.notebook.error');
  return item && JSON.parse(new TextDecoder().decode(item.data));
}

export const POOL_YAML = 'pool:\n  workers: 2\nresources:\n  cpus: 1+\nsetup: echo ready\n';
const data = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ text: `t${i}` })).join('\n') + '\n';
export const SLOW_MAPPER = 'for await (const batch of sky.load()) {\n  await new Promise((r) => setTimeout(r, 500));\n  await sky.saveResults(batch.map(() => ({ ok: 1 })));\n}';

export function quickNotebook(dir: string, opts: { mapper?: string; settings?: string; items?: number } = {}): string {
  write(`${dir}/data.jsonl`, data(opts.items ?? 6));
  write(`${dir}/pool.yaml`, POOL_YAML);
  return write(
    `${dir}/job.skybatch`,
    notebookText([
      { role: 'md', source: '# A test job' },
      { role: 'reader', source: "new sky.JsonReader('data.jsonl')" },
      { role: 'mapper', source: opts.mapper ?? 'for await (const batch of sky.load()) {\n  await sky.saveResults(batch.map((item) => ({ output: String(item.text).repeat(2) })));\n}' },
      { role: 'writers', source: "new sky.JsonWriter('output/output.jsonl')" },
      { role: 'run', source: opts.settings ?? `pool: ${POOL}\nbatchSize: 2` },
    ]),
  );
}

export const controllerSuite = defineSuite('notebook controller', (t) => {
  t.before(async () => {
    await vscode.workspace.getConfiguration('skybatch').update('applyPoolWithoutAsking', true, vscode.ConfigurationTarget.Workspace);
  });

  t.test('runs the notebook on a local pool it starts, streaming progress to 100% and sample outputs', async () => {
    const file = quickNotebook('run');
    const editor = await openNotebook(file);
    const text = await runAll(editor, 90_000);
    assert.match(text, /: SUCCEEDED/, text);
    assert.match(text, /progress 100% · 3\/3 batches · 6\/6 items/);
    assert.match(text, /sample outputs \(all 6\):\n#\toutput\n0\tt0t0/);
    const out = fs.readFileSync(path.join(path.dirname(file), 'output/output.jsonl'), 'utf8').trim().split('\n');
    assert.deepEqual(out, ['t0t0', 't1t1', 't2t2', 't3t3', 't4t4', 't5t5'].map((output) => JSON.stringify({ output })));
    await waitFor('the generated script to be removed', () => !fs.existsSync(path.join(path.dirname(file), '.job.skybatch.ts')), 10_000);
    const html = new TextDecoder().decode(runCell(editor.notebook).outputs[0].items.find((i) => i.mime === JOB_OUTPUT_MIME)!.data);
    assert.match(html, /aria-valuenow="100"/);
    // Output paths are links the output renderer opens.
    assert.match(html, /data-skybatch-open="[^"]*output\/output\.jsonl"/);
  });

  t.test('interrupt cancels the job and the pool keeps running', async () => {
    const file = quickNotebook('interrupt', { mapper: SLOW_MAPPER, settings: `pool: ${POOL}\nbatchSize: 1`, items: 20 });
    const editor = await openNotebook(file);
    void vscode.commands.executeCommand('notebook.execute', editor.notebook.uri);
    const cell = runCell(editor.notebook);
    await waitFor('the job to run', () => /Job \d+ on pool .*: RUNNING/.test(outputText(cell)));
    await vscode.commands.executeCommand('notebook.cancelExecution', editor.notebook.uri);
    const text = await waitFor('the job to be cancelled', () => /: CANCELLED/.test(outputText(cell)) && outputText(cell));
    assert.match(text, /skybatch recover \d+/);
    // A cancel the user asked for is no error: no error line, no red mark on the cell.
    assert.doesNotMatch(text, /error \[/);
    assert.match(text, /cancelled: /);
    await waitFor('the run cell execution to end', () => cell.executionSummary?.timing?.endTime !== undefined);
    assert.equal(cell.executionSummary?.success, undefined, 'a cancelled run is neither a success nor a failure');
    const { tree } = await api();
    const snap = await tree.refresh();
    assert.ok(snap.pools.find((p) => p.pool === POOL)?.running, 'the pool still runs');
  });

  t.test('a notebook with invalid cells is not started', async () => {
    const file = quickNotebook('invalid', { settings: `pool: ${POOL}\nbatchSize: -1` });
    const editor = await openNotebook(file);
    const text = await runAll(editor);
    assert.match(text, /The job was not started: 1 problem/);
    assert.match(text, /run cell, line 2: 'batchSize' must be a positive integer/);
  });

  t.test('a script error is reported in the output and on the cell it came from', async () => {
    const file = quickNotebook('scripterror');
    const src = fs.readFileSync(file, 'utf8').replace("new sky.JsonReader('data.jsonl')", "new sky.JsonReader('missing.jsonl')");
    fs.writeFileSync(file, src);
    const editor = await openNotebook(file);
    const text = await runAll(editor);
    assert.match(text, /: FAILED/);
    assert.match(text, /missing\.jsonl/);
    // The reader caused it: the error is under the reader cell, which is marked failed.
    assert.match(text, /raised in the reader cell, line 1/);
    const reader = cellByRole(editor.notebook, 'reader');
    const err = await waitFor('the error under the reader cell', () => errorOf(reader));
    assert.match(err.message, /missing\.jsonl: no such file/);
    assert.match(err.stack, /JsonReader\.length/);
    assert.equal(reader.executionSummary?.success, false);
  });

  t.test("console output of a submission (stdout and stderr) shows under the cell that printed it, with no check mark; a cell that threw keeps its prints above the error", async () => {
    const printing = (name: string, input: string) => {
      const file = quickNotebook(name);
      const src = fs
        .readFileSync(file, 'utf8')
        .replace('```ts reader', "```ts definitions\nconsole.log('definitions say hi');\nconsole.error('definitions warn');\n```\n\n```ts reader")
        .replace("new sky.JsonReader('data.jsonl')", `(console.log('opening ${input}'), new sky.JsonReader('${input}'))`)
        .replace("new sky.JsonWriter('output/output.jsonl')", "(console.log('writers built'), new sky.JsonWriter('output/output.jsonl'))");
      fs.writeFileSync(file, src);
      return file;
    };
    const streamOf = (mime: string) => (c: vscode.NotebookCell) => c.outputs.flatMap((o) => o.items).filter((i) => i.mime === mime).map((i) => new TextDecoder().decode(i.data)).join('');
    const stdoutOf = streamOf('application/vnd.code.notebook.stdout');
    const stderrOf = streamOf('application/vnd.code.notebook.stderr');
    const editor = await openNotebook(printing('cellconsole', 'data.jsonl'));
    const text = await runAll(editor, 90_000);
    assert.match(text, /: SUCCEEDED/, text);
    assert.doesNotMatch(text, /definitions say hi|definitions warn|opening data|writers built/, 'not in the run cell');
    const defs = cellByRole(editor.notebook, 'definitions');
    const writers = cellByRole(editor.notebook, 'writers');
    assert.equal((await waitFor('the definitions cell to show its print', () => stdoutOf(defs) || undefined)).trim(), 'definitions say hi');
    assert.equal((await waitFor('the definitions cell to show its console.error', () => stderrOf(defs) || undefined)).trim(), 'definitions warn');
    assert.equal(stdoutOf(cellByRole(editor.notebook, 'reader')).trim(), 'opening data.jsonl');
    assert.equal(stdoutOf(writers).trim(), 'writers built');
    assert.equal(defs.executionSummary?.success, undefined, 'no check mark: it did not run on its own');
    assert.equal(writers.executionSummary?.success, undefined);
    // The pool runs now: a reader that fails in the submission puts its error under the cell, below what it printed.
    const failing = await openNotebook(printing('cellconsole-fails', 'missing.jsonl'));
    assert.match(await runAll(failing), /: FAILED/);
    const reader = cellByRole(failing.notebook, 'reader');
    await waitFor('the error under the reader cell', () => errorOf(reader));
    assert.equal(stdoutOf(reader).trim(), 'opening missing.jsonl');
  });

  t.test('a mapper that throws: its traceback is under the mapper cell, which is marked failed; the diagnostic outlives 10 s of job updates and goes when the cell is edited', async () => {
    const mapper = [
      'for await (const batch of sky.load()) {',
      '  await new Promise((r) => setTimeout(r, 300));',
      "  if (batch.some((x) => x.text === 't3')) throw new Error('deliberate failure on t3');",
      '  await sky.saveResults(batch.map((item) => ({ output: item.text })));',
      '}',
    ].join('\n');
    // Item 3 fails 3 times, 4 s and 8 s apart, while the other 79 items keep the job busy.
    const file = quickNotebook('throws', { mapper, settings: `pool: ${POOL}\nbatchSize: 1\nmaxAttempts: 3\nretryBaseMs: 4000`, items: 80 });
    const editor = await openNotebook(file);
    const doc = editor.notebook;
    const mapperCell = cellByRole(doc, 'mapper');
    const { diagnostics } = await api();
    const ours = () => diagnostics.get(mapperCell.document.uri).filter((d) => /deliberate failure on t3/.test(d.message));
    void vscode.commands.executeCommand('notebook.execute', doc.uri);
    const first = await waitFor('a diagnostic on the mapper cell', () => ours()[0], 60_000);
    assert.equal(first.range.start.line, 2, 'on the line that threw');
    assert.equal(first.severity, vscode.DiagnosticSeverity.Error);
    let updates = 0;
    const sub = vscode.workspace.onDidChangeNotebookDocument((e) => {
      if (e.notebook === doc && e.cellChanges.some((c) => c.outputs)) updates++;
    });
    try {
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        assert.equal(ours().length, 1, `the diagnostic is still there after ${updates} output updates`);
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      sub.dispose();
    }
    assert.ok(updates >= 5, `the job kept updating its output meanwhile (${updates} updates)`);
    // FAILED shows when the job's last event arrives; where it was raised, once the script has exited
    await waitFor('the job to fail', () => /: FAILED/.test(outputText(runCell(doc))) || undefined, 90_000);
    await waitFor('the run cell to say where it was raised', () => /raised in the mapper cell, line 3/.test(outputText(runCell(doc))) || undefined, 30_000);
    const err = await waitFor('the error under the mapper cell', () => errorOf(mapperCell));
    assert.equal(err.message, 'deliberate failure on t3');
    const order = mapperCell.executionSummary?.executionOrder;
    assert.equal(mapperCell.executionSummary?.success, false, 'the mapper cell is marked failed');
    assert.match(err.stack, /mapper cell, line 3, in mapper:/);
    assert.ok(err.stack.includes(`Cell In[${order}], line 3`), err.stack);
    assert.ok(err.stack.includes("----> 3   if (batch.some((x) => x.text === 't3')) throw new Error('deliberate failure on t3');"), err.stack);
    assert.ok(err.stack.indexOf('mapper cell') < err.stack.indexOf('skybatch and Node frames'), 'user frames first');
    assert.match(ours()[0].message, /job \d+ failed/);
    // Validation (which runs on every change) keeps it; editing the cell drops it.
    await diagnostics.validate(doc);
    assert.equal(ours().length, 1);
    const edit = new vscode.WorkspaceEdit();
    edit.insert(mapperCell.document.uri, new vscode.Position(0, 0), '// fixed\n');
    await vscode.workspace.applyEdit(edit);
    await waitFor('the diagnostic to go once the cell is edited', () => ours().length === 0, 10_000);
  });

  t.test('reattaches a notebook to its running job, and shows a finished job again', async () => {
    const file = quickNotebook('reattach', { mapper: SLOW_MAPPER, settings: `pool: ${POOL}\nbatchSize: 1`, items: 8 });
    const { records, controller } = await api();
    const editor = await openNotebook(file);
    void vscode.commands.executeCommand('notebook.execute', editor.notebook.uri);
    const cell = runCell(editor.notebook);
    await waitFor('a job id', () => /Job \d+ on pool/.test(outputText(cell)));
    const rec = records.get(editor.notebook.uri.toString())!;
    assert.ok(rec.jobId, 'the run is recorded with its job id');
    // A second notebook document standing for the reloaded window: same record, new document.
    const copy = write('reattach/copy.skybatch', fs.readFileSync(file, 'utf8'));
    const other = await openNotebook(copy);
    await records.put({ ...rec, notebook: other.notebook.uri.toString() });
    const restored = controller.restore(other.notebook, { ...rec, notebook: other.notebook.uri.toString() });
    const otherCell = runCell(other.notebook);
    await waitFor('the reattached output to show the job running', () => new RegExp(`Job ${rec.jobId} on pool ${POOL}: (RUNNING|SUCCEEDED)`).test(outputText(otherCell)));
    await restored;
    await waitFor('the reattached output to show the job succeeded', () => new RegExp(`Job ${rec.jobId} on pool ${POOL}: SUCCEEDED`).test(outputText(otherCell)));
    assert.match(outputText(otherCell), /progress 100%/);
    await waitFor('the original run to finish', () => /: SUCCEEDED/.test(outputText(cell)));
    const finished = records.get(editor.notebook.uri.toString())!;
    await controller.restore(other.notebook, { ...finished, notebook: other.notebook.uri.toString() });
    assert.match(outputText(otherCell), /SUCCEEDED/);
  });
});
