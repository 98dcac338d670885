import cliProgress from 'cli-progress';
import { batchFailureLine, formatEta } from '../job-events.js';
import type { JobEvent } from '../protocol.js';

const PLAIN_INTERVAL_MS = 2000;

/**
 * Renders a job's events in a terminal: a progress bar (batches done/total, items/s, ETA)
 * on a TTY, a line every few seconds otherwise; worker log lines are printed above it.
 */
export class ProgressView {
  private readonly multi?: cliProgress.MultiBar;
  private bar?: cliProgress.SingleBar;
  private lastPlain = 0;
  private lastDone = -1;
  private readonly tty: boolean;

  constructor(
    private readonly jobId: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = !!out.isTTY;
    if (this.tty) {
      this.multi = new cliProgress.MultiBar(
        {
          stream: out,
          format: `job ${jobId} |{bar}| {value}/{total} batches | {items} items | {rate} items/s | ETA {left}{extra}`,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
    }
  }

  handle(e: JobEvent): void {
    if (e.kind === 'progress' && e.jobId === this.jobId) {
      const extra = (e.retrying ? ` | ${e.retrying} retrying` : '') + (e.failed ? ` | ${e.failed} failed` : '');
      const payload = { items: `${e.itemsDone}/${e.itemsTotal}`, rate: e.itemsPerSec.toFixed(1), left: formatEta(e.itemsTotal - e.itemsDone, e.itemsPerSec), extra };
      if (this.multi) {
        this.bar ??= this.multi.create(e.batchesTotal, 0, payload);
        this.bar.update(e.batchesDone, payload);
      } else if (e.batchesDone !== this.lastDone && (Date.now() - this.lastPlain >= PLAIN_INTERVAL_MS || e.batchesDone === e.batchesTotal)) {
        this.lastPlain = Date.now();
        this.lastDone = e.batchesDone;
        this.print(`job ${this.jobId}: ${e.batchesDone}/${e.batchesTotal} batches, ${payload.items} items, ${payload.rate} items/s, ETA ${payload.left}${extra}`);
      }
    } else if (e.kind === 'log' && (e.jobId === this.jobId || e.jobId === undefined)) {
      this.print(`${e.worker ? `(${e.worker}) ` : ''}${e.line}`);
    } else if (e.kind === 'batch' && e.jobId === this.jobId) {
      const failure = batchFailureLine(e);
      if (failure) this.print(failure);
    }
  }

  print(line: string): void {
    if (this.multi) this.multi.log(line + '\n');
    else this.out.write(line + '\n');
  }

  stop(): void {
    this.multi?.stop();
  }
}
