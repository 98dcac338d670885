import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkybatchError } from '../../formats/common/errors.js';
import { CoordinatorClient } from '../client/connection.js';
import { buildId } from '../build-id.js';
import { listJobIds, readJournal, readSpec } from '../store/job-store.js';
import { cancelJobsOnDisk } from '../coordinator/pool-down.js';
import { probeHost } from '../host-resources.js';
import { PoolConfig, autoscaleOf, minWorkers, readPoolConfig } from '../pool-config.js';
import { planHostWorkers } from '../backends/host-placement.js';
import { listenAddress } from '../backends/make-backend.js';
import { cancelLeftoverSlurmJobs } from '../backends/slurm-client.js';
import { slurmOptionProblems } from '../backends/slurm-command.js';
import { FileLock } from '../file-lock.js';
import { assertPoolName, isAlive, isCoordinatorOf, listPools, liveWorkerPid, poolDir, poolLockFile, readCoordinator, writePrivate } from '../store/pool-store.js';
import type { BackendWorkerSummary, JobEvent, PoolSummary } from '../protocol.js';
import { LocalPlan, planLocalWorkers } from '../worker-placement.js';
import { COORDINATOR_ENV, COORDINATOR_NODE_FLAGS } from '../coordinator/node-flags.js';

/**
 * What can be done to pools, for the CLI (`skybatch pool …`) and the extension alike: they
 * parse arguments, ask and print; this acts. Failures are SkybatchErrors with their codes.
 */

