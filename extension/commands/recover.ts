import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { JobSummary } from '../../runtime/protocol.js';
import type { ReduceReport } from '../../runtime/reduce-step.js';
import { cliError, runCli } from '../cli-process.js';
import { otherOwners, publishOf, type OutputOwner, type Publish } from '../core/output-publishers.js';
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

/** Shows a local output in the Explorer, selected in its folder. */
export async function revealOutput(output: string): Promise<void> {
  const p = output.replace(/^file:\/\//, '');
  if (!fs.existsSync(p)) void vscode.window.showWarningMessage(`${p} does not exist (any more).`);
  else await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(p));
}

/** Every job as its record on disk says (a finished job's record is final), with what it last published. */
function jobsOnDisk(e: Engine): { jobs: JobSummary[]; publishes: Publish[] } {
  const jobs: JobSummary[] = [];
  const publishes: Publish[] = [];
  // a job folder being written or removed is left out: it owns nothing yet
  for (const view of e.jobs.jobsOnDisk()) {
    jobs.push(view.summary);
    const p = publishOf(view.summary, view.published);
    if (p) publishes.push(p);
  }
  return { jobs, publishes };
}

const when = (iso?: string) => (iso ? new Date(iso).toLocaleString() : '?');

/** Asks before recovering `job` over outputs another job wrote; true when the user agrees. */
async function confirmReplace(job: JobSummary, owners: OutputOwner[]): Promise<boolean> {
  const first = owners[0];
  const others = owners.length > 1 ? ` (and job${owners.length > 2 ? 's' : ''} ${owners.slice(1).map((o) => o.job.jobId).join(', ')})` : '';
  const ended = job.status === 'CANCELLED' ? 'was cancelled' : 'failed';
  const detail =
    `Job ${first.job.jobId} wrote ${first.outputs.join(', ')} at ${when(first.at)}${others}. ` +
    `Job ${job.jobId} ${ended} ${first.later ? 'before that' : 'after that'}, at ${when(job.finishedAt ?? job.createdAt)}. ` +
    `Recovering job ${job.jobId} replaces that output with its ${job.batchesDone}/${job.batchesTotal} finished batches (${job.itemsDone} items).`;
  const message = `Replace the output of the ${first.later ? 'newer ' : ''}job ${first.job.jobId} with job ${job.jobId}'s partial results?`;
  const answer = await vscode.window.showWarningMessage(message, { modal: true, detail }, 'Replace Output');
  return answer === 'Replace Output';
}

/**
 * "Recover Partial Results": merges a failed or cancelled job's finished batches into its
 * outputs (`skybatch recover`: every writer's reduce, then cleanup) and opens the output.
 * When an output holds what another job published, it asks first (`{ replaceOthers: true }`
 * as second argument answers for callers that already asked).
 */
export function registerRecover(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.recoverPartialResults', async (arg?: unknown, opts?: { replaceOthers?: boolean }): Promise<JobSummary | undefined> => {
    const e = await engine();
    let jobId = jobIdOf(arg);
    if (!jobId) jobId = (await pickJob(e, ['FAILED', 'CANCELLED'], 'Recover the finished batches of which job?', 'No failed or cancelled job to recover.'))?.jobId;
    if (!jobId) return undefined;
    const job = e.jobs.jobFromDisk(jobId);
    const { jobs, publishes } = jobsOnDisk(e);
    const owners = otherOwners(job, publishes, jobs);
    if (owners.length && !opts?.replaceOthers && !(await confirmReplace(job, owners))) {
      log.appendLine(`[recover ${jobId}] not recovered: ${owners[0].outputs.join(', ')} holds job ${owners[0].job.jobId}'s output`);
      return undefined;
    }
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Recovering job ${jobId}` }, () =>
      runCli(e, ['recover', jobId, '--json'], { onStderrLine: (l) => log.appendLine(`[recover ${jobId}] ${l}`) }),
    );
    refresh();
    if (r.code !== 0) {
      const err = cliError(r);
      void vscode.window.showErrorMessage(`Recover job ${jobId}: [${err.code}] ${err.message}`);
      return undefined;
    }
    // what it merged, as the CLI says it: the rows it actually wrote, or that there was nothing to merge
    const summary = e.jobs.recoverSummary(JSON.parse(r.stdout.trim().split('\n').pop()!) as ReduceReport);
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
    // A request to the coordinator, like cancel: the control API's errors carry their codes.
    try {
      await e.jobs.resumeJob(jobId, { wait: false });
    } catch (err) {
      const { code, message } = err as { code?: string; message: string };
      log.appendLine(`[resume ${jobId}] error [${code ?? 'SKYBATCH_E_SCRIPT'}]: ${message}`);
      void vscode.window.showErrorMessage(`Resume job ${jobId}: [${code ?? 'SKYBATCH_E_SCRIPT'}] ${message}`);
      return undefined;
    } finally {
      refresh();
    }
    log.appendLine(`[resume ${jobId}] resumed`);
    void vscode.window.showInformationMessage(`Job ${jobId} resumed: its unfinished batches run again.`);
    await vscode.commands.executeCommand('skybatch.showJobPanel', jobId);
    return jobId;
  });
}
