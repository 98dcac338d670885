import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkybatchError } from '../../formats/errors.js';
import { CoordinatorClient } from '../client/connection.js';
import { Job, follow } from '../client/dataset.js';
import { followJob, isFinished } from '../client/job-follower.js';
import { ProgressView } from '../client/progress.js';
import { JobRun } from '../coordinator/job-run.js';
import { listJobIds, readJournal, readSpec } from '../store/job-store.js';
import { runReduce } from '../coordinator/reducer.js';
import type { ReduceReport } from '../reduce-step.js';
import { assertJobId, jobDir, readCoordinator } from '../store/pool-store.js';
import { checkJobSpec } from '../protocol-guards.js';
import type { JobEvent, JobSummary } from '../protocol.js';

/** A job's summary as recorded on disk (what a stopped coordinator last wrote). */
export function jobFromDisk(jobId: string): JobSummary {
  assertJobId(jobId);
  let raw;
  try {
    raw = readSpec(jobId);
  } catch {
    throw new SkybatchError('SKYBATCH_E_JOB_NOT_FOUND', `job ${jobId} not found`, { context: { jobId } });
  }
  // checked before the batch table is built: a spec with batchSize 0 would never finish building it
  return new JobRun(checkJobSpec(raw, jobId), readJournal(jobId)).summary();
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

/** `skybatch jobs resume`: runs a failed or cancelled job's unfinished batches, following its progress. */
export async function resumeJob(jobId: string, opts: { wait: boolean }): Promise<Job> {
  const job = jobFromDisk(jobId);
  const client = await CoordinatorClient.forPool(job.pool);
  try {
    const early: JobEvent[] = [];
    client.onEvent((e) => early.push(e));
    await client.request({ type: 'resume', jobId });
    const handle = new Job(jobId, job.pool, 'PENDING');
    if (opts.wait) await follow(client, handle, early, new ProgressView(jobId));
    return handle;
  } finally {
    client.close();
  }
}

/** Prints a job's log; with `follow`, keeps printing its live log until the job ends. */
export async function jobLogs(jobId: string, follow: boolean, print: (line: string) => void): Promise<void> {
  const job = jobFromDisk(jobId);
  const file = path.join(jobDir(jobId), 'job.log');
  if (fs.existsSync(file)) for (const line of fs.readFileSync(file, 'utf8').trimEnd().split('\n')) print(line);
  if (!follow || isFinished(job.status)) return;
  // Like map(), the follower outlives coordinator restarts and dropped connections.
  const final = await followJob(jobId, {
    poolName: job.pool,
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
