import { z } from 'zod';
import { parseAccelerators } from '../host-resources.js';
import type { ConfigProblem, PoolConfig } from '../pool-config.js';
import { shq } from './ssh-command.js';

/** sbatch options the backend sets itself, with the pool-file field that sets each instead. */
const OWNED_OPTIONS: Record<string, string> = {
  'job-name': 'the backend names each job sky-POOL-WORKER',
  output: 'the backend writes job output under pool.shared_fs/.skybatch/pools/POOL/logs',
  error: 'the backend writes job output under pool.shared_fs/.skybatch/pools/POOL/logs',
  input: 'a worker reads nothing on stdin',
  parsable: 'the backend reads the job id itself',
  wrap: 'the backend writes the batch script',
  array: 'the backend submits one job per worker',
  chdir: 'set slurm.workdir (the worker folders on each node)',
  partition: 'set slurm.partition',
  account: 'set slurm.account',
  time: 'set slurm.time',
};
/** Owned only when `resources` asks for that thing (otherwise a user may pass it here). */
const FROM_RESOURCES: Record<string, string> = {
  gres: 'accelerators',
  gpus: 'accelerators',
  'cpus-per-task': 'cpus',
  mem: 'memory',
  tmp: 'disk_size',
};

/** What is wrong with `slurm.options` (each `--name[=value]`), as problems at their fields. */
export function slurmOptionProblems(config: PoolConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  (config.slurm?.options ?? []).forEach((opt, i) => {
    const name = /^--([a-z][a-z0-9-]*)/.exec(opt)?.[1] ?? '';
    const field = ['slurm', 'options', String(i)];
    if (OWNED_OPTIONS[name]) problems.push({ field, message: `${opt}: ${OWNED_OPTIONS[name]}` });
    const res = FROM_RESOURCES[name];
    if (res && config.resources?.[res as keyof NonNullable<PoolConfig['resources']>] !== undefined) {
      problems.push({ field, message: `${opt}: comes from resources.${res} in this pool file; set it there, or drop resources.${res}` });
    }
  });
  return problems;
}

/** A `resources` quantity (`4`, `4+`, `0.5`) as the number it asks for at least. */
const atLeast = (q: number | string) => Number(String(q).replace('+', ''));

/**
 * sbatch options for one worker's job: what `resources` asks (GPUs as `--gres=gpu[:TYPE]:N`,
 * `--cpus-per-task`, `--mem` in MB, `--tmp`), then `partition`, `account`, `time`, then the
 * pool file's own `slurm.options`. An accelerator named `gpu` is any GPU type.
 */
export function resourceOptions(config: PoolConfig): string[] {
  const res = config.resources ?? {};
  const out: string[] = [];
  if (res.accelerators !== undefined) {
    const gres = parseAccelerators(res.accelerators)
      .filter((a) => a.count > 0)
      .map((a) => (a.type.toLowerCase() === 'gpu' ? `gpu:${a.count}` : `gpu:${a.type}:${a.count}`));
    if (gres.length) out.push(`--gres=${gres.join(',')}`);
  }
  if (res.cpus !== undefined) out.push(`--cpus-per-task=${Math.ceil(atLeast(res.cpus))}`);
  if (res.memory !== undefined) out.push(`--mem=${Math.ceil(atLeast(res.memory) * 1024)}M`);
  if (res.disk_size !== undefined) out.push(`--tmp=${res.disk_size}G`);
  const s = config.slurm ?? {};
  if (s.partition) out.push(`--partition=${s.partition}`);
  if (s.account) out.push(`--account=${s.account}`);
  if (s.time !== undefined) out.push(`--time=${s.time}`);
  return [...out, ...(s.options ?? [])];
}

export interface BatchScriptSpec {
  pool: string;
  name: string;
  /** Folder of the skybatch package the nodes run (with out/runtime/worker/main.js). */
  runtime: string;
  /** Folder on the shared file system with jobs' packages, one `HASH/` each (the worker's --packages-dir). */
  packages?: string;
  /** Folder on the shared file system with the pool's token (and ca.pem for wss://). */
  secrets: string;
  url: string;
  node?: string;
  /** Where worker folders go on each node (default: $TMPDIR or /tmp, per user). */
  workdir?: string;
}

/** A folder from the pool file as a shell word: `~/x` becomes "$HOME"/'x'. */
function dirWord(dir: string): string {
  if (dir === '~') return '"$HOME"';
  if (dir.startsWith('~/')) return `"$HOME"/${shq(dir.slice(2))}`;
  return shq(dir);
}

/**
 * The batch script of one worker's job. The token is read from a file only the user can
 * read on the shared file system, never put on a command line or in the job's environment
 * (both visible to others through Slurm). The launch id is `JOBID.RESTARTS`: the job, and
 * which run of it (Slurm runs a requeued job again under the same id), so the coordinator
 * can refuse every run but the newest.
 */