const COORDINATOR_MAIN = fileURLToPath(new URL('../coordinator/main.js', import.meta.url));
const START_TIMEOUT_MS = 15_000;
/** Longer than a coordinator start or stop under the lock takes, even on a loaded machine. */
const LOCK_TIMEOUT_MS = 60_000;
/** `pool apply` stops waiting for workers whose every launch failed this many times in a row. */
const APPLY_GIVES_UP_AFTER = 3;

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new SkybatchError('SKYBATCH_E_PROTOCOL', `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Whether a coordinator of `pool` runs on this machine. */
export function poolRunning(pool: string): boolean {
  return !!readCoordinator(pool);
}

export { listPools };

/** Asks the user before a change; resolves false to abort. The CLI asks on its TTY (or not, with `-y`). */
export type Confirm = (question: string) => Promise<boolean>;

/**
 * `skybatch pool apply`: validates the pool file, starts the pool's coordinator (or
 * resizes a running one) and waits until every worker has run its setup.
 */
export async function applyPool(file: string, pool: string, opts: { confirm?: Confirm; wait: boolean; log: (l: string) => void }): Promise<PoolSummary> {
  assertPoolName(pool);
  // The local backend runs on this machine: a pool that cannot get its GPUs here is refused
  // now; an ssh pool, one whose workers fit on no host.
  let plan: LocalPlan | undefined;
  // (Slurm itself judges a Slurm pool's resources, at sbatch)
  const config = readPoolConfig(file, (c) =>
    c.pool.backend === 'ssh' ? planHostWorkers(c).problems : c.pool.backend === 'slurm' ? slurmOptionProblems(c) : (plan = planLocalWorkers(c, probeHost(c.host))).problems,
  );
  for (const note of plan?.notes ?? []) opts.log(`note: ${note}`);
  if (config.pool.backend === 'ssh' || config.pool.backend === 'slurm') await listenAddress(config);
  const running = readCoordinator(pool);
  if (running) assertSameBackend(pool, config);
  if (running?.build && running.build !== buildId()) {
    opts.log(`note: pool '${pool}' runs skybatch ${running.build} but this is ${buildId()}; run \`skybatch pool down ${pool} -y\` and apply again to upgrade its workers`);
  }
  const verb = running ? `Update pool '${pool}' to` : `Start pool '${pool}' with`;
  const where =
    config.pool.backend === 'ssh'
      ? `worker(s) on ${config.hosts!.length} ssh host(s)`
      : config.pool.backend === 'slurm'
        ? `worker(s) as Slurm jobs${config.slurm?.partition ? ` in partition ${config.slurm.partition}` : ''}`
        : 'local worker(s)';
  const range = autoscaleOf(config);
  const count = range ? `${range.min}–${range.max} (autoscaled)` : String(config.pool.workers);
  if (opts.confirm && !(await opts.confirm(`${verb} ${count} ${where}?`))) throw new SkybatchError('SKYBATCH_E_CANCELLED', 'aborted');
  const dir = poolDir(pool);
  // Under the pool's lock, so two applies (or an apply and a down) never both find no
  // coordinator and start one each: the second waits here, then updates the one that runs.
  const lock = await FileLock.acquire(poolLockFile(pool), `skybatch pool apply (pool ${pool})`, {
    timeoutMs: LOCK_TIMEOUT_MS,
    onWait: (h) => opts.log(`pool '${pool}' is being changed by ${h.what} (pid ${h.pid}); waiting for it`),
  });
  let attached: boolean;
  try {
    const now = readCoordinator(pool);
    attached = !!now;
    if (now && !running) opts.log(`note: pool '${pool}' was started meanwhile (coordinator pid ${now.pid}); updating it`);
    writePrivate(path.join(dir, 'pool.json'), JSON.stringify(config, null, 1));
    if (!now) await startCoordinator(pool, dir);
  } finally {
    lock.release();
  }
  const client = await CoordinatorClient.forPool(pool);
  try {
    const shown = new Set<string>();
    client.onEvent((e: JobEvent) => {
      if (e.kind !== 'log' || e.jobId) return;
      // setup output, setup failures, and what the coordinator did about a changed setup
      if (e.line.startsWith('setup: ') || e.stream === 'stderr' || (e.stream === 'info' && !e.worker)) {
        shown.add(e.line);
        opts.log(e.worker ? `(${e.worker}) ${e.line}` : e.line);
      }
    });
    // subscribed first, so that what a changed setup does is shown
    let status = await client.request({ type: 'subscribe' });
    if (attached) status = await client.request({ type: 'scale', workers: config.pool.workers });
    if (!opts.wait) return status;
    const told = new Map<string, string>();
    for (;;) {
      const live = status.workers.filter((w) => w.state !== 'gone');
      const failed = live.filter((w) => w.state === 'failed');
      // reported once every worker's setup has ended, so that all failures are named
      if (failed.length && live.every((w) => w.state !== 'setup' && w.state !== 'starting')) {
        const errors = failed.filter((w) => w.error && !shown.has(w.error)).map((w) => `\n${w.error}`);
        throw new SkybatchError(
          'SKYBATCH_E_SETUP_FAILED',
          `setup failed on ${failed.map((w) => w.name).sort().join(', ')}${errors.length ? ':' : ' (see the output above)'}; the pool is up but those workers take no batches. Fix setup and apply again.${errors.join('')}`,
        );
      }
      const ready = live.filter((w) => w.state === 'idle' || w.state === 'busy');
      // an autoscaled pool is up with its min workers; it grows when jobs come
      if (ready.length >= minWorkers(config)) return status;
      const stuck = engineTrouble(status, told, opts.log);
      if (stuck) throw stuck;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 250);
        const off = client.onEvent((e) => {
          if (e.kind === 'worker') {
            clearTimeout(t);
            off();
            resolve();
          }
        });
      });
      status = await client.request({ type: 'status' });
    }
  } finally {
    client.close();
  }
}

/**
 * Says what the backend's engine reports for workers not up yet (once per new reason), and
 * the error to stop waiting with when every one of them is gone or keeps failing to start:
 * the pool stays up and keeps retrying them.
 */
