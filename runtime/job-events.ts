/**
 * How a job's event stream folds into what its viewers show: the CLI progress bar, the
 * notebook's cell output (extension/core/job-tracker.ts), the Pools view and the job panel's
 * webview all read the same rules from here. Pure and type-only imports, so the webview
 * bundle can import it too (test/extension/boundaries.test.ts keeps it so).
 */
import type { BatchState, JobEvent, JobStatus, JobSummary, WorkerSummary } from './protocol.js';

/** The prefix of an event line on stdout with `SKYBATCH_EVENTS=jsonl` (read by tools that drive a script, like the extension). */
export const EVENT_PREFIX = 'SKYBATCH_EVENT ';

export function formatEventLine(e: JobEvent): string {
  return `${EVENT_PREFIX}${JSON.stringify(e)}`;
}

export const TERMINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** Whether a job in `status` has ended for good (a view's own states, like the notebook's STARTING, are not). */
export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** The job an event is about; undefined for pool-wide ones (workers, pool logs). */
export function eventJobId(e: JobEvent): string | undefined {
  return 'jobId' in e ? e.jobId : 'job' in e ? e.job.jobId : undefined;
}

/** States of a batch someone still works on: none is left once the job ended. */
const IN_FLIGHT: ReadonlySet<BatchState> = new Set(['queued', 'running', 'retrying']);

/**
 * A job's batch states once it ended: batches that were queued or running on a worker were
 * abandoned with it and are pending again, as the coordinator records them (no `batch`
 * event says so).
 */
export function settleBatches(states: BatchState[]): BatchState[] {
  return states.map((b) => (IN_FLIGHT.has(b) ? 'pending' : b));
}

type BatchEvent = Extract<JobEvent, { kind: 'batch' }>;

/** The event when it reports a failed attempt (its batch retrying or failed), with its error; else undefined. */
export function failedAttempt(e: JobEvent): (BatchEvent & { error: NonNullable<BatchEvent['error']> }) | undefined {
  if (e.kind !== 'batch' || !e.error || (e.state !== 'retrying' && e.state !== 'failed')) return undefined;
  return e as BatchEvent & { error: NonNullable<BatchEvent['error']> };
}

/** The line a failed attempt prints in a log view (first line of its error); undefined for any other event. */
export function batchFailureLine(e: JobEvent): string | undefined {
  const f = failedAttempt(e);
  return f && `batch [${f.start}, ${f.end}] attempt ${f.attempt} ${f.state === 'retrying' ? 'failed, retrying' : 'failed'}: ${f.error.message.split('\n')[0]}`;
}

/** The counters every view of a job keeps (a `JobSummary` is one; the notebook's view state another). */
export interface JobCounts {
  status: JobStatus | 'STARTING';
  batchesDone: number;
  batchesTotal: number;
  itemsDone: number;
  itemsTotal: number;
  retries: number;
}

/**
 * Folds a `progress` or `batch` event (already known to be this job's) into `c`, in place:
 * the counts of progress, a retry per `retrying` batch, and PENDING becomes RUNNING (the
 * coordinator says RUNNING only once, when it hands out the first batch). Returns whether it
 * was such an event.
 */
export function foldCounts(c: JobCounts, e: JobEvent): boolean {
  if (e.kind === 'progress') {
    c.batchesDone = e.batchesDone;
    c.batchesTotal = e.batchesTotal;
    c.itemsDone = e.itemsDone;
    c.itemsTotal = e.itemsTotal;
  } else if (e.kind === 'batch') {
    if (e.state === 'retrying') c.retries++;
  } else return false;
  if (c.status === 'PENDING') c.status = 'RUNNING';
  return true;
}

/**
 * A job's summary after event `e`: a new object when `e` changed it, `job` itself otherwise
 * (another job's event, a worker, a sample, a log). `jobSubmitted` and `jobFinished` carry
 * the coordinator's whole summary, which replaces the folded one; retries seen live are kept
 * if the summary counts fewer.
 */
export function applyEvent(job: JobSummary, e: JobEvent): JobSummary {
  if (eventJobId(e) !== job.jobId) return job;
  if (e.kind === 'jobSubmitted' || e.kind === 'jobFinished') return { ...e.job, retries: Math.max(job.retries, e.job.retries) };
  const next = { ...job };
  return foldCounts(next, e) ? next : job;
}

/** A pool's jobs after event `e`: a job it has not seen yet joins when it is submitted (or finishes). */
export function applyToJobs(jobs: JobSummary[], e: JobEvent): JobSummary[] {
  if ((e.kind === 'jobSubmitted' || e.kind === 'jobFinished') && !jobs.some((j) => j.jobId === e.job.jobId)) return [...jobs, { ...e.job }];
  let changed = false;
  const next = jobs.map((j) => {
    const n = applyEvent(j, e);
    if (n !== j) changed = true;
    return n;
  });
  return changed ? next : jobs;
}

/**
 * A pool's workers after event `e`: a `worker` event replaces (or adds) that worker; a
 * `batch` event moves the range to the worker it was queued on or runs on, and off every
 * other worker of that job (a busy worker left with nothing is idle). Between the
 * coordinator's `worker` events, this keeps "which worker holds which batch" current.
 * Returns `workers` itself when nothing changed.
 */
export function applyToWorkers(workers: WorkerSummary[], e: JobEvent): WorkerSummary[] {
  if (e.kind === 'worker') {
    const i = workers.findIndex((w) => w.workerId === e.worker.workerId);
    return i >= 0 ? workers.map((w, k) => (k === i ? e.worker : w)) : [...workers, e.worker];
  }
  if (e.kind !== 'batch') return workers;
  const range = (b: [number, number]) => b[0] === e.start && b[1] === e.end;
  const holder = e.state === 'queued' || e.state === 'running' ? workers.find((x) => x.name === e.worker) : undefined;
  let changed = false;
  const next = workers.map((w) => {
    if (w === holder) {
      if (w.batches.some(range)) return w;
      changed = true;
      return { ...w, state: 'busy' as const, jobId: e.jobId, batches: [...w.batches, [e.start, e.end] as [number, number]] };
    }
    if (w.jobId !== e.jobId || !w.batches.some(range)) return w;
    changed = true;
    const batches = w.batches.filter((b) => !range(b));
    return { ...w, batches, state: !batches.length && w.state === 'busy' ? ('idle' as const) : w.state };
  });
  return changed ? next : workers;
}

/** Seconds left at the current rate, as `1m05s`; `?` while the rate is unknown. */
export function formatEta(itemsLeft: number, perSec: number): string {
  if (itemsLeft <= 0) return '0s';
  if (!perSec || !Number.isFinite(perSec)) return '?';
  const sec = Math.round(itemsLeft / perSec);
  if (sec >= 3600) return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, '0')}m`;
  if (sec >= 60) return `${Math.floor(sec / 60)}m${String(sec % 60).padStart(2, '0')}s`;
  return `${sec}s`;
}
