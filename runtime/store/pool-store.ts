import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SkybatchError } from '../../formats/common/errors.js';
import { POOL_NAME_PATTERN } from '../job-options.js';

/**
 * Where pool and job state lives: `$SKYBATCH_HOME` (default `~/.skybatch`).
 *   pools/<name>/coordinator.json   url + pid of the running coordinator
 *   pools/<name>/token              the pool's secret (mode 0600)
 *   pools/<name>/pool.json          the applied pool config
 *   pools/<name>/coordinator.log
 *   pools/<name>/pool.lock          held by `pool apply` / `pool down` while they start or stop it
 *   pools/<name>/workers/<i>/       local workers' working directories
 *   jobs/<id>/job.json              the job's spec; journal.jsonl its batch history; job.log
 *   bundles/<sha256>.mjs            mapper bundles by content hash
 */
export function skybatchHome(): string {
  return process.env.SKYBATCH_HOME || path.join(os.homedir(), '.skybatch');
}

/** Job ids are what `allocateJobId` makes: decimal digits. Anything else never reaches a path. */
export const JOB_ID_PATTERN = /^[0-9]{1,15}$/;
/** A bundle is named by the sha256 of its code, in lowercase hex. */
export const BUNDLE_HASH_PATTERN = /^[0-9a-f]{64}$/;

export function assertJobId(jobId: unknown): asserts jobId is string {
  if (typeof jobId !== 'string' || !JOB_ID_PATTERN.test(jobId)) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `job id ${JSON.stringify(jobId)} is invalid: job ids are decimal digits, as \`skybatch jobs queue\` lists them`, {
      context: { field: 'jobId' },
    });
  }
}

export function assertBundleHash(hash: unknown): asserts hash is string {
  if (typeof hash !== 'string' || !BUNDLE_HASH_PATTERN.test(hash)) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `bundle hash ${JSON.stringify(hash)} is invalid: expected 64 lowercase hex digits (a sha256)`, {
      context: { field: 'bundleHash' },
    });
  }
}

export const poolDir = (pool: string) => path.join(skybatchHome(), 'pools', pool);
export const jobsDir = () => path.join(skybatchHome(), 'jobs');
/** Every path of a job goes through here, so a job id like `../../x` is refused wherever it comes from (CLI, socket, extension). */
export const jobDir = (jobId: string) => {
  assertJobId(jobId);
  return path.join(jobsDir(), jobId);
};
export const bundlesDir = () => path.join(skybatchHome(), 'bundles');
/** A bundle's file, by content hash; the hash is checked before it becomes a path. */
export const bundlePath = (hash: string) => {
  assertBundleHash(hash);
  return path.join(bundlesDir(), `${hash}.mjs`);
};

export interface CoordinatorInfo {
  pool: string;
  url: string;
  pid: number;
  startedAt: string;
  /** The skybatch build the coordinator runs (see build-id.ts). */
  build?: string;
  /** For wss://: the certificate file clients and workers on this machine trust. */
  ca?: string;
}

export function assertPoolName(pool: string): void {
  if (!POOL_NAME_PATTERN.test(pool)) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `pool name '${pool}' is invalid: use letters, digits, '_', '-', '.' (at most 63)`, {
      context: { field: 'poolName' },
    });
  }
}

/** Writes a file only the owner can read, atomically. */
export function writePrivate(file: string, data: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Whether a process runs. A zombie (killed, not yet reaped by its parent) does not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return true; // no procfs: trust the signal check
  }
}

/**
 * The pid in `<workdir>/worker.pid` when that process is a live skybatch worker of that
 * folder (its command line says so), not a later process that was given a dead worker's pid.
 */
export function liveWorkerPid(workdir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(workdir, 'worker.pid'), 'utf8'));
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return isAlive(pid) && args.some((a) => /worker[\\/]main\.[cm]?[jt]s$/.test(a)) && args.includes(workdir) ? pid : undefined;
  } catch {
    return undefined; // no pid file, or that process is gone
  }
}

/**
 * Whether `pid` is a live coordinator of `pool` (its command line says so), not some later
 * process that was given the pid of a coordinator that died. Without procfs: whether it runs.
 */
export function isCoordinatorOf(pid: number, pool: string): boolean {
  if (!isAlive(pid)) return false;
  let args: string[];
  try {
    args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return !fs.existsSync('/proc/self');
  }
  const i = args.indexOf('--pool');
  return args.some((a) => /coordinator[\\/]main\.[cm]?[jt]s$/.test(a)) && i >= 0 && args[i + 1] === pool;
}

/** The running coordinator of a pool, or undefined when none runs. */
export function readCoordinator(pool: string): (CoordinatorInfo & { token: string }) | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(poolDir(pool), 'coordinator.json'), 'utf8')) as CoordinatorInfo;
    if (!isCoordinatorOf(info.pid, pool)) return undefined;
    const token = fs.readFileSync(path.join(poolDir(pool), 'token'), 'utf8').trim();
    return { ...info, token };
  } catch {
    return undefined;
  }
}

/**
 * How a client reaches a pool: `SKYBATCH_COORDINATOR_URL` + `SKYBATCH_TOKEN` (and
 * `SKYBATCH_CA`, a PEM file, for a wss:// coordinator with a private CA) for a remote
 * coordinator, else the local state folder.
 */
export function locatePool(pool: string): { url: string; token: string; ca?: string } {
  if (process.env.SKYBATCH_COORDINATOR_URL && process.env.SKYBATCH_TOKEN) {
    return { url: process.env.SKYBATCH_COORDINATOR_URL, token: process.env.SKYBATCH_TOKEN, ca: process.env.SKYBATCH_CA };
  }
  assertPoolName(pool);
  const c = readCoordinator(pool);
  if (!c) {
    throw new SkybatchError('SKYBATCH_E_POOL_NOT_FOUND', `pool '${pool}' is not running: start it with \`skybatch pool apply pool.yaml --pool ${pool} -y\``, {
      context: { field: 'poolName' },
    });
  }
  return c;
}

export function listPools(): string[] {
  try {
    return fs.readdirSync(path.join(skybatchHome(), 'pools')).sort();
  } catch {
    return [];
  }
}

/**
 * The lock that serialises starting, changing and stopping one pool (`pool apply`,
 * `pool down`): `pools/<name>/pool.lock`.
 */
export function poolLockFile(pool: string): string {
  return path.join(poolDir(pool), 'pool.lock');
}