function engineTrouble(status: PoolSummary, told: Map<string, string>, log: (line: string) => void): SkybatchError | undefined {
  const up = new Set(status.workers.filter((w) => w.state === 'idle' || w.state === 'busy').map((w) => w.name));
  const waiting = (status.backend?.workers ?? []).filter((w) => !up.has(w.name));
  for (const w of waiting) {
    if (!w.reason || (w.state !== 'pending' && w.state !== 'gone') || told.get(w.name) === w.reason) continue;
    told.set(w.name, w.reason);
    log(`note: worker ${w.name} on ${w.host}: ${w.state}: ${w.reason}`);
  }
  const hopeless = (w: BackendWorkerSummary) => w.state === 'gone' || (w.state === 'pending' && w.failures >= APPLY_GIVES_UP_AFTER);
  if (!waiting.length || !waiting.every(hopeless)) return undefined;
  const ready = status.workers.filter((w) => up.has(w.name)).length;
  return new SkybatchError(
    'SKYBATCH_E_HOST_UNREACHABLE',
    `pool '${status.pool}' is up with ${ready}/${status.workersWanted} workers; these cannot start:\n${waiting.map((w) => `  ${w.name} on ${w.host}: ${w.reason ?? w.state}`).join('\n')}\nThe coordinator keeps retrying them (\`skybatch pool status ${status.pool}\` shows why); fix the cause, or apply again to retry at once.`,
  );
}

/** What a running coordinator was started with and cannot change by itself: where and how it runs workers. */
function assertSameBackend(pool: string, next: PoolConfig): void {
  let current: PoolConfig;
  try {
    current = JSON.parse(fs.readFileSync(path.join(poolDir(pool), 'pool.json'), 'utf8')) as PoolConfig;
  } catch {
    return;
  }
  const key = (c: PoolConfig) => JSON.stringify([c.pool.backend ?? 'local', c.pool.shared_fs, c.hosts, c.ssh, c.slurm, c.coordinator]);
  if (key(current) === key(next)) return;
  throw new SkybatchError(
    'SKYBATCH_E_POOL_CONFIG',
    `pool '${pool}' runs with other backend settings (pool.backend, pool.shared_fs, hosts, ssh, slurm or coordinator changed); a running pool cannot switch them: run \`skybatch pool down ${pool} -y\`, then apply again`,
    { context: { field: 'pool.backend' } },
  );
}

export async function poolStatus(pool?: string): Promise<{ pool: string; running: boolean; status?: PoolSummary }[]> {
  const names = pool ? [pool] : listPools();
  const out: { pool: string; running: boolean; status?: PoolSummary }[] = [];
  for (const name of names) {
    if (!readCoordinator(name)) {
      if (pool && !fs.existsSync(poolDir(name))) throw new SkybatchError('SKYBATCH_E_POOL_NOT_FOUND', `pool '${name}' does not exist`);
      out.push({ pool: name, running: false });
      continue;
    }
    const client = await CoordinatorClient.forPool(name);
    try {
      out.push({ pool: name, running: true, status: await client.request({ type: 'status' }) });
    } finally {
      client.close();
    }
  }
  return out;
}

/**
 * `skybatch pool down`: stops the coordinator and its workers, and removes the pool's folder.
 * Jobs' records stay; jobs still running end CANCELLED (see `cancelForPoolDown`).
 */
