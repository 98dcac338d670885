import { batchFailureLine, eventJobId, foldCounts, isTerminal } from '../../runtime/job-events.js';
import type { BatchInfo, JobEvent, JobStatus, JobSummary } from '../../runtime/protocol.js';

export interface SampleRow {
  index: number;
  value: unknown;
}

export interface ThroughputPoint {
  t: number;
  itemsDone: number;
  itemsPerSec: number;
}

/** What a cell output shows of one job; plain JSON so it can be stored and restored. */
export interface JobViewState {
  jobId?: string;
  pool: string;
  status: JobStatus | 'STARTING';
  batchesDone: number;
  batchesTotal: number;
  itemsDone: number;
  itemsTotal: number;
  itemsPerSec: number;
  retrying: number;
  failed: number;
  retries: number;
  samples: SampleRow[];
  logs: string[];
  outputs: string[];
  error?: { code: string; message: string; stack?: string };
  /** Where a failure was raised, when it came from a cell ("mapper cell, line 3"); `cell` is its index in the notebook. */
  errorAt?: { label: string; cell: number; line: number };
  recoverCommand?: string;
  startedAt: number;
  finishedAt?: number;
  /** Time the run waited for the user's answer to a question (start the pool?): not job time. */
  waitedMs?: number;
}

export const MAX_SAMPLES = 12;
const MAX_LOGS = 40;

/** Folds a job's events into what its cell output shows. */
export class JobTracker {
  readonly state: JobViewState;

  constructor(pool: string, now = Date.now()) {
    this.state = { pool, status: 'STARTING', batchesDone: 0, batchesTotal: 0, itemsDone: 0, itemsTotal: 0, itemsPerSec: 0, retrying: 0, failed: 0, retries: 0, samples: [], logs: [], outputs: [], startedAt: now };
  }

  static restore(state: JobViewState): JobTracker {
    const t = new JobTracker(state.pool);
    Object.assign(t.state, structuredClone(state));
    return t;
  }

  get finished(): boolean {
    return isTerminal(this.state.status);
  }

  /** Applies an event; returns whether it concerned this job. */
  handle(e: JobEvent, now = Date.now()): boolean {
    const s = this.state;
    const id = eventJobId(e);
    if (e.kind === 'jobSubmitted' && !s.jobId) s.jobId = e.job.jobId;
    if (id !== undefined && s.jobId !== undefined && id !== s.jobId) return false;
    switch (e.kind) {
      case 'jobSubmitted':
        this.summary(e.job);
        return true;
      case 'progress':
        foldCounts(s, e);
        Object.assign(s, { itemsPerSec: e.itemsPerSec, retrying: e.retrying, failed: e.failed });
        return true;
      case 'batch': {
        foldCounts(s, e);
        const failure = batchFailureLine(e);
        if (failure) this.log(failure);
        return true;
      }
      case 'sample':
        e.results.forEach((value, k) => {
          if (s.samples.length < MAX_SAMPLES && !s.samples.some((r) => r.index === e.start + k)) s.samples.push({ index: e.start + k, value });
        });
        s.samples.sort((a, b) => a.index - b.index);
        return true;
      case 'log':
        if (e.jobId === undefined) return false;
        this.log(`${e.worker ? `(${e.worker}) ` : ''}${e.line}`);
        return true;
      case 'jobFinished':
        this.summary(e.job);
        s.finishedAt = now;
        s.recoverCommand = e.recoverCommand;
        return true;
      case 'worker':
        return false;
    }
  }

  /** Takes the numbers of a summary (a reattach, or the job's last word). */
  summary(j: JobSummary): void {
    const s = this.state;
    s.jobId = j.jobId;
    s.pool = j.pool;
    s.status = j.status;
    s.batchesDone = j.batchesDone;
    s.batchesTotal = j.batchesTotal;
    s.itemsDone = j.itemsDone;
    s.itemsTotal = j.itemsTotal;
    s.retries = Math.max(s.retries, j.retries);
    s.outputs = j.outputs;
    if (j.error) s.error = { code: j.error.code, message: j.error.message, ...(j.error.stack ? { stack: j.error.stack } : {}) };
    if (isTerminal(j.status)) {
      s.retrying = 0;
      if (j.status === 'SUCCEEDED') s.failed = 0;
    }
  }

  /** Takes the failed and retrying counts from every batch's state (attaching mid-job: no progress event has said them yet). */
  batches(infos: BatchInfo[]): void {
    const s = this.state;
    s.failed = infos.filter((b) => b.state === 'failed').length;
    s.retrying = infos.filter((b) => b.state === 'retrying').length;
    if (infos.length) s.batchesTotal = infos.length;
  }

  /** The run waited `ms` for the user to answer a question. */
  waited(ms: number): void {
    this.state.waitedMs = (this.state.waitedMs ?? 0) + ms;
  }

  log(line: string): void {
    this.state.logs.push(line);
    if (this.state.logs.length > MAX_LOGS) this.state.logs.splice(0, this.state.logs.length - MAX_LOGS);
  }

  /** A failure before the job existed (bundling, pool not found, reader errors). */
  fail(code: string, message: string, now = Date.now(), stack?: string): void {
    this.state.status = 'FAILED';
    this.state.error = { code, message, ...(stack ? { stack } : {}) };
    this.state.finishedAt = now;
  }

  /** Stopped on the user's word before the job was submitted: not a failure. */
  cancel(message: string, now = Date.now()): void {
    this.state.status = 'CANCELLED';
    this.state.error = { code: 'SKYBATCH_E_CANCELLED', message };
    this.state.finishedAt = now;
  }
}

/** How long the job took: start to finish, less the time spent waiting for the user's answers. */
export function jobMs(s: Pick<JobViewState, 'startedAt' | 'finishedAt' | 'waitedMs'>, now = Date.now()): number {
  return Math.max(0, (s.finishedAt ?? now) - s.startedAt - (s.waitedMs ?? 0));
}
