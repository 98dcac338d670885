import { AsyncLocalStorage } from 'node:async_hooks';
import type { MergedAhead } from './batch-merge.js';

/**
 * Exactly-once publication on at-least-once execution. Every batch attempt writes its temp
 * files under its own name (`batch_S_E.aN.jsonl`), set by the worker around `uploadBatch`;
 * reduce reads only the attempt the coordinator's journal names as the winner of each
 * range. Writers written to the reference contract (getBatchPath / listBatchFiles) get
 * this without knowing about attempts.
 */
export interface AttemptScope {
  jobId: string;
  attempt: number;
}

/** A committed batch: its range and the attempt that won it. */
export interface Winner {
  start: number;
  end: number;
  attempt: number;
  /** Rows its files must hold: the range minus items skipped into errors.jsonl. Unknown when absent. */
  rows?: number;
}

/** What one merge into an output did, for the reduce step's report. */
export interface MergeReport {
  output: string;
  /** Batch files merged; 0 with `written: false` means nothing to merge. */
  files: number;
  rows: number;
  /** Whether the output was (re)written; false: it was left as it was. */
  written: boolean;
  /** Of `files`, how many were merged while the job ran (the rest when it ended). */
  mergedAhead?: number;
}

/** The committed batches of a job, sorted by start, as the reduce step sees them. */
export interface WinnerScope {
  jobId: string;
  winners: Winner[];
  /**
   * The winners are every batch of the job (a finished job's reduce): a writer with no
   * batch files then means lost results, not "nothing to merge". False for `recover`.
   */
  complete?: boolean;
  /** Called after each merge, so the reduce step can say what it wrote. */
  onMerge?: (report: MergeReport) => void;
  /**
   * The batch files the coordinator already merged into a temp file of `source`'s merge into
   * `target` while the job ran (runtime/coordinator/merge-ahead.ts); taken once, by that merge.
   */
  mergedAhead?: (source: string, target: string) => MergedAhead | undefined;
}

const attemptStore = new AsyncLocalStorage<AttemptScope>();
const winnerStore = new AsyncLocalStorage<WinnerScope>();

/**
 * Runs `fn` (a batch's `saveResults` on a worker) as attempt `scope.attempt` of its job: the
 * batch files it names with `getBatchPath` carry the attempt. An AsyncLocalStorage, because
 * writers are user code with the reference's signatures.
 */
export function withAttempt<T>(scope: AttemptScope, fn: () => T): T {
  return attemptStore.run(scope, fn);
}

/**
 * Runs `fn` (writers' `reduceResults`/`cleanup` in the reduce step or `recover`) with the
 * job's committed batches: `listBatchFiles`, `listBatchObjects`, `mergeBatches` and
 * `concatenateBatchesToOutput` read only their winning files.
 */
export function withWinners<T>(scope: WinnerScope, fn: () => T): T {
  return winnerStore.run(scope, fn);
}

/** The attempt writing for `jobId` right now, if any. (A job id may come as a number from a user's code.) */
export function currentAttempt(jobId: string | number): number | undefined {
  const s = attemptStore.getStore();
  return s && s.jobId === String(jobId) ? s.attempt : undefined;
}

/** The winners of the reduce step running `jobId` in the caller's async context (see `withWinners`). */
export function currentWinners(jobId: string | number): Winner[] | undefined {
  return currentReduce(jobId)?.winners;
}

/** The reduce step's scope for `jobId`, when running inside one (not when a user calls a writer by hand). */
export function currentReduce(jobId: string | number): WinnerScope | undefined {
  const s = winnerStore.getStore();
  return s && s.jobId === String(jobId) ? s : undefined;
}

/** The winner (index into the sorted `winners`) whose range holds `[start, end]`, or -1. */
export function winnerOf(winners: Winner[], start: number, end: number): number {
  let lo = 0;
  let hi = winners.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (winners[mid].start <= start) lo = mid + 1;
    else hi = mid - 1;
  }
  return hi >= 0 && start >= winners[hi].start && end <= winners[hi].end ? hi : -1;
}

/**
 * Whether a temp file of range `[start, end]` written by `attempt` (-1: unknown) is part of
 * the output: it lies inside a committed batch and comes from that batch's winning attempt.
 * (A batch that skipped failed items writes one file per run of good items, so a file's
 * range may be a part of its batch's range.)
 */
export function isWinningFile(winners: Winner[], start: number, end: number, attempt: number): boolean {
  const w = winnerOf(winners, start, end);
  return w >= 0 && (attempt === -1 || attempt === winners[w].attempt);
}
