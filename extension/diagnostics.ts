import * as vscode from 'vscode';
import type { NotebookProblem } from './core/cell-problem.js';
import type { RunSettings } from './core/run-settings.js';
import { validateNotebook } from './core/validate.js';
import { NOTEBOOK_TYPE, cellsOf } from './serializer.js';

const DEBOUNCE_MS = 300;

/** Validates Batch Job notebooks as they change and shows problems on the offending cell lines. */
export class NotebookDiagnostics implements vscode.Disposable {
  private readonly collection = vscode.languages.createDiagnosticCollection('skybatch');
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly subs: vscode.Disposable[] = [];

  constructor() {
    this.subs.push(
      vscode.workspace.onDidOpenNotebookDocument((d) => this.schedule(d)),
      vscode.workspace.onDidChangeNotebookDocument((e) => this.schedule(e.notebook)),
      vscode.workspace.onDidCloseNotebookDocument((d) => d.getCells().forEach((c) => this.collection.delete(c.document.uri))),
    );
    vscode.workspace.notebookDocuments.forEach((d) => this.schedule(d));
  }

  private schedule(doc: vscode.NotebookDocument): void {
    if (doc.notebookType !== NOTEBOOK_TYPE) return;
    const key = doc.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        void this.validate(doc);
      }, DEBOUNCE_MS),
    );
  }

  /** Validates now; the controller calls this before every run. */
  async validate(doc: vscode.NotebookDocument): Promise<{ problems: NotebookProblem[]; settings?: RunSettings }> {
    const esbuild = await import('esbuild');
    const result = await validateNotebook(cellsOf(doc), esbuild.transform);
    const cells = doc.getCells();
    const byCell = new Map<number, vscode.Diagnostic[]>();
    for (const p of result.problems) {
      if (p.cell < 0) continue;
      const d = new vscode.Diagnostic(
        new vscode.Range(p.line, p.column, p.endLine, p.endColumn),
        p.message,
        p.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning,
      );
      d.source = 'skybatch';
      byCell.set(p.cell, [...(byCell.get(p.cell) ?? []), d]);
    }
    cells.forEach((c, i) => this.collection.set(c.document.uri, byCell.get(i) ?? []));
    return result;
  }

  /** Shows errors found while running (bundling, script errors) on the cells they came from. */
  report(doc: vscode.NotebookDocument, cell: number, line: number, message: string): void {
    const c = doc.cellAt(cell);
    const text = c.document.lineAt(Math.min(line, c.document.lineCount - 1));
    const d = new vscode.Diagnostic(text.range, message, vscode.DiagnosticSeverity.Error);
    d.source = 'skybatch';
    this.collection.set(c.document.uri, [...(this.collection.get(c.document.uri) ?? []), d]);
  }

  get(uri: vscode.Uri): readonly vscode.Diagnostic[] {
    return this.collection.get(uri) ?? [];
  }

  dispose(): void {
    this.timers.forEach((t) => clearTimeout(t));
    this.subs.forEach((s) => s.dispose());
    this.collection.dispose();
  }
}
