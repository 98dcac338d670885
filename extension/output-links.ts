import * as vscode from 'vscode';
import type { FromOutput } from '../webview/messages.js';
import { openOutput, revealOutput } from './commands/recover.js';

export const OUTPUT_RENDERER_ID = 'skybatch.job-output';

const COMMANDS = { recover: 'skybatch.recoverPartialResults', resume: 'skybatch.resumeJob', panel: 'skybatch.showJobPanel' } as const;

/** Goes to a line of a cell: the notebook shows the cell and its editor puts the cursor on the line. */
async function gotoCell(editor: vscode.NotebookEditor, index: number, line: number): Promise<void> {
  if (index < 0 || index >= editor.notebook.cellCount) return;
  const cell = editor.notebook.cellAt(index);
  editor.revealRange(new vscode.NotebookRange(index, index + 1), vscode.NotebookEditorRevealType.InCenterIfOutsideViewport);
  const pos = new vscode.Position(Math.min(line, cell.document.lineCount - 1), 0);
  await vscode.window.showTextDocument(cell.document, { viewColumn: editor.viewColumn, selection: new vscode.Range(pos, pos) });
}

/**
 * Acts on the links of a job's cell output (webview/output-renderer.ts posts them): open an
 * output file or reveal its folder, recover, resume, show the job panel, go to the cell line
 * an error came from. Only these; the output never names a command to run.
 */
export function registerOutputLinks(): vscode.Disposable {
  const messaging = vscode.notebooks.createRendererMessaging(OUTPUT_RENDERER_ID);
  return messaging.onDidReceiveMessage(async ({ editor, message }: { editor: vscode.NotebookEditor; message: FromOutput }) => {
    try {
      if (message.type === 'open' && typeof message.path === 'string') await openOutput(message.path);
      else if (message.type === 'reveal' && typeof message.path === 'string') await revealOutput(message.path);
      else if (message.type === 'command' && message.command in COMMANDS) await vscode.commands.executeCommand(COMMANDS[message.command], String(message.jobId));
      else if (message.type === 'goto') await gotoCell(editor, Number(message.cell), Number(message.line));
    } catch (err) {
      void vscode.window.showErrorMessage(`Sky Batch: ${(err as Error).message}`);
    }
  });
}
