import * as vscode from 'vscode';
import { formatTraceback, mapStack, positionOf, splitHead, type MappedStack, type ScriptMap } from './core/script-map.js';
import type { NotebookDiagnostics } from './diagnostics.js';

/** Where a run's failure was raised, for the run cell's output ("Raised in the mapper cell, line 3"). */
export interface ErrorOrigin {
  label: string;
  cell: number;
  line: number;
}

export interface RunErrorsDeps {
  controller: vscode.NotebookController;
  diagnostics: NotebookDiagnostics;
  /** The next execution order of the notebook's kernel: the failed cell gets its own. */
  nextOrder: () => number;
}

const firstLine = (s: string) => s.split('\n')[0];
const cellLabelOf = (c: vscode.NotebookCell, map: ScriptMap) => map.labels[c.index] ?? 'cell';

/**
 * Puts the errors of one run on the cells that raised them. A batch attempt that threw
 * gets a diagnostic on its line at once (the job may go on retrying); the run's failure
 * becomes a Jupyter-style error output under the cell it came from, whose execution is
 * marked failed. Cells are the ones the script was made from, so a cell moved during the
 * run is still found.
 */
export class RunErrors {
  private readonly cells: vscode.NotebookCell[];
  private readonly sources: Record<number, string>;
  /** Cells given an error output: the next run clears it. */
  readonly shown: vscode.NotebookCell[] = [];

  constructor(
    private readonly deps: RunErrorsDeps,
    private readonly doc: vscode.NotebookDocument,
    readonly map: ScriptMap,
  ) {
    this.cells = doc.getCells();
    this.sources = Object.fromEntries(this.cells.map((c, i) => [i, c.document.getText()]));
  }

  private cellAt(i: number): vscode.NotebookCell | undefined {
    const c = this.cells[i];
    // A cell deleted since the run started has index -1.
    return c && c.index >= 0 && c.notebook === this.doc ? c : undefined;
  }

  /** Other cells the error passed through (a helper in the definitions cell called from the mapper). */
  private related(m: MappedStack): vscode.DiagnosticRelatedInformation[] {
    return m.cellFrames.slice(1).flatMap((f) => {
      const c = this.cellAt(f.cell);
      return c ? [new vscode.DiagnosticRelatedInformation(new vscode.Location(c.document.uri, new vscode.Position(f.cellLine, Math.max(0, f.column - 1))), `${positionOf(f)}${f.fn ? `, in ${f.fn}` : ''}`)] : [];
    });
  }

  /** A batch attempt threw: shown on its line while the job goes on. */
  batchFailed(e: { start: number; end: number; attempt: number; state: string; error?: { message: string; stack?: string } }): void {
    if (!e.error?.stack) return;
    const m = mapStack(e.error.stack, this.map);
    const cell = m.origin && this.cellAt(m.origin.cell);
    if (!m.origin || !cell) return;
    const head = firstLine(m.head || e.error.message);
    const message = `${head} (batch [${e.start}, ${e.end}], attempt ${e.attempt}${e.state === 'retrying' ? ', retrying' : ''})`;
    this.deps.diagnostics.report(cell, { line: m.origin.cellLine, column: m.origin.column }, message, { key: `${m.origin.cellLine}\0${head}`, related: this.related(m) });
  }

  /**
   * The run failed with `err`: its traceback goes under the cell it came from, whose
   * execution is marked failed, and the diagnostic on the line says so. `fallbackLine`
   * (0-based script line) places an error without a stack, like esbuild's.
   */
  async failed(err: { message: string; stack?: string }, opts: { fallbackLine?: number; jobId?: string; running?: { cell: vscode.NotebookCell; exec: vscode.NotebookCellExecution } } = {}): Promise<ErrorOrigin | undefined> {
    const m = mapStack(err.stack ?? err.message, this.map, opts.fallbackLine);
    const cell = m.origin && this.cellAt(m.origin.cell);
    if (!m.origin || !cell) return undefined;
    const head = m.head || err.message;
    // A cell run on its own that failed in its own code: its execution (already started) takes the error.
    const own = opts.running?.cell === cell ? opts.running.exec : undefined;
    const exec = own ?? this.deps.controller.createNotebookCellExecution(cell);
    if (!own) {
      exec.executionOrder = this.deps.nextOrder();
      exec.start(Date.now());
    }
    const { name, message } = splitHead(head);
    const stack = formatTraceback(m, this.sources, { cell: m.origin.cell, executionOrder: exec.executionOrder ?? 0 });
    const error = new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.error({ name, message, stack })], { skybatch: { error: positionOf(m.origin), jobId: opts.jobId } });
    // What the cell printed before it threw stays above the error, as in Jupyter (cell-console-output.ts).
    const printed = own ? [] : cell.outputs.filter((o) => (o.metadata as { skybatch?: { console?: string } } | undefined)?.skybatch?.console);
    await exec.replaceOutput([...printed, error]);
    if (!own) exec.end(false, Date.now());
    this.shown.push(cell);
    const why = opts.jobId ? ` (job ${opts.jobId} failed)` : opts.running ? ` (running the ${cellLabelOf(opts.running.cell, this.map)})` : ' (the job was not started)';
    this.deps.diagnostics.report(cell, { line: m.origin.cellLine, column: m.origin.column }, `${firstLine(head)}${why}`, { key: `${m.origin.cellLine}\0${firstLine(head)}`, related: this.related(m) });
    return { label: m.origin.label, cell: cell.index, line: m.origin.cellLine };
  }
}
