import type { CoordinatorToWorker, WorkerMessage, WorkerResources, WorkerState, WorkerSummary } from '../protocol.js';
import type { JobRun } from './job-run.js';

/** What the coordinator needs of a worker connection. */
export interface WorkerLink {
  send(msg: CoordinatorToWorker): void;
  close(): void;
}

export interface WorkerEntry {
  id: string;
  name: string;
  host: string;
  resources?: WorkerResources;
  link: WorkerLink;
  state: WorkerState;
  jobId?: string;
  /** Batch indices of `jobId` this worker holds (running or prefetched). */
  leased: Set<number>;
  /** Since when it has held batches without running any (its mapper should be taking one): see `waiting`. */
  waitingSince?: number;
  /** The setup and envs it was last told to use (pool-setup.ts `setupKey`): see `toldSetup`. */
  setupKey?: string;
  /** Why its setup failed. */
  error?: string;
  /** The pool is shrinking it away: it finishes what it holds and gets nothing new. */
  draining?: boolean;
}

/** The workers connected to a coordinator, by connection id and by name. */
export class WorkerTable {
  private readonly byId = new Map<string, WorkerEntry>();
  private next = 1;
  /** Names of workers the pool is shrinking away: a worker joining under one gets no new batches either. */
  private readonly draining = new Set<string>();

  add(link: WorkerLink, hello: Extract<WorkerMessage, { type: 'hello' }>): WorkerEntry {
    const w: WorkerEntry = { id: `w${this.next++}`, name: hello.name, host: hello.host, resources: hello.resources, link, state: 'setup', leased: new Set() };
    if (this.draining.has(w.name)) w.draining = true;
    this.byId.set(w.id, w);
    return w;
  }

  get(id: string): WorkerEntry | undefined {
    return this.byId.get(id);
  }

  remove(id: string): WorkerEntry | undefined {
    const w = this.byId.get(id);
    this.byId.delete(id);
    return w;
  }

  byName(name: string | undefined): WorkerEntry | undefined {
    if (name === undefined) return undefined; // every commit asks for its (usually absent) losing copy's worker
    for (const w of this.byId.values()) if (w.name === name) return w;
    return undefined;
  }

  all(): WorkerEntry[] {
    return [...this.byId.values()];
  }

  /** The pool is shrinking: `name` gets no more batches. True when no worker of that name holds one now. */
  drain(name: string): boolean {
    this.draining.add(name);
    let idle = true;
    for (const w of this.all()) {
      if (w.name !== name) continue;
      w.draining = true;
      if (w.leased.size) idle = false;
    }
    return idle;
  }

  undrain(name: string): void {
    this.draining.delete(name);
  }

  /** It was told (welcome) to run the setup and envs that `key` stands for (pool-setup.ts `setupKey`). */
  toldSetup(w: WorkerEntry, key: string): void {
    w.setupKey = key;
  }

  /**
   * Its stall clock (see stalled-worker.ts): it holds batches and runs none of them, since
   * the time returned (`now` if the clock was not running).
   */
  waiting(w: WorkerEntry, now: number): number {
    return (w.waitingSince ??= now);
  }

  /** It runs or commits a batch, or holds none: its stall clock stops. */
  notWaiting(w: WorkerEntry): void {
    w.waitingSince = undefined;
  }

  /** Its setup finished: it takes batches. */
  setupDone(w: WorkerEntry): void {
    w.state = 'idle';
    w.error = undefined;
  }

  setupFailed(w: WorkerEntry, why: string): void {
    w.state = 'failed';
    w.error = why;
  }

  /** Told to run a changed setup or envs: it forgets its job and takes nothing before it is ready again. */
  rerunSetup(w: WorkerEntry): void {
    w.state = 'setup';
    w.jobId = undefined;
    w.error = undefined;
  }

  /** Its connection went away (it is already out of the table): it holds nothing. */
  gone(w: WorkerEntry): void {
    w.state = 'gone';
    w.leased.clear();
  }

  /**
   * Hands it batch `index` of job `jobId`. Returns whether the worker is new to that job
   * (it must be sent the job first) and whether it became busy.
   */
  assign(w: WorkerEntry, jobId: string, index: number): { newJob: boolean; becameBusy: boolean } {
    const newJob = w.jobId !== jobId;
    w.jobId = jobId;
    w.leased.add(index);
    const becameBusy = w.state !== 'busy';
    w.state = 'busy';
    return { newJob, becameBusy };
  }

  /** It no longer holds batch `index` (reported done, failed or given back, or taken away). */
  unlease(w: WorkerEntry, index: number): void {
    w.leased.delete(index);
  }

  /** Its job ended: it holds nothing, and a busy worker is idle. */
  endJob(w: WorkerEntry): void {
    w.jobId = undefined;
    w.leased.clear();
    if (w.state === 'busy') w.state = 'idle';
  }

  /** A busy worker holding nothing is idle. Returns whether it changed. */
  idleIfEmpty(w: WorkerEntry): boolean {
    if (w.state !== 'busy' || w.leased.size > 0) return false;
    w.state = 'idle';
    return true;
  }

  summary(w: WorkerEntry, run: JobRun | undefined): WorkerSummary {
    const batches = [...w.leased].map((i) => run?.batch(i)).filter((b) => b !== undefined).map((b) => [b.start, b.end] as [number, number]);
    return { workerId: w.id, name: w.name, host: w.host, state: w.state, jobId: w.jobId, batches, ...(w.resources ? { resources: w.resources } : {}), ...(w.error ? { error: w.error } : {}) };
  }
}

/**
 * Whether worker connection `w` holds attempt `attempt` of batch `index` of job `jobId`: its
 * own lease or the backup copy it runs. A report on anything else (a batch never leased to
 * this connection, an attempt taken back because it timed out or the other copy won, a job
 * that ended) must change nothing, whatever name the connection gave.
 */
export function holdsAttempt(w: WorkerEntry, run: JobRun | undefined, msg: { jobId: string; index: number; attempt: number }): run is JobRun {
  const b = run?.batch(msg.index);
  return (
    w.jobId === msg.jobId &&
    w.leased.has(msg.index) &&
    b?.state === 'running' &&
    ((b.current === msg.attempt && b.worker === w.name) || (b.backup?.attempt === msg.attempt && b.backup.worker === w.name))
  );
}
