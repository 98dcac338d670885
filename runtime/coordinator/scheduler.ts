import { WORKER_CREDIT } from '../protocol.js';
import type { BatchRecord, JobRun } from './job-run.js';
import { stalledBatches } from './stalled-worker.js';
import type { WorkerEntry } from './worker-table.js';

/**
 * What the coordinator should do next. The scheduler sends nothing and touches no worker:
 * it only reads the job queue, the workers' credit and state and the time, and leases in
 * the job's batch table the batches it hands out (leasing is the job's own bookkeeping, and
 * `JobRun.next` gives each batch once, so choosing a batch and leasing it are one step).
 */
export type Decision =
  /** Tell a worker whose setup or envs changed to run them again: it holds nothing. */
  | { kind: 'rerunSetup'; worker: WorkerEntry }
  /** Send batch `batch` (attempt `attempt`) to `worker`; `backup`: a copy of a straggler. */
  | { kind: 'assign'; run: JobRun; worker: WorkerEntry; batch: BatchRecord; attempt: number; backup: boolean }
  /** A busy worker that holds nothing any more. */
  | { kind: 'idle'; worker: WorkerEntry };

export interface Plan {
  decisions: Decision[];
  /**
   * Set when a job is running: when to schedule again for its next retry (null: no retry is
   * waiting). Absent when no job is running: the timer already set is left alone.
   */
  wakeAt?: number | null;
}

export interface SchedulerInput {
  /** Job ids, oldest first, and their runs. */
  queue: readonly string[];
  jobs: ReadonlyMap<string, JobRun>;
  workers: readonly WorkerEntry[];
  /** The setup and envs workers must have run to take batches (`setupKey`). */
  setupKey: string;
  now: number;
}

/**
 * Hands out batches: the oldest unfinished job first, round-robin over ready workers with
 * credit (one running and one prefetched batch each); with nothing left to hand out, an
 * idle worker runs a copy of the longest straggler. A worker told to run a changed setup
 * finishes what it holds, then runs it, and takes nothing new before.
 */
export function schedule({ queue, jobs, workers, setupKey, now }: SchedulerInput): Plan {
  const decisions: Decision[] = [];
  for (const w of workers) {
    if (w.state === 'gone' || w.setupKey === setupKey || w.leased.size > 0) continue;
    decisions.push({ kind: 'rerunSetup', worker: w });
  }
  const rerun = new Set(decisions.map((d) => d.worker));
  const run = queue.map((id) => jobs.get(id)!).find((r) => !r.isFinished && !r.allDone);
  if (!run) return { decisions };
  const jobId = run.spec.jobId;
  // a worker the pool is shrinking away (draining) finishes what it holds and gets nothing new
  const ready = workers.filter((w) => !rerun.has(w) && (w.state === 'idle' || w.state === 'busy') && !w.draining && w.setupKey === setupKey);
  // What each worker holds and runs once the decisions so far are applied.
  const held = new Map(ready.map((w) => [w, w.leased.size]));
  const job = new Map(ready.map((w) => [w, w.jobId]));
  const give = (w: WorkerEntry, b: BatchRecord, attempt: number, backup: boolean) => {
    decisions.push({ kind: 'assign', run, worker: w, batch: b, attempt, backup });
    held.set(w, held.get(w)! + 1);
    job.set(w, jobId);
  };
  let gave = true;
  while (gave) {
    gave = false;
    for (const w of ready) {
      const j = job.get(w);
      if (j && j !== jobId && held.get(w)! > 0) continue; // still finishing another job
      if (held.get(w)! >= WORKER_CREDIT) continue;
      const b = run.next(now);
      if (!b) break;
      run.lease(b, w.name);
      give(w, b, b.current, false);
      gave = true;
    }
  }
  for (const w of ready) {
    const j = job.get(w);
    if (held.get(w)! > 0 || (j && j !== jobId)) continue;
    const b = run.straggler(now, w.name);
    if (!b) break;
    give(w, b, run.leaseBackup(b, w.name), true);
  }
  for (const w of ready) {
    if (w.state === 'busy' && held.get(w) === 0) decisions.push({ kind: 'idle', worker: w });
  }
  return { decisions, wakeAt: nextRetryAt(jobs.values()) ?? null };
}

/** When the earliest waiting retry of an unfinished job is due, if any: the coordinator's next wake-up. */
export function nextRetryAt(jobs: Iterable<JobRun>): number | undefined {
  const due = Math.min(...[...jobs].filter((r) => !r.isFinished).map((r) => r.nextRetryAt() ?? Infinity));
  return Number.isFinite(due) ? due : undefined;
}

/** Started batches of unfinished jobs running past their job's batch timeout, with the attempt to take away. */
export function overdueBatches(jobs: Iterable<JobRun>, now: number): { run: JobRun; batch: BatchRecord; attempt: number }[] {
  const found: { run: JobRun; batch: BatchRecord; attempt: number }[] = [];
  for (const run of jobs) {
    if (run.isFinished) continue;
    for (const b of run.overdue(now)) found.push({ run, batch: b, attempt: b.current });
  }
  return found;
}

/**
 * Workers whose mapper takes none of the batches they hold (see `stalledBatches`, which
 * keeps each worker's `waitingSince`): those batches are to be taken back.
 */
export function stalledWorkers(workers: readonly WorkerEntry[], jobs: ReadonlyMap<string, JobRun>, now: number): { worker: WorkerEntry; run: JobRun; held: { index: number; attempt: number }[] }[] {
  const found: { worker: WorkerEntry; run: JobRun; held: { index: number; attempt: number }[] }[] = [];
  for (const w of workers) {
    const run = w.jobId ? jobs.get(w.jobId) : undefined;
    const held = stalledBatches(w, run, now);
    if (run && held) found.push({ worker: w, run, held });
  }
  return found;
}
