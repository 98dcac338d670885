import * as vscode from 'vscode';
import { CellConsoleRouter } from './core/cell-console.js';

type Stream = 'stdout' | 'stderr';

/**
 * A submitted job's console output, under the cell that printed it: the lines the
 * definitions, reader and writers cells print while the script runs them (stdout, and stderr:
 * `console.error`, warnings) are appended to that cell, each stream as one output of its own,
 * in a short execution that ends with no ✓ and no time (the cell did not run on its own).
 * Lines of no cell (the submission's) are left to the caller.
 */
export class CellConsoleOutput {
  /** The script marks each cell on both streams: each is followed on its own (their order between them is not kept). */
  private readonly routers: Record<Stream, CellConsoleRouter> = { stdout: new CellConsoleRouter(), stderr: new CellConsoleRouter() };
  private readonly pending = new Map<string, { cell: number; stream: Stream; lines: string[] }>();
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
  line(text: string, stream: Stream = 'stdout'): 'marker' | 'cell' | undefined {
    const r = this.routers[stream].line(text);
    if ('marker' in r) return 'marker';
    if (r.cell === undefined || r.cell === this.target.index || r.cell >= this.doc.cellCount) return undefined;
    const key = `${r.cell} ${stream}`;
    (this.pending.get(key) ?? this.pending.set(key, { cell: r.cell, stream, lines: [] }).get(key)!).lines.push(text);
    // Lines come in bursts: one output update per cell and burst, not one per line.
    this.timer ??= setTimeout(() => ((this.timer = undefined), void this.flush()), 100);
    return 'cell';
  }

  /** Writes what is pending; resolves when every line so far is under its cell. */
  flush(): Promise<void> {
    if (this.timer) (clearTimeout(this.timer), (this.timer = undefined));
    const batch = [...this.pending.values()];
    this.pending.clear();
    for (const p of batch) this.chain = this.chain.then(() => this.append(p.cell, p.stream, p.lines));
    return this.chain;
  }

  private async append(index: number, stream: Stream, lines: string[]): Promise<void> {
    const cell = this.doc.cellAt(index);
    let exec: vscode.NotebookCellExecution;
    try {
      exec = this.controller.createNotebookCellExecution(cell);
    } catch {
      return; // the cell has an execution of its own meanwhile (an error output being placed)
    }
    exec.start();
    try {
      const text = lines.join('\n') + '\n';
      const item = stream === 'stderr' ? vscode.NotebookCellOutputItem.stderr(text) : vscode.NotebookCellOutputItem.stdout(text);
      const tag = (o: vscode.NotebookCellOutput) => (o.metadata as { skybatch?: { console?: string; stream?: Stream } } | undefined)?.skybatch;
      const mine = cell.outputs.find((o) => tag(o)?.console === this.run && (tag(o)!.stream ?? 'stdout') === stream);
      // Items of one output are shown as one stream: later lines join this run's output of the cell.
      if (mine) await exec.appendOutputItems(item, mine);
      else {
        // The console output of an earlier submission is replaced; the cell's other outputs (a preview, an error) stay.
        const fresh = new vscode.NotebookCellOutput([item], { skybatch: { console: this.run, stream } });
        await exec.replaceOutput([...cell.outputs.filter((o) => !tag(o)?.console || tag(o)!.console === this.run), fresh]);
      }
    } finally {
      exec.end(undefined);
    }
  }
}
