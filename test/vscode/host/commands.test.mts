import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { JobSummary } from '../../../runtime/protocol.js';
import { POOL_YAML, quickNotebook, SLOW_MAPPER } from './controller.test.mjs';
import { api, defineSuite, openNotebook, outputText, POOL, runAll, runCell, waitFor, WS, write } from './helpers.mjs';

/**
 * A panel opened after the job failed, and a cell output reattached from a record that
 * missed the failure, both show the failed batch as failed (the coordinator's `batches`
 * answer), not as pending (which is all the journal can say).
 */
async function checkSeededPanel(jobId: string, editor: vscode.NotebookEditor): Promise<void> {
  const { panels, records, controller } = await api();
  await vscode.commands.executeCommand('skybatch.showJobPanel', jobId);
  const snap = await waitFor('the panel snapshot', () => panels.snapshotFor(jobId), 30_000);
  assert.equal(snap.job.status, 'FAILED');
  assert.equal(snap.batches.length, 3);
  assert.equal(snap.batches[2], 'failed', `batch 2 (items 4 and 5) failed: ${snap.batches} (seeded from the ${snap.seededFrom})`);
  console.log(`SKYBATCH_NOTE panel of job ${jobId} seeded from the ${snap.seededFrom}: ${snap.batches}`);
  assert.equal(snap.batches.filter((b) => b === 'done').length, snap.job.batchesDone, String(snap.batches));
  assert.ok(snap.batches.every((b) => b !== 'running'), String(snap.batches));
  assert.equal(snap.seededFrom, 'coordinator', 'the pool runs, so the coordinator seeds the panel');
  assert.deepEqual(snap.details?.[2], { start: 4, end: 5, attempt: 1 });
  panels.panelFor(jobId)?.dispose();
  // The record as a reload right after submission would have left it: running, nothing failed yet.
  const rec = records.get(editor.notebook.uri.toString())!;
  const stale = { ...rec, state: { ...rec.state, status: 'RUNNING' as const, failed: 0, batchesDone: 0, finishedAt: undefined, error: undefined } };
  const copy = write('recover/copy.skybatch', fs.readFileSync(editor.notebook.uri.fsPath, 'utf8'));
  const other = await openNotebook(copy);
  await controller.restore(other.notebook, { ...stale, notebook: other.notebook.uri.toString() });
  const text = outputText(runCell(other.notebook));
  assert.match(text, new RegExp(`Job ${jobId} on pool ${POOL}: FAILED`), text);
  assert.match(text, / 1 failed/, text);
  await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
}

export const commandsSuite = defineSuite('commands', (t) => {
  t.test('New Batch Job writes a notebook, its data and pool file, and the notebook validates clean', async () => {
    const uri = vscode.Uri.file(path.join(WS, 'newjob', 'my-job.skybatch'));
    const made = await vscode.commands.executeCommand<vscode.Uri>('skybatch.newBatchJob', uri);
    assert.equal(made?.fsPath, uri.fsPath);
    for (const f of ['my-job.skybatch', 'data.jsonl', 'pool.yaml']) assert.ok(fs.existsSync(path.join(WS, 'newjob', f)), f);
    const doc = await waitFor('the new notebook to open', () => vscode.window.activeNotebookEditor?.notebook.uri.fsPath === uri.fsPath && vscode.window.activeNotebookEditor.notebook);
    const { diagnostics } = await api();
    const { problems, settings } = await diagnostics.validate(doc);
    assert.deepEqual(problems, []);
    assert.equal(settings?.batchSize, 2);
  });

  t.test('Apply Pool starts a pool from a pool.yaml and Tear Down Pool stops it', async () => {
    const file = write('cmdpool/pool.yaml', POOL_YAML.replace('workers: 2', 'workers: 1'));
    const name = await vscode.commands.executeCommand<string>('skybatch.applyPool', { file }, 'cmd-pool');
    assert.equal(name, 'cmd-pool');
    const coord = JSON.parse(fs.readFileSync(path.join(process.env.SKYBATCH_HOME!, 'pools', 'cmd-pool', 'coordinator.json'), 'utf8')) as { pid: number };
    assert.doesNotThrow(() => process.kill(coord.pid, 0), 'the coordinator runs');
    assert.equal(await vscode.commands.executeCommand('skybatch.tearDownPool', 'cmd-pool', { confirm: false }), true);
    await waitFor('the coordinator to stop', () => {
      try {
        process.kill(coord.pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    assert.ok(!fs.existsSync(path.join(process.env.SKYBATCH_HOME!, 'pools', 'cmd-pool')));
  });

  t.test('Cancel Job cancels a running job by id', async () => {
    const file = quickNotebook('cancelcmd', { mapper: SLOW_MAPPER, settings: `pool: ${POOL}\nbatchSize: 1`, items: 20 });
    const editor = await openNotebook(file);
    void vscode.commands.executeCommand('notebook.execute', editor.notebook.uri);
    const cell = runCell(editor.notebook);
    const jobId = await waitFor('a job id', () => /Job (\d+) on pool/.exec(outputText(cell))?.[1]);
    const j = await vscode.commands.executeCommand<JobSummary>('skybatch.cancelJob', jobId);
    assert.equal(j?.status, 'CANCELLED');
    await waitFor('the cell to show it', () => /: CANCELLED/.test(outputText(cell)));
  });

  t.test('Recover Partial Results merges a failed job\'s finished batches, cleans up and opens the output', async () => {
    const mapper = "for await (const batch of sky.load()) {\n  if (batch.some((x) => x.text === 't5')) throw new Error('deliberate failure on t5');\n  await sky.saveResults(batch.map((item) => ({ output: item.text })));\n}";
    const file = quickNotebook('recover', { mapper, settings: `pool: ${POOL}\nbatchSize: 2\nmaxAttempts: 1` });
    const editor = await openNotebook(file);
    const text = await runAll(editor);
    assert.match(text, /: FAILED/);
    assert.match(text, /deliberate failure on t5/);
    const jobId = /Job (\d+)/.exec(text)![1];
    await checkSeededPanel(jobId, editor);
    const job = await vscode.commands.executeCommand<JobSummary>('skybatch.recoverPartialResults', jobId);
    assert.equal(job?.jobId, jobId);
    const out = path.join(path.dirname(file), 'output/output.jsonl');
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n').filter(Boolean);
    assert.equal(lines.length, job!.itemsDone);
    assert.ok(!fs.existsSync(path.join(path.dirname(out), '.sky_batch_tmp', jobId)), 'temp files are gone');
    await waitFor('the output to open', () => vscode.window.activeTextEditor?.document.uri.fsPath === out);
  });
});
