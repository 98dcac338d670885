import type { JobSummary } from '../../runtime/protocol.js';

export interface LaterWriter {
  job: JobSummary;
  /** The outputs it shares with the job being recovered. */
  outputs: string[];
}

const endOf = (j: JobSummary) => Date.parse(j.finishedAt ?? j.createdAt);

/**
 * The jobs that published one of `job`'s outputs after `job` ended: every one that
 * succeeded later writing to the same path (a job's reduce publishes its outputs when it
 * succeeds). Recovering `job` would replace what they wrote. Newest first.
 */
export function laterWriters(job: JobSummary, jobs: readonly JobSummary[]): LaterWriter[] {
  const mine = new Set(job.outputs);
  const after = endOf(job);
  return jobs
    .filter((k) => k.jobId !== job.jobId && k.status === 'SUCCEEDED' && k.finishedAt !== undefined && endOf(k) > after)
    .map((k) => ({ job: k, outputs: k.outputs.filter((o) => mine.has(o)) }))
    .filter((w) => w.outputs.length > 0)
    .sort((a, b) => endOf(b.job) - endOf(a.job));
}
