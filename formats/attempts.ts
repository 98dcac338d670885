import { AsyncLocalStorage } from 'node:async_hooks';

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
}

/** The committed batches of a job, sorted by start. */
export interface WinnerScope {
  jobId: string;
  winners: Winner[];
}

const attemptStore = new AsyncLocalStorage<AttemptScope>();
const winnerStore = new AsyncLocalStorage<WinnerScope>();

export function withAttempt<T>(scope: AttemptScope, fn: () => T): T {
  return attemptStore.run(scope, fn);
}

export function withWinners<T>(scope: WinnerScope, fn: () => T): T {
  return winnerStore.run(scope, fn);
}

/** The attempt writing for `jobId` right now, if any. */
export function currentAttempt(jobId: string): number | undefined {
  const s = attemptStore.getStore();
  return s && s.jobId === jobId ? s.attempt : undefined;
}

export function currentWinners(jobId: string): Winner[] | undefined {
  const s = winnerStore.getStore();
  return s && s.jobId === jobId ? s.winners : undefined;
}

/**
 * Whether a temp file of range `[start, end]` written by `attempt` (-1: unknown) is part of
 * the output: it lies inside a committed batch and comes from that batch's winning attempt.
 * (A batch that skipped failed items writes one file per run of good items, so a file's
 * range may be a part of its batch's range.)
 */
export function isWinningFile(winners: Winner[], start: number, end: number, attempt: number): boolean {
  let lo = 0;
  let hi = winners.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (winners[mid].start <= start) lo = mid + 1;
    else hi = mid - 1;
  }
  const w = winners[hi];
  return !!w && start >= w.start && end <= w.end && (attempt === -1 || attempt === w.attempt);
}
