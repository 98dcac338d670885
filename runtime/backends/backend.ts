import type { BackendWorkerSummary } from '../protocol.js';
import type { RuntimePack } from './runtime-pack.js';

/** The line a worker prints when it is up (then JSON: name, pid, host, node), for backends that watch its output. */
export const WORKER_UP_MARKER = 'SKYBATCH_WORKER_UP';

/** A worker as its engine sees it; see `BackendWorkerSummary` for the states. */
export type EngineState = BackendWorkerSummary['state'];

/**
 * What starts and stops a pool's workers: processes on this machine (local), ssh sessions
 * to other machines (ssh), Slurm jobs (slurm), and later autoscaled cloud machines. Every worker
 * it starts dials the coordinator like a worker started by hand (`skybatch worker
 * --coordinator URL --token T`), so the coordinator never depends on the backend to know
 * who works: a backend only says what its engine sees, and the coordinator's own view (the
 * worker's connection) decides where batches go.
 *
 * Who calls what: the pool sizer (pool-sizer.ts) asks for workers with `startWorkers` and,
 * to shrink, drains a worker on the coordinator (no new batches) and calls `stopWorker` only
 * once it holds none. `teardown` (pool down, coordinator shutdown) stops everything,
 * batches or not.
 */
export interface WorkerBackend {
  readonly kind: 'local' | 'ssh' | 'slurm';
  /** Whether its workers run on other machines (jobs' local paths are then refused unless `pool.shared_fs`). */
  readonly remote: boolean;
  /**
   * Asks the engine for `count` more workers, placed by the pool's `resources`; returns the
   * names they will join with. They start `pending` or `starting` and come up on their own;
   * a backend restarts a worker that dies (with backoff) until it is stopped.
   */
  startWorkers(count: number): string[];
  /** Stops one worker for good and forgets it. Resolves when its engine says it ended. */
  stopWorker(name: string): Promise<void>;
  /** Every worker it started and has not stopped, in start order. */
  workers(): BackendWorkerSummary[];
  /**
   * Whether a worker saying hello with this name and launch id is one this backend runs now.
   * A refusal (its reason) fences an earlier launch that outlived its session, e.g. across a
   * network partition, so no two live workers ever hold one slot.
   */
  admit?(name: string, launch: string | undefined): string | undefined;
  /**
   * Puts a job's packages pack on the machine of worker `name` (once per machine), for
   * backends whose workers cannot see the submitting machine's files. Absent: they can.
   */
  shipPackages?(name: string, pack: RuntimePack): Promise<void>;
  /** Stops every worker (SIGTERM, then SIGKILL after `graceMs`) and releases the engine's resources. Idempotent. */
  teardown(graceMs?: number): Promise<void>;
}

/** A backend's record of one worker, with the bookkeeping every backend needs for its summary. */
export class EngineRecord {
  state: EngineState = 'pending';
  reason?: string;
  since = new Date().toISOString();
  failures = 0;

  set(state: EngineState, reason?: string): void {
    if (state === this.state && reason === this.reason) return;
    if (state !== this.state) this.since = new Date().toISOString();
    this.state = state;
    this.reason = reason;
  }

  summary(name: string, host: string): BackendWorkerSummary {
    return { name, host, state: this.state, ...(this.reason ? { reason: this.reason } : {}), since: this.since, failures: this.failures };
  }
}

/** Restart delay after `failures` failed starts in a row: 1 s doubling, at most `maxMs`. */
export function restartDelayMs(failures: number, maxMs = 30_000): number {
  return Math.min(maxMs, 1000 * 2 ** Math.max(0, Math.min(failures - 1, 10)));
}

/** The promise in flight for `key`, or `start()`'s, kept in `inFlight` until it settles (one copy however many ask at once). */
export function onceInFlight<K, T>(inFlight: Map<K, Promise<T>>, key: K, start: () => Promise<T>): Promise<T> {
  const running = inFlight.get(key);
  if (running) return running;
  const p = start();
  inFlight.set(key, p);
  const forget = () => inFlight.get(key) === p && inFlight.delete(key);
  p.then(forget, forget);
  return p;
}
