import type { JobRun } from './job-run.js';
import type { WorkerEntry } from './worker-table.js';

/**
 * A worker that holds batches of a job but runs none of them should be taking one. It gets
 * the job's batch timeout to do so (which covers its mapper's start); past that its mapper
 * is hung between batches or before its first, and the batches it holds are returned here
 * to be taken back. Keeps `w.waitingSince`; drops from `w.leased` batches settled elsewhere.
 */
export function stalledBatches(w: WorkerEntry, run: JobRun | undefined, now: number): { index: number; attempt: number }[] | undefined {
  if (!run || run.isFinished) {
    w.waitingSince = undefined;
    return undefined;
  }
  for (const index of w.leased) if (!run.heldBy(index, w.name)) w.leased.delete(index);
  const held = [...w.leased].map((index) => ({ index, ...run.heldBy(index, w.name)! }));
  if (!held.length || held.some((h) => h.started)) {
    w.waitingSince = undefined;
    return undefined;
  }
  w.waitingSince ??= now;
  if (now - w.waitingSince <= run.batchTimeoutMs) return undefined;
  w.waitingSince = undefined;
  return held.map(({ index, attempt }) => ({ index, attempt }));
}
