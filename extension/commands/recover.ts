import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { JobSummary } from '../../runtime/protocol.js';
import { cliError, runCli } from '../cli-process.js';
import { laterWriters, type LaterWriter } from '../core/later-writers.js';
import type { Engine } from '../engine.js';
import { jobIdOf, pickJob } from './pick.js';

/** Opens what a job wrote: a file in an editor, a folder in the Explorer. */
export async function openOutput(output: string): Promise<void> {
  if (/^(s3|gs):\/\//.test(output)) {
    void vscode.window.showInformationMessage(`The output is in the cloud: ${output}`);
    return;
  }
  const p = output.replace(/^file:\/\//, '');
  const uri = vscode.Uri.file(p);
  if (!fs.existsSync(p)) void vscode.window.showWarningMessage(`${p} does not exist (any more).`);
  else if (fs.statSync(p).isDirectory()) await vscode.commands.executeCommand('revealInExplorer', uri);
  else await vscode.window.showTextDocument(uri, { preview: false });
}

/** Every job as its record on disk says (a finished job's record is final; running ones do not matter here). */
function jobsOnDisk(e: Engine): JobSummary[] {
  return e.journal.listJobIds().flatMap((id) => {
    try {
      return [e.jobs.jobFromDisk(id)];
    } catch {
      return [];
    }
  });
}

const when = (iso?: string) => (iso ? new Date(iso).toLocaleString() : '?');

/** Asks before recovering `job` over outputs a later job wrote; true when the user agrees. */
async function confirmReplace(job: JobSummary, later: LaterWriter[]): Promise<boolean> {
  const newest = later[0];
  const others = later.length > 1 ? ` (and ${later.length - 1} more job${later.length > 2 ? 's' : ''}: ${later.slice(1).map((w) => w.job.jobId).join(', ')})` : '';
  const detail =
    `Job ${newest.job.jobId} succeeded at ${when(newest.job.finishedAt)} and wrote ${newest.outputs.join(', ')}${others}. ` +
    `Job ${job.jobId} ${job.status === 'CANCELLED' ? 'was cancelled' : 'failed'} earlier, at ${when(job.finishedAt ?? job.createdAt)}. ` +
    `Recovering job ${job.jobId} replaces that output with its ${job.batchesDone}/${job.batchesTotal} finished batches (${job.itemsDone} items).`;
  const answer = await vscode.window.showWarningMessage(`Replace the output of the newer job ${newest.job.jobId} with job ${job.jobId}'s partial results?`, { modal: true, detail }, 'Replace Output');
  return answer === 'Replace Output';
}

/**
 * "Recover Partial Results": merges a failed or cancelled job's finished batches into its
 * outputs (`skybatch recover`: every writer's reduce, then cleanup) and opens the output.
 * When a later job has written one of those outputs since, it asks first (`{ replaceNewer:
 * true }` as second argument answers for callers that already asked).
 */
export function registerRecover(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.recoverPartialResults', async (arg?: unknown, opts?: { replaceNewer?: boolean }): Promise<JobSummary | undefined> => {
    const e = await engine();
    let jobId = jobIdOf(arg);
    if (!jobId) jobId = (await pickJob(e, ['FAILED', 'CANCELLED'], 'Recover the finished batches of which job?', 'No failed or cancelled job to recover.'))?.jobId;
    if (!jobId) return undefined;
    const job = e.jobs.jobFromDisk(jobId);
    const later = laterWriters(job, jobsOnDisk(e));
    if (later.length && !opts?.replaceNewer && !(await confirmReplace(job, later))) {
      log.appendLine(`[recover ${jobId}] not recovered: job ${later[0].job.jobId} wrote ${later[0].outputs.join(', ')} later`);
      return undefined;
    }
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Recovering job ${jobId}` }, () =>
      runCli(e.cli, ['recover', jobId], { onStderrLine: (l) => log.appendLine(`[recover ${jobId}] ${l}`) }),
    );
    refresh();
    if (r.code !== 0) {
      const err = cliError(r);
      void vscode.window.showErrorMessage(`Recover job ${jobId}: [${err.code}] ${err.message}`);
      return undefined;
    }
    // the CLI's own summary: the rows it actually wrote, or that there was nothing to merge
    const summary = r.stdout.trim().split('\n').pop() || `job ${jobId} recovered`;
    void vscode.window.showInformationMessage(summary.replace(/^job /, 'Job '));
    if (job.outputs[0]) await openOutput(job.outputs[0]);
    return job;
  });
}

/** "Resume Job": runs the batches of a failed or cancelled job that did not finish, on its pool, and shows its panel. */
export function registerResume(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.resumeJob', async (arg?: unknown): Promise<string | undefined> => {
    const e = await engine();
    const jobId = jobIdOf(arg) ?? (await pickJob(e, ['FAILED', 'CANCELLED'], 'Resume which job?', 'No failed or cancelled job to resume.'))?.jobId;
    if (!jobId) return undefined;
    const r = await runCli(e.cli, ['jobs', 'resume', jobId, '--no-wait'], { onStderrLine: (l) => log.appendLine(`[resume ${jobId}] ${l}`) });
    refresh();
    if (r.code !== 0) {
      const err = cliError(r);
      void vscode.window.showErrorMessage(`Resume job ${jobId}: [${err.code}] ${err.message}`);
      return undefined;
    }
    void vscode.window.showInformationMessage(`Job ${jobId} resumed: its unfinished batches run again.`);
    await vscode.commands.executeCommand('skybatch.showJobPanel', jobId);
    return jobId;
  });
}
