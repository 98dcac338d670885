import * as vscode from 'vscode';
import { CellConsoleRouter } from './core/cell-console.js';

/**
 * A submitted job's console output, under the cell that printed it: the lines the
 * definitions, reader and writers cells print while the script runs them are appended to
 * that cell as stdout, in a short execution of its own that ends with no ✓ and no time
 * (the cell did not run on its own). Lines of no cell (the submission's) are left to the caller.
 */
export class CellConsoleOutput {
  private readonly router = new CellConsoleRouter();
  private readonly pending = new Map<number, string[]>();
  /** Tags this run's console outputs (metadata), to find them again among the cell's outputs. */
  private readonly run = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly controller: vscode.NotebookController,
    private readonly doc: vscode.NotebookDocument,
    /** The cell that shows the run: its own lines stay in the run's log. */
    private readonly target: vscode.NotebookCell,
  ) {}

  /** 'marker' (drop it), 'cell' (taken: it shows under its cell), or undefined: the caller shows it. */
  line(text: string): 'marker' | 'cell' | undefined {
    const r = this.router.line(text);
    if ('marker' in r) return 'marker';
    if (r.cell === undefined || r.cell === this.target.index || r.cell >= this.doc.cellCount) return undefined;
    (this.pending.get(r.cell) ?? this.pending.set(r.cell, []).get(r.cell)!).push(text);
    // Lines come in bursts: one output update per cell and burst, not one per line.
    this.timer ??= setTimeout(() => ((this.timer = undefined), void this.flush()), 100);
    return 'cell';
  }

  /** Writes what is pending; resolves when every line so far is under its cell. */
  flush(): Promise<void> {
    if (this.timer) (clearTimeout(this.timer), (this.timer = undefined));
    const batch = [...this.pending];
    this.pending.clear();
    for (const [index, lines] of batch) this.chain = this.chain.then(() => this.append(index, lines));
    return this.chain;
  }

  private async append(index: number, lines: string[]): Promise<void> {
    const cell = this.doc.cellAt(index);
    let exec: vscode.NotebookCellExecution;
    try {
      exec = this.controller.createNotebookCellExecution(cell);
    } catch {
      return; // the cell has an execution of its own meanwhile (an error output being placed)
    }
    exec.start();
    try {
      const item = vscode.NotebookCellOutputItem.stdout(lines.join('\n') + '\n');
      const tag = (o: vscode.NotebookCellOutput) => (o.metadata as { skybatch?: { console?: string } } | undefined)?.skybatch?.console;
      const mine = cell.outputs.find((o) => tag(o) === this.run);
      // Items of one output are shown as one stream: later lines join this run's output of the cell.
      if (mine) await exec.appendOutputItems(item, mine);
      else {
        // The console output of an earlier submission is replaced; the cell's other outputs (a preview, an error) stay.
        const fresh = new vscode.NotebookCellOutput([item], { skybatch: { console: this.run } });
        await exec.replaceOutput([...cell.outputs.filter((o) => !tag(o)), fresh]);
      }
    } finally {
      exec.end(undefined);
    }
  }
}
