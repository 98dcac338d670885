import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { api, defineSuite, notebookText, openNotebook, outputText, POOL, runAll, runCell, waitFor, WS, write } from './helpers.mjs';

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
    assert.match(text, /sample outputs \(\d+\):\n#\toutput\n0\tt0t0/);
    const out = fs.readFileSync(path.join(path.dirname(file), 'output/output.jsonl'), 'utf8').trim().split('\n');
    assert.deepEqual(out, ['t0t0', 't1t1', 't2t2', 't3t3', 't4t4', 't5t5'].map((output) => JSON.stringify({ output })));
    await waitFor('the generated script to be removed', () => !fs.existsSync(path.join(path.dirname(file), '.job.skybatch.ts')), 10_000);
    const html = new TextDecoder().decode(runCell(editor.notebook).outputs[0].items.find((i) => i.mime === 'text/html')!.data);
    assert.match(html, /aria-valuenow="100"/);
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
    const { tree } = await api();
    const snap = await tree.refresh();
    assert.ok(snap.pools.find((p) => p.pool === POOL)?.running, 'the pool still runs');
  });

  t.test('a notebook with invalid cells is not started', async () => {
    const file = quickNotebook('invalid', { settings: `pool: ${POOL}\nbatchSize: -1` });
    const editor = await openNotebook(file);
    const text = await runAll(editor);
    assert.match(text, /The job was not started: 1 problem/);
    assert.match(text, /cell 5, line 2: 'batchSize' must be a positive integer/);
  });

  t.test('a script error is reported in the output and on the cell it came from', async () => {
    const file = quickNotebook('scripterror');
    const src = fs.readFileSync(file, 'utf8').replace("new sky.JsonReader('data.jsonl')", "new sky.JsonReader('missing.jsonl')");
    fs.writeFileSync(file, src);
    const editor = await openNotebook(file);
    const text = await runAll(editor);
    assert.match(text, /: FAILED/);
    assert.match(text, /missing\.jsonl/);
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
