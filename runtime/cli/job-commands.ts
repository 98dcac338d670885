import * as path from 'node:path';
import type { Command } from 'commander';
import { ProgressView } from '../client/progress.js';
import { waitForJob } from '../client/wait-for-job.js';
import { cancelJob, jobLogs, listJobs, recoverJob, recoverSummary, resumeJob } from '../control/jobs.js';
import { note, say, table } from './output.js';

/** `skybatch jobs queue | cancel | resume | wait | logs` and `skybatch recover`. */
export function registerJobCommands(program: Command): void {
  const jobs = program.command('jobs').description('list, cancel and read the logs of jobs');

  jobs
    .command('queue')
    .option('--pool <name>', 'only this pool')
    .option('--json', 'print a JSON array of job summaries (for scripts)', false)
    .description('list jobs with their status and progress')
    .action(async (o: { pool?: string; json: boolean }) => {
      const list = await listJobs(o.pool);
      if (o.json) {
        say(JSON.stringify(list, null, 2));
        return;
      }
      if (!list.length) {
        say('no jobs');
        return;
      }
      const rows = [['ID', 'POOL', 'STATUS', 'BATCHES', 'ITEMS', 'SUBMITTED', 'SCRIPT']];
      for (const j of list) {
        rows.push([j.jobId, j.pool, j.status, `${j.batchesDone}/${j.batchesTotal}`, `${j.itemsDone}/${j.itemsTotal}`, j.createdAt.replace('T', ' ').slice(0, 19), path.basename(j.scriptPath)]);
      }
      say(table(rows));
    });

  jobs
    .command('cancel')
    .argument('<jobId>')
    .description('cancel a job; the pool keeps running and finished batches are kept')
    .action(async (jobId: string) => {
      const j = await cancelJob(jobId);
      say(`job ${jobId}: ${j.status} (${j.batchesDone}/${j.batchesTotal} batches done); recover them with: skybatch recover ${jobId}`);
    });

  jobs
    .command('resume')
    .argument('<jobId>')
    .option('--no-wait', 'return once the job is queued')
    .description('run the batches of a failed or cancelled job that did not finish')
    .action(async (jobId: string, o: { wait: boolean }) => {
      const j = await resumeJob(jobId, { wait: o.wait, show: o.wait ? new ProgressView(jobId) : undefined });
      say(`job ${jobId} ${o.wait ? j.status : 'resumed'}`);
    });

  jobs
    .command('wait')
    .argument('<jobId>')
    .option('--pool <name>', "the job's pool (default: the one its record names)")
    .description('wait for a job to end, showing its progress; exits 0 only if it succeeded')
    .action(async (jobId: string, o: { pool?: string }) => {
      const j = await waitForJob(jobId, { poolName: o.pool });
      say(`job ${jobId}: ${j.status} (${j.summary?.batchesDone}/${j.summary?.batchesTotal} batches, ${j.summary?.itemsDone} items) into ${j.summary?.outputs.join(', ')}`);
    });

  jobs
    .command('logs')
    .argument('<jobId>')
    .option('-f, --follow', 'keep printing until the job ends', false)
    .description("print a job's log: mapper output and what the coordinator did")
    .action(async (jobId: string, o: { follow: boolean }) => jobLogs(jobId, o.follow, say));

  program
    .command('recover')
    .argument('<jobId>')
    .option('--keep-temp', 'keep the temporary batch files (for debugging)', false)
    .option('--json', 'print what was merged as JSON (for programs)', false)
    .description("merge a failed or cancelled job's finished batches into its outputs, then clean up")
    .action(async (jobId: string, o: { keepTemp: boolean; json: boolean }) => {
      const { report } = await recoverJob(jobId, { keepTemp: o.keepTemp, log: note });
      say(o.json ? JSON.stringify(report) : recoverSummary(report));
    });
}