export async function poolDown(pool: string, opts: { confirm?: Confirm; log?: (line: string) => void }): Promise<boolean> {
  assertPoolName(pool);
  const notFound = () => new SkybatchError('SKYBATCH_E_POOL_NOT_FOUND', `pool '${pool}' does not exist`);
  if (!readCoordinator(pool) && !fs.existsSync(poolDir(pool))) throw notFound();
  if (opts.confirm && !(await opts.confirm(`Tear down pool '${pool}'?`))) return false;
  // An apply that is starting the coordinator finishes first, so there is no coordinator
  // coming up behind our back while its folder goes away. A `pool down` that removed the
  // folder while we waited leaves nothing to do: the pool does not exist.
  const lock = await FileLock.acquire(poolLockFile(pool), `skybatch pool down (pool ${pool})`, {
    timeoutMs: LOCK_TIMEOUT_MS,
    onWait: (h) => opts.log?.(`pool '${pool}' is being changed by ${h.what} (pid ${h.pid}); waiting for it`),
    folderGone: notFound,
  });
  try {
    const unfinished = unfinishedJobs(pool);
    const c = readCoordinator(pool);
    if (c) await stopCoordinator(pool, c);
    stopLeftoverWorkers(pool);
    const jobs = await cancelLeftoverSlurmJobs(poolDir(pool));
    if (jobs.length) opts.log?.(`cancelled Slurm job(s) ${jobs.join(', ')} left by the pool's coordinator`);
    // the coordinator cancels its jobs itself; these were left by one that had died or did not answer
    cancelJobsOnDisk(pool);
    for (const id of unfinished) {
      const { status, error } = readJournal(id);
      if (status === 'CANCELLED') opts.log?.(`job ${id}: ${error?.message ?? 'CANCELLED'}`);
    }
    // retries: a `pool down` waiting on the lock writes a file beside it for an instant
    fs.rmSync(poolDir(pool), { recursive: true, force: true, maxRetries: 3 });
  } finally {
    lock.release();
  }
  return true;
}

function unfinishedJobs(pool: string): string[] {
  return listJobIds().filter((id) => {
    try {
      return readSpec(id).pool === pool && ['PENDING', 'RUNNING'].includes(readJournal(id).status);
    } catch {
      return false;
    }
  });
}

/** Starts the pool's coordinator and waits until it has written coordinator.json. Called under the pool lock. */
async function startCoordinator(pool: string, dir: string): Promise<void> {
  const logFile = path.join(dir, 'coordinator.log');
  const out = fs.openSync(logFile, 'a', 0o600);
  const proc = spawn(process.execPath, [...COORDINATOR_NODE_FLAGS, COORDINATOR_MAIN, '--pool', pool], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...COORDINATOR_ENV } });
  fs.closeSync(out);
  proc.unref();
  await waitFor(
    `the coordinator of pool ${pool} to start (log: ${logFile})`,
    () => {
      if (!isAlive(proc.pid!)) throw new SkybatchError('SKYBATCH_E_PROTOCOL', `the coordinator of pool ${pool} exited at start:\n${tail(logFile)}`);
      const c = readCoordinator(pool);
      return c && c.pid === proc.pid ? c : undefined;
    },
    START_TIMEOUT_MS,
  );
}

/**
 * Stops the coordinator that runs: the one coordinator.json names (its pid checked to be a
 * coordinator of this pool) and the one that answers at its URL, should they differ.
 * Politely first (it stops its workers), then SIGTERM, then SIGKILL.
 */
async function stopCoordinator(pool: string, c: { pid: number; url: string; token: string; ca?: string }): Promise<void> {
  const pids = new Set([c.pid]);
  let asked = false;
  try {
    const client = await CoordinatorClient.connect(c.url, c.token, c.ca);
    try {
      const s = await client.request({ type: 'status' });
      if (isCoordinatorOf(s.pid, pool)) pids.add(s.pid);
      await client.request({ type: 'shutdown' });
      asked = true;
    } finally {
      client.close();
    }
  } catch {
    // not answering: signals below
  }
  const live = () => [...pids].filter((p) => isCoordinatorOf(p, pool));
  if (!asked) for (const p of live()) signal(p, 'SIGTERM');
  await waitFor(`pool ${pool}'s coordinator to stop`, () => (live().length ? undefined : true), 15_000).catch(() => {
    for (const p of live()) signal(p, 'SIGKILL');
  });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // exited meanwhile
  }
}

/** Local workers still running after their coordinator is gone (it was killed, or died before): SIGKILL, by their pid files. */
function stopLeftoverWorkers(pool: string): void {
  const root = path.join(poolDir(pool), 'workers');
  let dirs: string[];
  try {
    dirs = fs.readdirSync(root);
  } catch {
    return;
  }
  for (const d of dirs) {
    const pid = liveWorkerPid(path.join(root, d));
    if (pid !== undefined) signal(pid, 'SIGKILL');
  }
}
