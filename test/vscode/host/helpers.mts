import * as fs from 'node:fs';
import * as path from 'node:path';
import type Mocha from 'mocha';
import * as vscode from 'vscode';
import type { SkybatchApi } from '../../../extension/extension.js';

type Fn = () => unknown | Promise<unknown>;
export interface SuiteBuilder {
  before(fn: Fn): void;
  after(fn: Fn): void;
  test(title: string, fn: Fn): void;
}

/** A mocha suite built without globals (the runner is bundled): `defineSuite('x', (t) => t.test(...))`. */
export function defineSuite(title: string, body: (t: SuiteBuilder) => void) {
  return (M: typeof Mocha): Mocha.Suite => {
    const suite = new M.Suite(title);
    suite.timeout(120_000);
    body({
      before: (fn) => suite.beforeAll(fn as Mocha.Func),
      after: (fn) => suite.afterAll(fn as Mocha.Func),
      test: (t, fn) => void suite.addTest(new M.Test(t, fn as Mocha.Func)),
    });
    return suite;
  };
}

/** The workspace the driver prepared (copies of the samples) and the pool the tests share. */
export const WS = process.env.SKYBATCH_TEST_WS ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
export const POOL = 'host-tests';

export async function api(): Promise<SkybatchApi> {
  const ext = vscode.extensions.getExtension<SkybatchApi>('skybatch.skybatch');
  if (!ext) throw new Error('extension skybatch.skybatch is not loaded');
  return ext.activate();
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function write(rel: string, content: string): string {
  const p = path.join(WS, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

export async function openNotebook(file: string): Promise<vscode.NotebookEditor> {
  const doc = await vscode.workspace.openNotebookDocument(vscode.Uri.file(file));
  const editor = await vscode.window.showNotebookDocument(doc);
  await vscode.commands.executeCommand('notebook.selectKernel', { editor, id: 'skybatch-controller', extension: 'skybatch.skybatch' });
  return editor;
}

/** The text/plain of a cell's first output. */
export function outputText(cell: vscode.NotebookCell): string {
  const item = cell.outputs[0]?.items.find((i) => i.mime === 'text/plain' || i.mime === 'application/vnd.code.notebook.stderr' || i.mime === 'application/vnd.code.notebook.error');
  return item ? new TextDecoder().decode(item.data) : '';
}

export function runCell(doc: vscode.NotebookDocument): vscode.NotebookCell {
  const cells = doc.getCells().filter((c) => c.kind === vscode.NotebookCellKind.Code);
  return cells.find((c) => c.metadata.role === 'run') ?? cells[cells.length - 1];
}

/** Runs every cell and waits until the run cell's output shows the job finished. */
export async function runAll(editor: vscode.NotebookEditor, timeoutMs = 60_000): Promise<string> {
  // The command resolves only when the run ends; the output is what the tests watch.
  void vscode.commands.executeCommand('notebook.execute', editor.notebook.uri);
  const cell = runCell(editor.notebook);
  return waitFor(`the run of ${editor.notebook.uri.fsPath} to finish`, () => {
    const t = outputText(cell);
    return /: (SUCCEEDED|FAILED|CANCELLED)/.test(t) || t.startsWith('The job was not started') ? t : undefined;
  }, timeoutMs);
}

export function notebookText(cells: { role: string; source: string; lang?: string }[]): string {
  return cells.map((c) => (c.role === 'md' ? c.source : `\`\`\`${c.lang ?? (c.role === 'run' ? 'yaml' : 'ts')} ${c.role}\n${c.source}\n\`\`\``)).join('\n\n') + '\n';
}
