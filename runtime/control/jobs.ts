import * as fs from 'node:fs';
import { SkybatchError } from '../../formats/common/errors.js';
import { CoordinatorClient } from '../client/connection.js';
import { Job, follow } from '../client/dataset.js';
import { followJob } from '../client/job-follower.js';
import { isTerminal } from '../job-events.js';
import type { ProgressView } from '../client/progress.js';
import { runReduce } from '../coordinator/reducer.js';
import type { ReduceReport } from '../reduce-step.js';
import { listJobIds } from '../store/job-store.js';
import { readJobView, type JobView } from '../store/job-view.js';
import { readCoordinator } from '../store/pool-store.js';
import type { JobEvent, JobSummary } from '../protocol.js';

/**
 * What can be done to jobs, for the CLI (`skybatch jobs …`, `recover`) and the extension
 * alike: they parse arguments and print; this reads and acts. Failures are SkybatchErrors
 * with their codes, never text to be parsed.
 */

export type { JobView } from '../store/job-view.js';
export { batchOfItem } from '../store/job-view.js';

/** A job as its folder records it (what a stopped coordinator last wrote); see `readJobView`. */
export function jobView(jobId: string): JobView {
  return readJobView(jobId);
}

/** A job's summary as recorded on disk. */
export function jobFromDisk(jobId: string): JobSummary {
  return readJobView(jobId).summary;
}

/** Every job folder that holds a job, as its record on disk says; a folder being written or removed is left out. */
export function jobsOnDisk(): JobView[] {
  return listJobIds().flatMap((id) => {
    try {
      return [readJobView(id)];
    } catch {
      return [];
    }
  });
}

/** Every job, live from running coordinators where possible, else from disk. */
export async function listJobs(pool?: string): Promise<JobSummary[]> {
  const jobs = new Map<string, JobSummary>();
  for (const id of listJobIds()) {
    const s = jobFromDisk(id);
    if (!pool || s.pool === pool) jobs.set(id, s);
  }
  const pools = new Set([...jobs.values()].map((j) => j.pool));
  for (const p of pools) {
    if (!readCoordinator(p)) continue;
    const client = await CoordinatorClient.forPool(p);
    try {
      for (const j of (await client.request({ type: 'status' })).jobs) jobs.set(j.jobId, j);
    } finally {
      client.close();
    }
  }
  return [...jobs.values()].sort((a, b) => Number(a.jobId) - Number(b.jobId));
}

export async function cancelJob(jobId: string): Promise<JobSummary> {
  const job = jobFromDisk(jobId);
  if (!readCoordinator(job.pool)) {
    throw new SkybatchError('SKYBATCH_E_POOL_NOT_FOUND', `job ${jobId}'s pool '${job.pool}' is not running, so the job is not running either (status ${job.status})`, { context: { jobId } });
  }
  const client = await CoordinatorClient.forPool(job.pool);
  try {
    return await client.request({ type: 'cancel', jobId });
  } finally {
    client.close();
  }
}

/**
 * `skybatch jobs resume`: runs a failed or cancelled job's unfinished batches. With `wait`,
 * follows it to its end, handing each event to `show` (the CLI's progress bar).
 */
export async function resumeJob(jobId: string, opts: { wait: boolean; show?: ProgressView | ((e: JobEvent) => void) }): Promise<Job> {
  const job = jobFromDisk(jobId);
  const client = await CoordinatorClient.forPool(job.pool);
  try {
    const early: JobEvent[] = [];
    client.onEvent((e) => early.push(e));
    // a progress bar needs no per-batch events (see EventDetail); a function may draw them
    await client.request({ type: 'resume', jobId, events: typeof opts.show === 'function' ? 'all' : 'progress' });
    const handle = new Job(jobId, job.pool, 'PENDING');
    if (opts.wait) await follow(client, handle, early, opts.show);
    return handle;
  } finally {
    client.close();
  }
}

/** Prints a job's log; with `follow`, keeps printing its live log until the job ends. */
export async function jobLogs(jobId: string, follow: boolean, print: (line: string) => void): Promise<void> {
  const { summary: job, logFile: file } = jobView(jobId);
  if (fs.existsSync(file)) for (const line of fs.readFileSync(file, 'utf8').trimEnd().split('\n')) print(line);
  if (!follow || isTerminal(job.status)) return;
  // Like map(), the follower outlives coordinator restarts and dropped connections.
  const final = await followJob(jobId, {
    poolName: job.pool,
    events: 'progress',
    show: (e: JobEvent) => {
      if (e.kind === 'log' && e.jobId === jobId) print(`[${e.worker ?? 'coordinator'}] ${e.line}`);
    },
  });
  print(`[coordinator] job ${jobId} ${final.status}`);
}

/**
 * `skybatch recover JOB_ID`: merges a failed or cancelled job's finished batches into its
 * outputs (every writer's reduceResults), then removes its temp files unless `keepTemp`.
 * Idempotent: run again (or after a reduce by hand), it finds nothing to merge and leaves
 * the outputs as they are.
 */
export async function recoverJob(jobId: string, opts: { keepTemp: boolean; log: (l: string) => void }): Promise<{ job: JobSummary; report: ReduceReport }> {
  const job = jobFromDisk(jobId);
  if ((job.status === 'RUNNING' || job.status === 'PENDING') && readCoordinator(job.pool)) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `job ${jobId} is still ${job.status}; cancel it first with \`skybatch jobs cancel ${jobId}\``, { context: { jobId } });
  }
  const report = await runReduce(jobId, opts.log, { cleanup: !opts.keepTemp, recover: true });
  return { job, report };
}

/** The one-line outcome of a recover: the rows it actually wrote, or that it left the outputs alone. */
export function recoverSummary(report: ReduceReport): string {
  const written = report.alreadyPublished ? [] : report.outputs.filter((o) => o.written !== false);
  if (!written.length) {
    const when = report.alreadyPublished ? ` (they were published at ${report.alreadyPublished})` : '';
    return `job ${report.jobId}: nothing to merge, output left as is${when}`;
  }
  const rows = written.reduce((n, o) => n + (o.rows ?? 0), 0);
  const counted = written.some((o) => o.rows !== undefined);
  return `job ${report.jobId}: recovered ${counted ? `${rows} row(s)` : 'the finished batches'} into ${written.map((o) => o.path).join(', ')}`;
}
