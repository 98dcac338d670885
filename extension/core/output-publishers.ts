import type { JobSummary } from '../../runtime/protocol.js';

/** One job's last publish of its outputs: from its journal's `published` record, or, for a job journaled before those existed, its success. */
export interface Publish {
  jobId: string;
  at: string;
  paths: string[];
}

/** A job whose publish is what an output holds now. */
export interface OutputOwner {
  job: JobSummary;
  at: string;
  /** The outputs it shares with the job being recovered. */
  outputs: string[];
  /** Whether it published after the recovered job ended. */
  later: boolean;
}

/** What a job published, as the journal's `published` record says (outputs it left alone do not count). */
export function publishOf(job: JobSummary, published?: { at: string; outputs: { path: string; written?: boolean }[] }): Publish | undefined {
  if (published) return { jobId: job.jobId, at: published.at, paths: published.outputs.filter((o) => o.written !== false).map((o) => o.path) };
  if (job.status === 'SUCCEEDED' && job.finishedAt) return { jobId: job.jobId, at: job.finishedAt, paths: job.outputs };
  return undefined;
}

/**
 * The other jobs whose output a recover of `job` would replace: for each of its outputs,
 * the job that published it last, when that is another job. A job that published its own
 * outputs already is not merged again by a recover (the engine only cleans up), so nothing
 * of anyone's is replaced then. Newest first.
 */
export function otherOwners(job: JobSummary, publishes: readonly Publish[], jobs: readonly JobSummary[]): OutputOwner[] {
  if (publishes.some((p) => p.jobId === job.jobId)) return [];
  const ended = Date.parse(job.finishedAt ?? job.createdAt);
  const owners = new Map<string, OutputOwner>();
  for (const out of job.outputs) {
    const last = publishes.filter((p) => p.paths.includes(out)).sort((a, b) => Date.parse(b.at) - Date.parse(a.at))[0];
    const other = last && jobs.find((j) => j.jobId === last.jobId);
    if (!last || !other) continue;
    const o = owners.get(last.jobId) ?? { job: other, at: last.at, outputs: [], later: Date.parse(last.at) > ended };
    o.outputs.push(out);
    owners.set(last.jobId, o);
  }
  return [...owners.values()].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}
