import * as vscode from 'vscode';
import type { JobSummary } from '../../runtime/protocol.js';
import type { Engine } from '../engine.js';
import { jobIdOf, pickJob } from './pick.js';

/** "Cancel Job": cancels a running job; the pool keeps running and finished batches are kept. */
export function registerCancelJob(engine: () => Promise<Engine>, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.cancelJob', async (arg?: unknown): Promise<JobSummary | undefined> => {
    const e = await engine();
    const jobId = jobIdOf(arg) ?? (await pickJob(e, ['RUNNING', 'PENDING'], 'Cancel which job?', 'No job is running.'))?.jobId;
    if (!jobId) return undefined;
    try {
      const j = await e.jobs.cancelJob(jobId);
      void vscode.window.showInformationMessage(`Job ${jobId} ${j.status}: ${j.batchesDone}/${j.batchesTotal} batches done. "Sky Batch: Recover Partial Results" merges them.`);
      return j;
    } catch (err) {
      void vscode.window.showErrorMessage(`Cancel job ${jobId}: ${(err as Error).message}`);
      return undefined;
    } finally {
      refresh();
    }
  });
}
