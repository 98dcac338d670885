import * as vscode from 'vscode';
import type { BatchJobController } from '../controller.js';
import { outputCellOf } from '../controller.js';
import { generateJobScript } from '../core/job-script.js';
import type { NotebookDiagnostics } from '../diagnostics.js';
import type { JobPanels } from '../job-panel.js';
import type { JobRecords } from '../job-records.js';
import { NOTEBOOK_TYPE, cellsOf } from '../serializer.js';
import { jobIdOf, poolOf } from './pick.js';

/** "Show Job Panel": for a Pools view job, a job id, or the active notebook's last job. */
export function registerShowJobPanel(panels: JobPanels, records: JobRecords, controller: BatchJobController): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.showJobPanel', async (arg?: unknown, poolArg?: string) => {
    let jobId = jobIdOf(arg);
    // A plain string or number argument is a job id, never a pool name.
    const node = typeof arg === 'object' ? arg : undefined;
    let pool = poolArg ?? poolOf(node) ?? poolOf((node as { job?: unknown } | undefined)?.job);
    if (!jobId) {
      // From a job panel (a webview has focus) there is no active notebook editor: the one Batch Job notebook in view is meant.
      const shown = vscode.window.visibleNotebookEditors.filter((e) => e.notebook.notebookType === NOTEBOOK_TYPE);
      const doc = vscode.window.activeNotebookEditor?.notebook ?? (shown.length === 1 ? shown[0].notebook : undefined);
      const live = doc && controller.activeJob(doc);
      const rec = doc && records.get(doc.uri.toString());
      jobId = live?.jobId ?? rec?.jobId;
      pool = live?.pool ?? rec?.pool;
    }
    if (jobId && !pool) pool = records.byJob(jobId)?.pool;
    if (!jobId || !pool) {
      void vscode.window.showInformationMessage('Run the notebook first, or pick a job in the Pools view.');
      return undefined;
    }
    panels.show({ jobId, pool });
    return jobId;
  });
}

/** "Show Generated Script": the TypeScript the notebook runs as, for reading or running by hand. */
export function registerShowScript(diagnostics: NotebookDiagnostics): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.showGeneratedScript', async () => {
    const doc = vscode.window.activeNotebookEditor?.notebook;
    if (!doc || !outputCellOf(doc)) return;
    const { settings, problems } = await diagnostics.validate(doc);
    if (!settings) {
      void vscode.window.showErrorMessage(`Fix the notebook first: ${problems.find((p) => p.severity === 'error')?.message ?? 'invalid run settings'}`);
      return;
    }
    const script = generateJobScript(cellsOf(doc), settings, doc.uri.path.split('/').pop() ?? 'notebook');
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument({ language: 'typescript', content: script.code }));
  });
}
