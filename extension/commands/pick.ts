import * as vscode from 'vscode';
import type { JobStatus, JobSummary } from '../../runtime/protocol.js';
import type { Engine } from '../engine.js';
import { jobDescription } from '../pools-tree.js';

/** A job id from a command argument: a Pools view node, `{ jobId }`, or the id itself. */
export function jobIdOf(arg: unknown): string | undefined {
  if (typeof arg === 'string' || typeof arg === 'number') return String(arg);
  const a = arg as { jobId?: unknown; job?: { jobId?: unknown } } | undefined;
  const id = a?.job?.jobId ?? a?.jobId;
  return id === undefined ? undefined : String(id);
}

/** A pool name from a command argument: a Pools view node, `{ pool }`, or the name. */
export function poolOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') return arg;
  const p = (arg as { pool?: unknown } | undefined)?.pool;
  return typeof p === 'string' ? p : undefined;
}

/** Asks for one of the jobs whose status is in `statuses`; undefined when there is none or the user cancels. */
export async function pickJob(engine: Engine, statuses: JobStatus[], placeHolder: string, none: string): Promise<JobSummary | undefined> {
  const jobs = (await engine.jobs.listJobs()).filter((j) => statuses.includes(j.status)).reverse();
  if (!jobs.length) {
    void vscode.window.showInformationMessage(none);
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    jobs.map((j) => ({ label: `job ${j.jobId}`, description: `${j.pool} · ${jobDescription(j)}`, detail: j.error?.message.split('\n')[0] ?? j.scriptPath, job: j })),
    { placeHolder, matchOnDescription: true },
  );
  return pick?.job;
}

export async function pickPool(engine: Engine, placeHolder: string): Promise<string | undefined> {
  const pools = engine.pools.listPools();
  if (!pools.length) {
    void vscode.window.showInformationMessage('There are no pools. Start one with "Sky Batch: Apply Pool".');
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    pools.map((p) => ({ label: p, description: engine.pools.poolRunning(p) ? 'running' : 'not running' })),
    { placeHolder },
  );
  return pick?.label;
}
