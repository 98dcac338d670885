import * as vscode from 'vscode';
import type { BatchJobController } from './controller.js';
import type { JobRecords } from './job-records.js';
import { NOTEBOOK_TYPE } from './serializer.js';

/**
 * After a window reload, puts each notebook's last job back into its run cell: once the
 * Sky Batch kernel is selected for the notebook (cell executions need it), a running job
 * is followed live again and a finished one shows its summary.
 */
export function registerReattach(controller: BatchJobController, records: JobRecords): vscode.Disposable {
  const done = new Set<string>();
  const tryRestore = (doc: vscode.NotebookDocument) => {
    const key = doc.uri.toString();
    if (doc.notebookType !== NOTEBOOK_TYPE || done.has(key)) return;
    const rec = records.get(key);
    if (!rec) return;
    done.add(key);
    void controller.restore(doc, rec);
  };
  const ctl = controller.controller;
  ctl.onDidChangeSelectedNotebooks(({ notebook, selected }) => selected && tryRestore(notebook));
  return vscode.Disposable.from(
    // The only kernel of the type: prefer it, so VS Code selects it without asking.
    vscode.workspace.onDidOpenNotebookDocument((d) => d.notebookType === NOTEBOOK_TYPE && ctl.updateNotebookAffinity(d, vscode.NotebookControllerAffinity.Preferred)),
    vscode.workspace.onDidCloseNotebookDocument((d) => done.delete(d.uri.toString())),
  );
}
