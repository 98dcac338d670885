import type { EventDetail, JobEvent } from '../protocol.js';
import type { JobRun } from './job-run.js';

export interface Subscriber {
  /** Only this job's events (and pool-wide ones); all when undefined. */
  jobId?: string;
  /** 'progress': only what a progress bar shows (see `EventDetail`). */
  detail?: EventDetail;
  send(event: JobEvent): void;
}

/** Per-batch events, unless an attempt failed, and worker events: what a 'progress' subscriber does not get. */
function batchDetail(e: JobEvent): boolean {
  return e.kind === 'worker' || (e.kind === 'batch' && !e.error);
}

const PROGRESS_INTERVAL_MS = 100;

/**
 * The coordinator's event stream: fans events out to subscribers (CLI progress bars,
 * `Dataset.map`, the VS Code extension), and throttles each job's progress to 10 a second.
 */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
  private readonly progressTimers = new Map<string, NodeJS.Timeout>();

  subscribe(s: Subscriber): () => void {
    this.subscribers.add(s);
    return () => this.subscribers.delete(s);
  }

  emit(event: JobEvent): void {
    const jobId = 'jobId' in event ? event.jobId : 'job' in event ? event.job.jobId : undefined;
    const detail = batchDetail(event);
    for (const s of this.subscribers) {
      if (detail && s.detail === 'progress') continue;
      if (s.jobId === undefined || jobId === undefined || s.jobId === jobId) s.send(event);
    }
  }

  /**
   * Whether a subscriber takes job `jobId`'s per-batch events: the hot paths build no event
   * for each batch handed out, started and done when none does (three objects a batch).
   */
  wantsBatchEvents(jobId: string): boolean {
    for (const s of this.subscribers) if (s.detail !== 'progress' && (s.jobId === undefined || s.jobId === jobId)) return true;
    return false;
  }

  /** A progress event for `run` soon, coalescing everything that changes meanwhile. */
  scheduleProgress(run: JobRun): void {
    const id = run.spec.jobId;
    if (this.progressTimers.has(id)) return;
    this.progressTimers.set(
      id,
      setTimeout(() => this.flushProgress(run), PROGRESS_INTERVAL_MS),
    );
  }

  flushProgress(run: JobRun): void {
    const id = run.spec.jobId;
    clearTimeout(this.progressTimers.get(id));
    this.progressTimers.delete(id);
    this.emit({
      kind: 'progress',
      jobId: id,
      batchesDone: run.batchesDone,
      batchesTotal: run.batchCount,
      itemsDone: run.itemsDone,
      itemsTotal: run.spec.total,
      failed: run.failedCount(),
      retrying: run.retryingCount(),
      itemsPerSec: run.itemsPerSec(),
    });
  }

  close(): void {
    for (const t of this.progressTimers.values()) clearTimeout(t);
    this.progressTimers.clear();
  }
}
