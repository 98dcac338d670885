import { SkybatchError } from '../../formats/common/errors.js';
import { JOB_ID_PATTERN } from '../store/pool-store.js';
import type { JobEvent } from '../protocol.js';
import { Job, defaultView, follow } from './dataset.js';
import { recordedJob } from './job-follower.js';

/** Options of `waitForJob`. */
export interface WaitOptions {
  /** The job's pool. Default: the pool its record on this machine names (needed for a remote coordinator). */
  poolName?: string;
  /** Where progress goes: `true` (default) a terminal bar, `false` nothing, or your own listener. */
  progress?: boolean | ((event: JobEvent) => void);
}

/**
 * Waits for a job submitted earlier (`map(..., { stream: false })`, another process, a
 * client that gave up) to end, following its progress, and resolves with the same `Job`
 * that `map()` resolves with; throws `JobFailedError` when it failed or was cancelled. A job
 * that already ended resolves at once. Survives coordinator restarts like `map()` does.
 */
export async function waitForJob(jobId: string | number, options: WaitOptions = {}): Promise<Job> {
  const id = String(jobId);
  if (!JOB_ID_PATTERN.test(id)) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `waitForJob(): job id must be the number map() returned, got ${JSON.stringify(jobId)}`, { context: { field: 'jobId' } });
  }
  const rec = recordedJob(id);
  const poolName = options.poolName ?? rec?.pool;
  if (!poolName) {
    throw new SkybatchError('SKYBATCH_E_JOB_NOT_FOUND', `job ${id} not found on this machine; for a job on a remote coordinator pass { poolName }`, { context: { jobId: id } });
  }
  if (rec && options.poolName && rec.pool !== options.poolName) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `job ${id} ran on pool '${rec.pool}', not '${options.poolName}'`, { context: { jobId: id, field: 'poolName' } });
  }
  const job = new Job(id, poolName, rec?.status);
  const view = options.progress === false ? undefined : typeof options.progress === 'function' ? options.progress : defaultView(id);
  await follow(undefined, job, [], view);
  return job;
}
