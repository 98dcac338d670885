import { SkybatchError, WireError, toWireError } from '../../formats/common/errors.js';
import { JobRun } from './job-run.js';
import { Journal } from '../store/journal.js';
import { listJobIds, readJournal, readSpec } from '../store/job-store.js';

/** How a job that `pool down` stopped ends: CANCELLED, with how to continue it or keep what finished. */
export function poolDownError(jobId: string, pool: string, done: number, total: number): WireError {
  const message =
    done === total
      ? `job ${jobId} was cancelled by \`skybatch pool down ${pool}\` while merging its outputs (all ${total} batches are done); finish the merge with: skybatch recover ${jobId}`
      : `job ${jobId} was cancelled by \`skybatch pool down ${pool}\` with ${done}/${total} batches done; finished batches are kept. ` +
        `Continue it with \`skybatch jobs resume ${jobId}\` after \`skybatch pool apply\`, or recover them with: skybatch recover ${jobId}`;
  return toWireError(new SkybatchError('SKYBATCH_E_CANCELLED', message, { context: { jobId } }));
}

/**
 * After `pool down` stopped a coordinator that could not do it itself (it had died, or did
 * not answer): its pool's jobs still marked running are marked CANCELLED in their journals,
 * so the next `pool apply` does not resume them unasked. Returns their ids.
 */
export function cancelJobsOnDisk(pool: string): string[] {
  const cancelled: string[] = [];
  for (const id of listJobIds()) {
    let run: JobRun;
    try {
      const spec = readSpec(id);
      if (spec.pool !== pool) continue;
      const replay = readJournal(id);
      if (replay.status !== 'PENDING' && replay.status !== 'RUNNING') continue;
      run = new JobRun(spec, replay, new Journal(id));
    } catch {
      continue; // a job that cannot be read is no job of this pool's to cancel
    }
    const error = poolDownError(id, pool, run.batchesDone, run.batchCount);
    run.log(`CANCELLED: ${error.message}`);
    run.setStatus('CANCELLED', error);
    cancelled.push(id);
  }
  return cancelled;
}
