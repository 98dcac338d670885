import * as vscode from 'vscode';
import { JOB_OUTPUT_MIME, renderHtml, renderText } from './core/output-render.js';
import type { JobTracker } from './core/job-tracker.js';

const THROTTLE_MS = 250;

export function jobOutput(tracker: JobTracker): vscode.NotebookCellOutput {
  const s = tracker.state;
  return new vscode.NotebookCellOutput(
    // The HTML goes to the extension's own renderer (its links act); text/plain is the same for readers and tests.
    [vscode.NotebookCellOutputItem.text(renderHtml(s), JOB_OUTPUT_MIME), vscode.NotebookCellOutputItem.text(renderText(s), 'text/plain')],
    { skybatch: { jobId: s.jobId, pool: s.pool, status: s.status } },
  );
}

/** Renders a job's state into a cell's output, at most a few times a second. */
export class CellJobOutput {
  private timer?: NodeJS.Timeout;
  private last = 0;
  private closed = false;

  constructor(
    private readonly execution: vscode.NotebookCellExecution,
    readonly tracker: JobTracker,
    private readonly onRender?: () => void,
  ) {}

  update(): void {
    if (this.timer || this.closed) return;
    const wait = Math.max(0, this.last + THROTTLE_MS - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  flush(): Thenable<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return Promise.resolve();
    this.last = Date.now();
    this.onRender?.();
    return this.execution.replaceOutput(jobOutput(this.tracker));
  }

  /** The last render: later events (after the job's end) are ignored; the execution may end once this resolves. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }
}
