import type { JobRun } from './job-run.js';
import type { WorkerEntry, WorkerTable } from './worker-table.js';

/**
 * A worker that holds batches of a job but runs none of them should be taking one. It gets
 * the job's batch timeout to do so (which covers its mapper's start); past that its mapper
 * is hung between batches or before its first, and the batches it holds are returned here
 * to be taken back. Runs the worker's stall clock (`WorkerTable.waiting`); drops from what
 * it holds the batches settled elsewhere.
 */
export function stalledBatches(table: WorkerTable, w: WorkerEntry, run: JobRun | undefined, now: number): { index: number; attempt: number }[] | undefined {
  if (!run || run.isFinished) {
    table.notWaiting(w);
    return undefined;
  }
  for (const index of w.leased) if (!run.heldBy(index, w.name)) table.unlease(w, index);
  const held = [...w.leased].map((index) => ({ index, ...run.heldBy(index, w.name)! }));
  if (!held.length || held.some((h) => h.started)) {
    table.notWaiting(w);
    return undefined;
  }
  if (now - table.waiting(w, now) <= run.batchTimeoutMs) return undefined;
  table.notWaiting(w);
  return held.map(({ index, attempt }) => ({ index, attempt }));
}
