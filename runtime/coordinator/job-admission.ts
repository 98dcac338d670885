import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkybatchError } from '../../formats/common/errors.js';
import { assertSeparateOutputs } from '../../formats/output-claims.js';
import { errorsPath } from '../../formats/utils.js';
import { assertWorkersCanReach } from '../backends/shared-paths.js';
import type { PoolConfig } from '../pool-config.js';
import type { JobRequest, JobSpec } from '../protocol.js';
import { liveHolder } from '../file-lock.js';
import { JobRun } from './job-run.js';
import { jobDir } from '../store/pool-store.js';
import { JournalRecord, JournalState, allocateJobId, appendJournalRecord, bundleFile, readCheckedSpec, readJournal, resumedSpec, saveBundle, writeSpec } from '../store/job-store.js';

/** Why no worker of the pool can run a job now (every one failed its setup), if so. */
export type Unrunnable = () => SkybatchError | undefined;

/**
 * Checks a submitted job and stores it (bundle, job id, job.json): the pool's workers can
 * reach its paths, its outputs do not overlap, its bundle is known, its input is not empty
 * and some worker can run it.
 */
export function admitJob(req: JobRequest, bundle: string | undefined, pool: string, config: PoolConfig, unrunnable: Unrunnable): JobSpec {
  assertWorkersCanReach(req, config, pool);
  assertSeparateOutputs(req.writers, { errorsFile: req.onItemError === 'skip' && req.writers[0] ? errorsPath(req.writers[0].path) : undefined });
  if (bundle !== undefined) saveBundle(req.bundleHash, bundle);
  else if (!fs.existsSync(bundleFile(req.bundleHash))) {
    throw new SkybatchError('SKYBATCH_E_PROTOCOL', `bundle ${req.bundleHash} is unknown to the coordinator; send it with the job`);
  }
  if (req.total <= 0) throw new SkybatchError('SKYBATCH_E_EMPTY_INPUT', `the input has no items (${req.reader.path || req.reader.type}): nothing to do`);
  const why = unrunnable();
  if (why) throw why;
  const spec: JobSpec = { ...req, jobId: allocateJobId(), pool, createdAt: new Date().toISOString() };
  writeSpec(spec);
  return spec;
}

/**
 * Checks that job `jobId` on disk can be resumed on `pool` (it exists, is this pool's, has
 * not succeeded, the workers can reach its paths, some worker can run it) and, with `req` (a client's `resumeFrom`), stores
 * its new spec. Returns the spec, the journal to continue from, and how many committed
 * batches run again because a recover removed their files.
 */
export function admitResume(jobId: string, pool: string, config: PoolConfig, unrunnable: Unrunnable, req?: JobRequest, bundle?: string): { spec: JobSpec; replay: JournalState; rerun: number } {
  let spec = readCheckedSpec(jobId);
  if (spec.pool !== pool) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `job ${jobId} ran on pool '${spec.pool}', not '${pool}'`, { context: { jobId, field: 'poolName' } });
  }
  // A recover merging the job's finished batches now would publish them under the resumed
  // job's commits (it checks for that at its end, but not in the instant between its check and
  // its record): the job resumes once the merge is done.
  const merging = liveHolder(path.join(jobDir(jobId), 'reduce.lock'));
  if (merging) {
    throw new SkybatchError('SKYBATCH_E_POOL_BUSY', `job ${jobId} cannot be resumed while ${merging.what} (pid ${merging.pid}, since ${merging.since}) merges its outputs; resume it once that has ended`, {
      context: { jobId },
    });
  }
  let replay = readJournal(jobId);
  if (replay.status === 'SUCCEEDED') throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `job ${jobId} already succeeded; nothing to resume`, { context: { jobId } });
  assertWorkersCanReach(req ?? spec, config, pool);
  const why = unrunnable();
  if (why) throw why;
  if (req) {
    if (bundle !== undefined) saveBundle(req.bundleHash, bundle);
    spec = resumedSpec(spec, req);
    writeSpec(spec);
  }
  // A recover merged the finished batches into the outputs and removed their files: the job's
  // own merge needs every batch's files, so those batches run again (its merge would otherwise
  // fail on them, and only a second resume would run them). With every batch done, the outputs
  // are whole already and the resume only ends the job.
  const rerun = replay.published?.cleaned && !new JobRun(spec, replay).allDone ? replay.commits.size : 0;
  if (rerun) {
    const lost: JournalRecord[] = [];
    replay.commits.forEach((c, i) => lost.push({ e: 'lost', i, a: c.a }));
    appendJournalRecord(jobId, lost);
    replay = readJournal(jobId);
  }
  return { spec, replay, rerun };
}
