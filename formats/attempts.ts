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

/** The winning attempt of each committed range: `"start_end"` → attempt. */
export interface WinnerScope {
  jobId: string;
  winners: Map<string, number>;
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

export function currentWinners(jobId: string): Map<string, number> | undefined {
  const s = winnerStore.getStore();
  return s && s.jobId === jobId ? s.winners : undefined;
}

export const rangeKey = (start: number, end: number) => `${start}_${end}`;
