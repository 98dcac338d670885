import * as fs from 'node:fs';
import { SkybatchError, toWireError } from '../../formats/common/errors.js';
import { isTerminal } from '../job-events.js';
import { checkJobSpec } from '../protocol-guards.js';
import type { JobSpec } from '../protocol.js';
import { JobRun } from './job-run.js';
import { Journal } from '../store/journal.js';
import { JournalState, bundleFile, listJobIds, readJournal, readSpec } from '../store/job-store.js';

/**
 * The runs of this pool's unfinished jobs, loaded again after a restart with what was
 * committed. A job that cannot be picked up is marked FAILED with the reason; the pool
 * starts regardless.
 */
export function restoreRuns(pool: string, log: (line: string) => void, watch: (run: JobRun, journal: Journal) => void = () => {}): JobRun[] {
  const runs: JobRun[] = [];
  for (const id of listJobIds()) {
    const found = loadForRestore(id, pool, log);
    if (!found) continue;
    try {
      const journal = new Journal(id, found.replay);
      const run = new JobRun(found.spec, found.replay, journal);
      watch(run, journal);
      run.setStatus(run.status); // a new load: later attempt numbers stay above this one's
      run.log(`coordinator restarted: resuming with ${run.batchesDone}/${run.batchCount} batches already committed`);
      runs.push(run);
    } catch (err) {
      markUnrestorable(id, `${(err as Error)?.message ?? String(err)}. Finished batches are kept; recover them with: skybatch recover ${id}`, log);
    }
  }
  return runs;
}

/**
 * What a restarting coordinator of `pool` needs to continue job `jobId`, or undefined when
 * there is nothing to continue: another pool's job, a finished one, or one that cannot run
 * any more (its bundle is gone, its job.json unreadable or invalid), which is marked FAILED
 * here with the reason. Never throws: one broken job must not keep a pool from starting.
 */
export function loadForRestore(jobId: string, pool: string, log: (line: string) => void): { spec: JobSpec; replay: JournalState } | undefined {
  try {
    let raw: unknown;
    try {
      raw = readSpec(jobId);
    } catch (err) {
      // whose job it is cannot be told: it cannot run anywhere, so any pool may say so
      if (!isTerminal(readJournal(jobId).status)) markUnrestorable(jobId, `its job.json cannot be read: ${(err as Error).message}`, log);
      return undefined;
    }
    const owner = (raw as { pool?: unknown } | null)?.pool;
    if (typeof owner === 'string' && owner !== pool) return undefined;
    const replay = readJournal(jobId);
    if (isTerminal(replay.status)) return undefined;
    const spec = checkJobSpec(raw, jobId);
    const bundle = bundleFile(spec.bundleHash);
    if (!fs.existsSync(bundle)) {
      markUnrestorable(jobId, `its bundle ${bundle} is missing. Run the script again with \`resumeFrom: '${jobId}'\` in map() to finish the job; its finished batches are kept`, log);
      return undefined;
    }
    return { spec, replay };
  } catch (err) {
    const reason = err instanceof SkybatchError ? err.message : ((err as Error)?.stack ?? String(err));
    markUnrestorable(jobId, `${reason}. Finished batches are kept; recover them with: skybatch recover ${jobId}`, log);
    return undefined;
  }
}

/** Records in the job's journal (and the coordinator's log) that it failed because it could not be restored. */
export function markUnrestorable(jobId: string, why: string, log: (line: string) => void): void {
  const err = new SkybatchError('SKYBATCH_E_RESTORE', `job ${jobId} cannot be resumed after the coordinator restarted: ${why}`, { context: { jobId } });
  log(err.message);
  try {
    const journal = new Journal(jobId);
    journal.append({ e: 'status', status: 'FAILED', at: new Date().toISOString(), error: toWireError(err) });
    journal.log(`FAILED: ${err.message}`);
    journal.close();
  } catch (e) {
    log(`job ${jobId}: cannot record its failure either: ${(e as Error).message}`);
  }
}
