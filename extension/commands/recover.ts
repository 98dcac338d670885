import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { JobSummary } from '../../runtime/protocol.js';
import { cliError, runCli } from '../cli-process.js';
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
  if (fs.existsSync(p) && fs.statSync(p).isDirectory()) await vscode.commands.executeCommand('revealInExplorer', uri);
  else if (fs.existsSync(p)) await vscode.window.showTextDocument(uri, { preview: false });
}

/**
 * "Recover Partial Results": merges a failed or cancelled job's finished batches into its
 * outputs (`skybatch recover`: every writer's reduce, then cleanup) and opens the output.
 */
export function registerRecover(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.recoverPartialResults', async (arg?: unknown): Promise<JobSummary | undefined> => {
    const e = await engine();
    let jobId = jobIdOf(arg);
    if (!jobId) jobId = (await pickJob(e, ['FAILED', 'CANCELLED'], 'Recover the finished batches of which job?', 'No failed or cancelled job to recover.'))?.jobId;
    if (!jobId) return undefined;
    const job = e.jobs.jobFromDisk(jobId);
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
