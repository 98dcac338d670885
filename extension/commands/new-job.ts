import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { serialize } from '../core/notebook-format.js';
import { templateCells, TEMPLATE_DATA, TEMPLATE_POOL } from '../core/template.js';
import { NOTEBOOK_TYPE } from '../serializer.js';

/**
 * "New Batch Job": writes a working notebook from the template, with a small data.jsonl and
 * a pool.yaml next to it when those do not exist yet, and opens it.
 */
export function registerNewJob(): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.newBatchJob', async (target?: vscode.Uri): Promise<vscode.Uri | undefined> => {
    let uri = target;
    if (!uri) {
      const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
      uri = await vscode.window.showSaveDialog({ defaultUri: folder && vscode.Uri.joinPath(folder, 'batch-job.skybatch'), filters: { 'Batch Job': ['skybatch'] }, title: 'New Batch Job' });
    }
    if (!uri) return undefined;
    const dir = path.dirname(uri.fsPath);
    fs.mkdirSync(dir, { recursive: true });
    const name = path.basename(uri.fsPath, '.skybatch');
    fs.writeFileSync(uri.fsPath, serialize(templateCells(name)));
    const created = [path.basename(uri.fsPath)];
    const kept: string[] = [];
    for (const [file, text] of [['data.jsonl', TEMPLATE_DATA], ['pool.yaml', TEMPLATE_POOL]] as const) {
      if (fs.existsSync(path.join(dir, file))) kept.push(file);
      else (fs.writeFileSync(path.join(dir, file), text), created.push(file));
    }
    const doc = await vscode.workspace.openNotebookDocument(uri);
    await vscode.window.showNotebookDocument(doc);
    void vscode.window.showInformationMessage(
      `Created ${created.join(', ')} in ${dir}${kept.length ? ` (kept the existing ${kept.join(', ')})` : ''}. Run a cell to try it on its own (the mapper cell does a dry run, no pool), or Run All to submit the job.`,
    );
    return uri;
  });
}

export { NOTEBOOK_TYPE };