export function batchScript(s: BatchScriptSpec): string {
  const base = s.workdir ? dirWord(s.workdir) : '"${TMPDIR:-/tmp}/skybatch-$(id -u)"';
  return [
    '#!/bin/sh',
    `# skybatch worker ${s.name} of pool ${s.pool} (submitted by the pool's coordinator; scancel stops it)`,
    `S=${shq(s.secrets)}`,
    'SKYBATCH_TOKEN=$(cat "$S/token") || { echo "cannot read the pool token in $S: is pool.shared_fs mounted on $(hostname)?" >&2; exit 78; }',
    'export SKYBATCH_TOKEN',
    'if [ -f "$S/ca.pem" ]; then export SKYBATCH_CA="$S/ca.pem"; else unset SKYBATCH_CA; fi',
    `R=${shq(s.runtime)}`,
    `[ -f "$R/out/runtime/worker/main.js" ] || { echo "no skybatch runtime at $R on $(hostname)" >&2; exit 78; }`,
    `W=${base}/${shq(s.pool)}/${shq(s.name)}`,
    'mkdir -p "$W" && cd "$W" || exit 1',
    `exec ${shq(s.node ?? 'node')} --enable-source-maps "$R/out/runtime/worker/main.js" --coordinator ${shq(s.url)} --name ${shq(s.name)} --workdir "$W"${s.packages ? ` --packages-dir ${shq(s.packages)}` : ''} --launch "$SLURM_JOB_ID.\${SLURM_RESTART_COUNT:-0}"`,
    '',
  ].join('\n');
}

/** A launch id from `batchScript`: the Slurm job and its run. */
export function parseLaunch(launch: string): { jobId: string; run: number } | undefined {
  const m = /^(\d+)\.(\d+)$/.exec(launch);
  return m ? { jobId: m[1], run: Number(m[2]) } : undefined;
}

/** One job as squeue reports it. */
export interface SlurmJob {
  id: string;
  /** PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, NODE_FAIL, ... */
  state: string;
  /** Why it is pending, or why it ended (`Resources`, `NonZeroExitCode`); `None` is dropped. */
  reason?: string;
  nodes?: string;
  /** How many times Slurm requeued it. */
  restarts: number;
  exitCode?: number;
  signal?: number;
}

/** Job states after which Slurm runs nothing more of the job (a requeue gives PENDING again). */
const ENDED = new Set(['COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'OUT_OF_MEMORY', 'SPECIAL_EXIT', 'REVOKED']);
export const hasEnded = (j: SlurmJob) => ENDED.has(j.state);

// Slurm 22.05 (Debian 12) gives plain values; 23.02 and later wrap states in arrays and numbers in { set, number }.
const num = z.union([z.number(), z.object({ number: z.number().optional(), set: z.boolean().optional() }).passthrough()]).transform((v) => (typeof v === 'number' ? v : v.set === false ? undefined : v.number));
const squeueJson = z.object({
  jobs: z.array(
    z
      .object({
        job_id: z.number(),
        job_state: z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? (v[0] ?? 'UNKNOWN') : v)),
        state_reason: z.string().optional(),
        nodes: z.string().optional(),
        restart_cnt: num.optional(),
        exit_code: z
          .union([z.number(), z.object({ return_code: num.optional(), signal: z.object({ id: num.optional() }).passthrough().optional() }).passthrough()])
          .optional(),
      })
      .passthrough(),
  ),
});

/** Parses `squeue --json` (which lists every job it knows, whatever -j or -t say). */
export function parseSqueueJson(text: string): SlurmJob[] {
  return squeueJson.parse(JSON.parse(text)).jobs.map((j) => {
    let exitCode: number | undefined;
    let signal: number | undefined;
    const e = j.exit_code;
    if (typeof e === 'number') {
      // a wait status: code << 8, or the signal in the low bits
      if (e & 0x7f) signal = e & 0x7f;
      else exitCode = e >> 8;
    } else if (e && typeof e === 'object') {
      exitCode = e.return_code ?? undefined;
      signal = e.signal?.id || undefined;
    }
    return {
      id: String(j.job_id),
      state: j.job_state,
      ...(j.state_reason && j.state_reason !== 'None' ? { reason: j.state_reason } : {}),
      ...(j.nodes ? { nodes: j.nodes } : {}),
      restarts: j.restart_cnt ?? 0,
      ...(exitCode !== undefined ? { exitCode } : {}),
      ...(signal !== undefined ? { signal } : {}),
    };
  });
}

/** The fixed `squeue -o` format of `parseSqueueFormat`, for a Slurm without `--json`. */
export const SQUEUE_FORMAT = '%i|%T|%r|%N';

export function parseSqueueFormat(text: string): SlurmJob[] {
  return text
    .split('\n')
    .filter((l) => l.includes('|'))
    .map((l) => {
      const [id, state, reason, nodes] = l.trim().split('|');
      return { id, state, ...(reason && reason !== 'None' ? { reason } : {}), ...(nodes ? { nodes } : {}), restarts: 0 };
    });
}
