import type { WebSocket } from 'ws';
import { sendCorked } from '../corked-send.js';
import type { JobEvent } from '../protocol.js';

/** Past this many bytes queued for a subscriber, progress is coalesced and per-batch, worker and sample events dropped. */
export const SUBSCRIBER_SOFT_BYTES = 1 << 20;
/** Past this many, the subscriber is disconnected (it reconnects and reads the job's summary; the job goes on). */
export const SUBSCRIBER_HARD_BYTES = 16 << 20;
const DRAIN_CHECK_MS = 250;

/** Events a late view can do without: the next progress event, or the `batches` request, says the same. */
function droppable(e: JobEvent): boolean {
  return e.kind === 'progress' || e.kind === 'worker' || e.kind === 'sample' || (e.kind === 'batch' && !e.error);
}

/**
 * The events queued for one subscriber connection, bounded. A subscriber that reads slower
 * than events come (a paused process, a slow link) would otherwise make the coordinator
 * hold every event it cannot take yet, without limit. Behind by more than `soft` bytes, it
 * gets only what it cannot do without (logs, failures, job start and end) plus the latest
 * progress of each job once it catches up; behind by more than `hard`, it is disconnected.
 */
export class SubscriberOutbox {
  private readonly progress = new Map<string, JobEvent>();
  private drainTimer?: NodeJS.Timeout;
  private dropped = 0;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly log: (line: string) => void,
    private readonly limits = { soft: SUBSCRIBER_SOFT_BYTES, hard: SUBSCRIBER_HARD_BYTES },
  ) {
    ws.once('close', () => this.stop());
  }

  push(event: JobEvent): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    const behind = this.ws.bufferedAmount;
    if (behind > this.limits.soft && droppable(event)) {
      if (event.kind === 'progress') this.progress.set(event.jobId, event);
      else this.dropped++;
      this.drainTimer ??= setInterval(() => this.catchUp(), DRAIN_CHECK_MS);
      return;
    }
    if (behind > this.limits.hard) {
      this.log(`disconnecting a subscriber ${Math.round(behind / 2 ** 20)} MB behind (it reads events slower than they come; ${this.dropped} per-batch events dropped for it)`);
      this.stop();
      this.ws.terminate();
      return;
    }
    sendCorked(this.ws, JSON.stringify({ type: 'event', event }));
  }

  /** Caught up below `soft` again: the latest progress of each job it missed. */
  private catchUp(): void {
    if (this.ws.bufferedAmount > this.limits.soft) return;
    clearInterval(this.drainTimer);
    this.drainTimer = undefined;
    const latest = [...this.progress.values()];
    this.progress.clear();
    for (const e of latest) this.push(e);
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.drainTimer);
    this.drainTimer = undefined;
    this.progress.clear();
  }
}
