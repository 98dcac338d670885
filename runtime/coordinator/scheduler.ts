import type { BatchRecord, JobRun } from './job-run.js';
import { DEFAULT_PRIORITY, shareTargets } from './fair-share.js';
import { stalledBatches } from './stalled-worker.js';
import type { WorkerEntry, WorkerTable } from './worker-table.js';

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
  /** Ask `worker` to give back `batch`, queued there unstarted, for a worker that has nothing to do or a batch that waits (`askBacks`). */
  | { kind: 'giveBack'; run: JobRun; worker: WorkerEntry; batch: BatchRecord; attempt: number }
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
 * Hands out batches. Running jobs share the ready workers fairly (`shareTargets`: equal
 * shares, or weighted by the job's `priority`); a worker keeps its job while that job is
 * within its share, and one a job holds beyond its share is not refilled: it finishes what
 * it holds, then takes the job that is short (one mapper per worker, one job per mapper).
 * Round-robin over workers with credit (one running and one prefetched batch each, more
 * for short batches: `JobRun.credit`); with
 * nothing left to hand out, a worker holding nothing runs a copy of the longest straggler.
 * A worker told to run a changed setup finishes what it holds, then runs it, and takes
 * nothing new before.
 */
export function schedule({ queue, jobs, workers, setupKey, now }: SchedulerInput): Plan {
  const decisions: Decision[] = [];
  for (const w of workers) {
    if (w.state === 'gone' || w.setupKey === setupKey || w.leased.size > 0) continue;
    decisions.push({ kind: 'rerunSetup', worker: w });
  }
  const rerun = new Set(decisions.map((d) => d.worker));
  const active = queue.map((id) => jobs.get(id)!).filter((r) => !r.isFinished && !r.allDone);
  if (!active.length) return { decisions };
  const activeIds = new Map(active.map((r) => [r.spec.jobId, r]));
  // a worker the pool is shrinking away (draining) finishes what it holds and gets nothing new
  const ready = workers.filter((w) => !rerun.has(w) && (w.state === 'idle' || w.state === 'busy') && !w.draining && w.setupKey === setupKey);
  // What each worker holds once the decisions so far are applied (filled by hand: a pump at
  // 1,000 workers made a thousand [worker, count] pairs to build it from)
  const held = new Map<WorkerEntry, number>();
  for (const w of ready) held.set(w, w.leased.size);
  // A worker still finishing batches of a job that is over (or not this pool's) takes nothing.
  const usable = ready.filter((w) => held.get(w) === 0 || activeIds.has(w.jobId!));
  const serves = allot(active, usable, held, now);
  const give = (run: JobRun, w: WorkerEntry, b: BatchRecord, attempt: number, backup: boolean) => {
    decisions.push({ kind: 'assign', run, worker: w, batch: b, attempt, backup });
    held.set(w, held.get(w)! + 1);
  };
  const exhausted = new Set<JobRun>();
  const credit = new Map<JobRun, number>();
  for (const r of serves.values()) credit.set(r, (credit.get(r) ?? 0) + 1);
  for (const [r, n] of credit) credit.set(r, r.credit(n));
  // In a job's tail (fewer batches to hand out than workers) those holding nothing come first:
  // a batch given back (below) goes to one of them, not back to the worker that gave it.
  const tail = active.some((r) => r.backlog(now) < usable.length);
  const order = tail ? [...usable.filter((w) => held.get(w) === 0), ...usable.filter((w) => held.get(w)! > 0)] : usable;
  let gave = true;
  while (gave) {
    gave = false;
    for (const w of order) {
      const run = serves.get(w);
      if (!run || exhausted.has(run) || held.get(w)! >= credit.get(run)!) continue;
      const b = run.next(now);
      if (!b) {
        exhausted.add(run);
        continue;
      }
      run.lease(b, w.name, now);
      give(run, w, b, b.current, false);
      gave = true;
    }
  }
  const idle = usable.filter((w) => held.get(w) === 0);
  const asked = askBacks(active, activeIds, usable, serves, tail ? idle.length : 0, held, decisions, now);
  stragglers: for (const w of idle.slice(asked)) {
    for (const run of active) {
      const b = run.rebalance.straggler(now, w.name);
      if (!b) continue;
      give(run, w, b, run.leaseBackup(b, w.name), true);
      continue stragglers;
    }
    break;
  }
  for (const w of ready) {
    if (w.state === 'busy' && held.get(w) === 0) decisions.push({ kind: 'idle', worker: w });
  }
  return { decisions, wakeAt: nextRetryAt(jobs.values()) ?? null };
}

/**
 * Batches queued unstarted on workers, asked back where they hold up work (`Rebalance.queuedOn`,
 * `askBack`): a failed batch due now that no worker had room for (one lost with its worker,
 * while the others hold their credit) takes the place of one of them, which then waits behind
 * it (`JobRun.release`); a worker that fair share moves to another job (its job no longer
 * `serves` it) gives back what it has queued of its old one, so it starts the new job a batch
 * sooner and the old job's other workers run those; in a job's tail, each worker left holding
 * nothing (`idle` of them) gets half of what one holder has queued. Holders holding the most
 * are asked first. Returns how many idle workers have batches coming back to them (they take
 * no straggler's copy meanwhile).
 */
function askBacks(active: readonly JobRun[], activeIds: ReadonlyMap<string, JobRun>, usable: readonly WorkerEntry[], serves: ReadonlyMap<WorkerEntry, JobRun>, idle: number, held: ReadonlyMap<WorkerEntry, number>, decisions: Decision[], now: number): number {
  const ask = (run: JobRun, w: WorkerEntry, batches: BatchRecord[]) => {
    for (const b of batches) {
      run.rebalance.askBack(b);
      decisions.push({ kind: 'giveBack', run, worker: w, batch: b, attempt: b.current });
    }
  };
  if (active.length > 1) {
    for (const w of usable) {
      const run = held.get(w)! >= 2 ? activeIds.get(w.jobId!) : undefined;
      if (run && serves.get(w) !== run && run.rebalance.longBatches) ask(run, w, run.rebalance.queuedOn(w.name, w.leased));
    }
  }
  let asked = 0;
  for (const run of active) {
    let waiting = run.rebalance.retriesWaiting(now);
    const forIdle = waiting === 0 && asked < idle && run.rebalance.inTail(now);
    if (!waiting && !forIdle) continue;
    const holders = usable.filter((w) => w.jobId === run.spec.jobId && held.get(w)! >= 2).sort((a, b) => held.get(b)! - held.get(a)!);
    for (const h of holders) {
      if (forIdle ? asked === idle : waiting === 0) break;
      const queued = run.rebalance.queuedOn(h.name, h.leased);
      if (!queued.length) continue;
      ask(run, h, forIdle ? queued.slice(0, Math.max(1, queued.length >> 1)) : queued.slice(0, 1));
      if (forIdle) asked++;
      else waiting--;
    }
  }
  return asked;
}

/**
 * Which job each usable worker takes new batches of. A job keeps, of the workers holding
 * its batches, as many as its share, those holding the most first (the others are nearest
 * to empty, so they switch soonest); a worker holding nothing goes to its last job if that
 * job is short (its mapper runs already), else to the oldest job that is short.
 */
function allot(active: readonly JobRun[], usable: readonly WorkerEntry[], held: ReadonlyMap<WorkerEntry, number>, now: number): Map<WorkerEntry, JobRun> {
  const holders = new Map<JobRun, WorkerEntry[]>(active.map((r) => [r, []]));
  const byId = new Map(active.map((r) => [r.spec.jobId, r]));
  for (const w of usable) if (held.get(w)! > 0) holders.get(byId.get(w.jobId!)!)!.push(w);
  const targets = shareTargets(
    active.map((r) => ({ id: r.spec.jobId, weight: r.spec.priority ?? DEFAULT_PRIORITY, demand: holders.get(r)!.length + r.backlog(now) })),
    usable.length,
  );
  const serves = new Map<WorkerEntry, JobRun>();
  const count = new Map<JobRun, number>();
  for (const r of active) {
    // sort is stable: equal holdings keep the table's order, so the same worker stays from one round to the next
    const keep = [...holders.get(r)!].sort((a, b) => held.get(b)! - held.get(a)!).slice(0, targets.get(r.spec.jobId));
    for (const w of keep) serves.set(w, r);
    count.set(r, keep.length);
  }
  const short = (r: JobRun | undefined): r is JobRun => r !== undefined && count.get(r)! < targets.get(r.spec.jobId)!;
  const free = usable.filter((w) => held.get(w) === 0);
  const take = (w: WorkerEntry, r: JobRun) => {
    serves.set(w, r);
    count.set(r, count.get(r)! + 1);
  };
  for (const w of free) {
    const last = w.jobId ? byId.get(w.jobId) : undefined;
    if (short(last)) take(w, last);
  }
  for (const w of free) {
    if (serves.has(w)) continue;
    const r = active.find(short);
    if (r) take(w, r);
  }
  return serves;
}

/** Batches of unfinished jobs not handed out yet and workers holding one: what an autoscaled pool sizes itself by. */
export function poolLoad(jobs: Iterable<JobRun>, workers: readonly WorkerEntry[]): { pending: number; holding: number } {
  let pending = 0;
  for (const r of jobs) if (!r.isFinished && !r.allDone) pending += r.backlog();
  return { pending, holding: workers.filter((w) => w.state !== 'gone' && w.leased.size > 0).length };
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
 * runs each worker's stall clock): those batches are to be taken back.
 */
export function stalledWorkers(table: WorkerTable, jobs: ReadonlyMap<string, JobRun>, now: number): { worker: WorkerEntry; run: JobRun; held: { index: number; attempt: number }[] }[] {
  const found: { worker: WorkerEntry; run: JobRun; held: { index: number; attempt: number }[] }[] = [];
  for (const w of table.all()) {
    const run = w.jobId ? jobs.get(w.jobId) : undefined;
    const held = stalledBatches(table, w, run, now);
    if (run && held) found.push({ worker: w, run, held });
  }
  return found;
}
