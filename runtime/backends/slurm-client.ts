import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hasEnded, parseSqueueFormat, parseSqueueJson, SlurmJob, SQUEUE_FORMAT } from './slurm-command.js';

const COMMAND_TIMEOUT_MS = 30_000;
/** How long stopping jobs waits for squeue to show them ended. */
export const END_WAIT_MS = 20_000;
/** The coordinator's record of its jobs (pool folder), so a restarted coordinator adopts them and `pool down` cancels them. */
export const SLURM_JOBS_FILE = 'slurm-jobs.json';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/** Runs a Slurm command (sbatch, squeue, scancel) with `input` on its stdin; never rejects. */
export function slurmCommand(cmd: string, args: string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    // the pool token reaches a worker only through its file on the shared file system
    delete env.SKYBATCH_TOKEN;
    delete env.SKYBATCH_CA;
    const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env, timeout: COMMAND_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.stdin.on('error', () => {});
    proc.stdin.end(input ?? '');
    proc.on('error', (error) => resolve({ code: null, stdout, stderr, error }));
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What a failed command said: its last stderr line, without the `sbatch: error: ` prefix. */
export const commandError = (r: CommandResult) => (r.error?.message ?? r.stderr.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.code}`).replace(/^s\w+: error: /, '');

/**
 * Reads the queue: `squeue --json` (every job it knows, whatever -j or -t say), or, on a
 * Slurm without it, a fixed `--format` of the user's own jobs. A failure is logged once
 * until squeue answers again.
 */
export class SqueueReader {
  private json = true;
  private trouble?: string;

  constructor(private readonly log: (line: string) => void = () => {}) {}

  async jobs(): Promise<SlurmJob[] | undefined> {
    let r = this.json ? await slurmCommand('squeue', ['--json']) : undefined;
    if (r && r.code !== 0 && /json/i.test(r.stderr)) {
      this.log(`squeue --json is not supported here (${commandError(r)}); reading squeue -o '${SQUEUE_FORMAT}' instead`);
      this.json = false;
    }
    if (!this.json) r = await slurmCommand('squeue', ['--noheader', '--me', '--states=all', `--format=${SQUEUE_FORMAT}`]);
    try {
      if (r!.code !== 0) throw new Error(commandError(r!));
      const jobs = this.json ? parseSqueueJson(r!.stdout) : parseSqueueFormat(r!.stdout);
      if (this.trouble) this.log('squeue answers again');
      this.trouble = undefined;
      return jobs;
    } catch (err) {
      const why = (err as Error).message;
      if (this.trouble !== why) this.log(`squeue failed: ${why}`);
      this.trouble = why;
      return undefined;
    }
  }

  /** scancel, then wait until squeue shows every job ended (scancel only asks). Returns the ids still listed at the deadline. */
  async cancel(ids: string[], timeoutMs = END_WAIT_MS): Promise<string[]> {
    if (!ids.length) return [];
    const r = await slurmCommand('scancel', ids);
    if (r.code !== 0) this.log(`scancel ${ids.join(' ')}: ${commandError(r)}`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const jobs = await this.jobs();
      const live = jobs ? ids.filter((id) => jobs.some((j) => j.id === id && !hasEnded(j))) : ids;
      if (!live.length || Date.now() > deadline) return live;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

export function readJobsFile(poolDir: string): Record<string, string> {
  try {
    return JSON.parse(fs.readFileSync(path.join(poolDir, SLURM_JOBS_FILE), 'utf8')) as Record<string, string>;
  } catch {
    return {};
  }
}

/**
 * For `pool down` after a coordinator that died: cancels the Slurm jobs it had submitted
 * (its record in the pool folder) and waits, as a coordinator's teardown does, until squeue
 * shows them ended. Returns their ids.
 */
export async function cancelLeftoverSlurmJobs(poolDir: string): Promise<string[]> {
  const ids = Object.values(readJobsFile(poolDir));
  await new SqueueReader().cancel(ids);
  return ids;
}
