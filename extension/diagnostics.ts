import * as vscode from 'vscode';
import type { NotebookProblem } from './core/cell-problem.js';
import type { RunSettings } from './core/run-settings.js';
import { pythonSyntaxCheck } from './core/python-check.js';
import { validateNotebook } from './core/validate.js';
import { NOTEBOOK_TYPE, cellsOf } from './serializer.js';

const DEBOUNCE_MS = 300;

/**
 * Problems of Batch Job notebooks on the offending cell lines, of two kinds: what validation
 * finds (redone on every change of the notebook, after a short pause), and errors raised
 * while a job ran (a mapper that threw). The second kind is not validation's to clear: a
 * run's own output updates change the notebook too. It stays until its cell is edited or
 * the notebook runs again.
 */
export class NotebookDiagnostics implements vscode.Disposable {
  private readonly collection = vscode.languages.createDiagnosticCollection('skybatch');
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly subs: vscode.Disposable[] = [];
  /** Cell document URI → validation's problems, and the run-time errors shown on that cell. */
  private readonly checked = new Map<string, vscode.Diagnostic[]>();
  private readonly runtime = new Map<string, { key?: string; d: vscode.Diagnostic }[]>();

  constructor() {
    this.subs.push(
      vscode.workspace.onDidOpenNotebookDocument((d) => this.schedule(d)),
      vscode.workspace.onDidChangeNotebookDocument((e) => this.schedule(e.notebook)),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length && this.runtime.delete(e.document.uri.toString())) this.publish(e.document.uri);
      }),
      vscode.workspace.onDidCloseNotebookDocument((d) =>
        d.getCells().forEach((c) => {
          const key = c.document.uri.toString();
          this.checked.delete(key);
          this.runtime.delete(key);
          this.collection.delete(c.document.uri);
        }),
      ),
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

  private publish(uri: vscode.Uri): void {
    const key = uri.toString();
    this.collection.set(uri, [...(this.checked.get(key) ?? []), ...(this.runtime.get(key) ?? []).map((r) => r.d)]);
  }

  /** Validates now; the controller calls this before every run. */
  async validate(doc: vscode.NotebookDocument): Promise<{ problems: NotebookProblem[]; settings?: RunSettings }> {
    const esbuild = await import('esbuild');
    const result = await validateNotebook(cellsOf(doc), esbuild.transform, { python: pythonSyntaxCheck() });
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
    cells.forEach((c, i) => {
      this.checked.set(c.document.uri.toString(), byCell.get(i) ?? []);
      this.publish(c.document.uri);
    });
    return result;
  }

  /**
   * Shows an error raised while running on the cell line it came from. `key` names the
   * error's place, so a later report of the same place (the next attempt, the job's end)
   * replaces it.
   */
  report(cell: vscode.NotebookCell, at: { line: number; column?: number }, message: string, opts: { key?: string; severity?: vscode.DiagnosticSeverity; related?: vscode.DiagnosticRelatedInformation[] } = {}): vscode.Diagnostic {
    const doc = cell.document;
    const line = doc.lineAt(Math.min(Math.max(0, at.line), doc.lineCount - 1));
    const start = Math.min(at.column ?? line.firstNonWhitespaceCharacterIndex, Math.max(0, line.range.end.character - 1));
    const range = new vscode.Range(line.lineNumber, start, line.lineNumber, Math.max(start + 1, line.range.end.character));
    const d = new vscode.Diagnostic(range, message, opts.severity ?? vscode.DiagnosticSeverity.Error);
    d.source = 'skybatch';
    if (opts.related?.length) d.relatedInformation = opts.related;
    const key = doc.uri.toString();
    const rest = (this.runtime.get(key) ?? []).filter((x) => opts.key === undefined || x.key !== opts.key);
    this.runtime.set(key, [...rest, { key: opts.key, d }]);
    this.publish(doc.uri);
    return d;
  }

  /** Drops the run-time errors of a notebook's cells (it runs again). */
  clearRuntime(doc: vscode.NotebookDocument): void {
    for (const c of doc.getCells()) if (this.runtime.delete(c.document.uri.toString())) this.publish(c.document.uri);
  }

  /** Turns the run-time errors of a notebook into warnings (a later attempt succeeded: they happened, but nothing failed). */
  downgradeRuntime(doc: vscode.NotebookDocument, note: string): void {
    for (const c of doc.getCells()) {
      const ds = this.runtime.get(c.document.uri.toString());
      if (!ds?.length) continue;
      for (const { d } of ds) {
        if (d.severity !== vscode.DiagnosticSeverity.Error) continue;
        d.severity = vscode.DiagnosticSeverity.Warning;
        d.message = `${d.message} ${note}`;
      }
      this.publish(c.document.uri);
    }
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
