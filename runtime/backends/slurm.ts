import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PoolConfig } from '../pool-config.js';
import type { BackendWorkerSummary } from '../protocol.js';
import { EngineRecord, onceInFlight, restartDelayMs, WorkerBackend } from './backend.js';
import { packRuntimeOffThread } from './package-pack.js';
import { type RuntimePack, UNPACK_SCRIPT } from './runtime-pack.js';
import { CommandResult, commandError, END_WAIT_MS, readJobsFile, SLURM_JOBS_FILE, slurmCommand as run, SqueueReader } from './slurm-client.js';
import { batchScript, hasEnded, parseLaunch, resourceOptions, SlurmJob } from './slurm-command.js';

/** The worker's exit code when the coordinator refused its token (worker/agent.ts). */
const EXIT_AUTH_REFUSED = 2;
/** A job whose worker ran this long before it ended is submitted again without a growing backoff. */
const HEALTHY_RUN_MS = 10_000;
const POLL_MS = 1000;

export interface SlurmBackendOptions {
  pool: string;
  /** The coordinator's pool folder (its record of submitted jobs). */
  poolDir: string;
  config: () => PoolConfig;
  /** The URL workers on the nodes dial. */
  url: () => string;
  token: string;
  /** PEM the workers pin for a wss:// coordinator. */
  caPem?: string;
  log: (line: string) => void;
  pollMs?: number;
  /** Longest wait between two submissions of a worker whose jobs keep failing (default 30 s). */
  maxBackoffMs?: number;
}

interface Slot {
  index: number;
  name: string;
  engine: EngineRecord;
  /** Its current Slurm job; a worker from any other job is refused. */
  jobId?: string;
  /** The newest run of that job seen (Slurm runs a requeued job again under the same id). */
  run: number;
  submitting?: Promise<void>;
  timer?: NodeJS.Timeout;
  stopping: boolean;
  /** When squeue first showed its job running. */
  runningSince?: number;
  node?: string;
}


/**
 * Workers as Slurm jobs, one `sbatch` per worker, each running `skybatch worker` from a
 * runtime on `pool.shared_fs` (the coordinator's own, copied there once per content hash,
 * or `slurm.runtime`), with a job's packages unpacked there too when its project is
 * elsewhere (`shipPackages`). `resources` become `--gres=gpu[:TYPE]:N`, `--cpus-per-task`, `--mem`;
 * Slurm places the job and sets `CUDA_VISIBLE_DEVICES`. What each worker is doing comes
 * from `squeue --json` every second: a pending job shows Slurm's reason (`Resources`,
 * `Priority`), and a job that ended, however (scancel, time limit, node failure, a crash),
 * is submitted again with backoff while the pool wants it. Jobs are submitted
 * `--no-requeue`, and each worker says which job and which run of it it is (`--launch
 * JOBID.RUN`), so a copy Slurm lost track of (a node cut off, then back) is refused: only
 * the slot's current job, at its newest run, is admitted.
 */
export class SlurmBackend implements WorkerBackend {
  readonly kind = 'slurm';
  readonly remote = true;
  private readonly slots = new Map<number, Slot>();
  /** Jobs a previous coordinator of this pool submitted, by slot: adopted, or cancelled after the first poll. */
  private readonly leftover = new Map<number, string>();
  private readonly shared: string;
  private runtime?: Promise<string>;
  /** Packages being unpacked onto the shared file system, by hash. */
  private readonly packagesShipped = new Map<string, Promise<void>>();
  private poller?: NodeJS.Timeout;
  private polling = false;
  private readonly queue: SqueueReader;
  private closed = false;

  constructor(private readonly opts: SlurmBackendOptions) {
    this.queue = new SqueueReader(opts.log);
    const config = opts.config();
    this.shared = path.join(config.pool.shared_fs!, '.skybatch', 'pools', opts.pool);
    fs.mkdirSync(path.join(this.shared, 'logs'), { recursive: true, mode: 0o700 });
    fs.chmodSync(this.shared, 0o700);
    fs.writeFileSync(path.join(this.shared, 'token'), opts.token, { mode: 0o600 });
    if (opts.caPem) fs.writeFileSync(path.join(this.shared, 'ca.pem'), opts.caPem);
    else fs.rmSync(path.join(this.shared, 'ca.pem'), { force: true });
    for (const [i, id] of Object.entries(readJobsFile(opts.poolDir))) this.leftover.set(Number(i), id);
  }

  startWorkers(count: number): string[] {
    const names: string[] = [];
    for (let i = 0; names.length < count; i++) {
      if (this.slots.has(i)) continue;
      const slot: Slot = { index: i, name: `slurm-${i}`, engine: new EngineRecord(), run: 0, stopping: false };
      this.slots.set(i, slot);
      const earlier = this.leftover.get(i);
      if (earlier) {
        // decided at the next poll: still queued or running, it stays this slot's job
        this.leftover.delete(i);
        slot.jobId = earlier;
        slot.engine.set('starting', `Slurm job ${earlier}, submitted by this pool's previous coordinator`);
        this.opts.log(`worker ${slot.name}: adopting Slurm job ${earlier} left by the previous coordinator`);
      } else {
        this.submit(slot);
      }
      names.push(slot.name);
    }
    this.poller ??= setInterval(() => void this.poll(), this.opts.pollMs ?? POLL_MS);
    return names;
  }

  workers(): BackendWorkerSummary[] {
    return [...this.slots.values()].sort((a, b) => a.index - b.index).map((s) => s.engine.summary(s.name, s.node ?? 'slurm'));
  }

  admit(name: string, launch: string | undefined): string | undefined {
    if (launch === undefined) return undefined; // started by hand: not this backend's business
    const slot = [...this.slots.values()].find((s) => s.name === name);
    if (!slot) return `this pool's slurm backend runs no worker ${name} now (it is left from an earlier job)`;
    const l = parseLaunch(launch);
    if (!l) return `its launch id ${launch} is not a Slurm job's (JOBID.RUN)`;
    if (l.jobId !== slot.jobId) return `it runs in Slurm job ${l.jobId}, and ${name}'s job is ${slot.jobId ?? 'being submitted again'} (Slurm ended or lost that job, and its replacement was submitted)`;
    if (l.run < slot.run) return `it is run ${l.run} of Slurm job ${l.jobId}, which Slurm requeued: run ${slot.run} is the current one`;
    slot.run = l.run;
    return undefined;
  }

  async stopWorker(name: string): Promise<void> {
    const slot = [...this.slots.values()].find((s) => s.name === name);
    if (!slot) return;
    await this.stopSlots([slot]);
    this.slots.delete(slot.index);
    this.saveJobs();
  }

  async teardown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    const slots = [...this.slots.values()];
    this.slots.clear();
    const leftover = [...this.leftover.values()];
    this.leftover.clear();
    await this.stopSlots(slots, leftover);
    fs.rmSync(path.join(this.opts.poolDir, SLURM_JOBS_FILE), { force: true });
    fs.rmSync(path.join(this.shared, 'token'), { force: true });
  }

  /** scancel, then wait until squeue shows every job ended (scancel only asks; a job may take seconds to go). */
  private async stopSlots(slots: Slot[], more: string[] = []): Promise<void> {
    for (const s of slots) {
      s.stopping = true;
      if (s.timer) clearTimeout(s.timer);
    }
    await Promise.all(slots.map((s) => s.submitting));
    const ids = [...slots.flatMap((s) => (s.jobId ? [s.jobId] : [])), ...more];
    for (const s of slots) s.engine.set('gone', 'stopped');
    const live = await this.queue.cancel(ids);
    if (live.length) this.opts.log(`Slurm job(s) ${live.join(', ')} still listed by squeue ${END_WAIT_MS / 1000} s after scancel`);
  }

  /** The runtime folder the nodes run: `slurm.runtime`, or the coordinator's own, unpacked once onto the shared file system. */
  private ensureRuntime(): Promise<string> {
    const given = this.opts.config().slurm?.runtime;
    if (given) return Promise.resolve(given);
    this.runtime ??= packRuntimeOffThread().then((pack) => this.unpackShared('runtime', pack, 'the skybatch runtime'));
    this.runtime.catch(() => (this.runtime = undefined));
    return this.runtime;
  }

  /**
   * Puts a job's packages where every node sees them, `pool.shared_fs/.skybatch/packages/HASH`
   * (the nodes cannot see a project outside `pool.shared_fs`): once per hash, however many
   * workers ask at once. A worker asks only when the folder is not there.
   */
  shipPackages(name: string, pack: RuntimePack): Promise<void> {
    if (![...this.slots.values()].some((s) => s.name === name)) return Promise.reject(new Error(`this pool's slurm backend runs no worker ${name}`));
    return onceInFlight(this.packagesShipped, pack.hash, () => this.unpackShared('packages', pack, "the job's packages").then(() => undefined));
  }

  /** `pool.shared_fs/.skybatch/<into>`: what the coordinator unpacks for the nodes. */
  private sharedDir(into: 'runtime' | 'packages'): string {
    return path.join(this.opts.config().pool.shared_fs!, '.skybatch', into);
  }

  /**
   * Unpacks `pack` into `sharedDir(into)/HASH` unless it is there; its folder. Nothing old is
   * removed there: the nodes' processes, which a folder in use would show, are not visible from
   * the coordinator.
   */
  private async unpackShared(into: 'runtime' | 'packages', pack: RuntimePack, what: string): Promise<string> {
    const root = this.sharedDir(into);
    const dir = path.join(root, pack.hash);
    if (fs.existsSync(path.join(dir, '.complete'))) return dir;
    fs.mkdirSync(root, { recursive: true });
    const t0 = Date.now();
    const r = await new Promise<CommandResult>((resolve) => {
      const proc = spawn(process.execPath, ['-e', UNPACK_SCRIPT, root, pack.hash], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stderr = '';
      proc.stderr.on('data', (d) => (stderr += d));
      proc.stdin.on('error', () => {});
      fs.createReadStream(pack.file).pipe(proc.stdin);
      proc.on('error', (error) => resolve({ code: null, stdout: '', stderr, error }));
      proc.on('close', (code) => resolve({ code, stdout: '', stderr }));
    });
    if (r.code !== 0) throw new Error(`cannot copy ${what} to ${root}: ${commandError(r)}`);
    this.opts.log(`copied ${what} ${pack.hash.slice(0, 12)} (${pack.files} files) to ${dir} in ${Date.now() - t0} ms`);
    return dir;
  }

  private submit(slot: Slot): void {
    if (slot.stopping || this.closed) return;
    slot.jobId = undefined;
    slot.run = 0;
    slot.runningSince = undefined;
    slot.node = undefined;
    slot.engine.set('starting', 'submitting its Slurm job');
    const config = this.opts.config();
    const job = (async () => {
      const runtime = await this.ensureRuntime();
      const script = batchScript({
        pool: this.opts.pool,
        name: slot.name,
        runtime,
        packages: this.sharedDir('packages'),
        secrets: this.shared,
        url: this.opts.url(),
        node: config.slurm?.node,
        workdir: config.slurm?.workdir,
      });
      const args = [
        '--parsable',
        `--job-name=sky-${this.opts.pool}-${slot.name}`,
        `--output=${path.join(this.shared, 'logs', `${slot.name}-%j.out`)}`,
        `--chdir=${this.shared}`,
        // a node Slurm loses is not run again behind the coordinator's back: the job ends, and the slot gets a new one
        '--no-requeue',
        ...resourceOptions(config),
      ];
      const r = await run('sbatch', args, script);
      const id = /^(\d+)/.exec(r.stdout.trim())?.[1];
      if (r.code !== 0 || !id) throw new Error(`sbatch failed: ${commandError(r)}`);
      if (slot.stopping || this.closed) {
        await run('scancel', [id]);
        return;
      }
      slot.jobId = id;
      slot.engine.set('pending', `Slurm job ${id} submitted`);
      this.saveJobs();
      this.opts.log(`worker ${slot.name}: submitted Slurm job ${id} (sbatch ${args.slice(4).join(' ')})`);
    })();
    const submitting = job.then(
      () => undefined,
      (err: Error) => this.retryLater(slot, err.message),
    );
    slot.submitting = submitting;
    void submitting.finally(() => slot.submitting === submitting && (slot.submitting = undefined));
  }

  private retryLater(slot: Slot, why: string): void {
    if (slot.stopping || this.closed) return;
    slot.engine.failures++;
    const delay = restartDelayMs(slot.engine.failures, this.opts.maxBackoffMs);
    slot.engine.set('pending', `${why}; submitting again in ${Math.round(delay / 1000)} s`);
    this.opts.log(`worker ${slot.name}: ${why}; submitting again in ${Math.round(delay / 1000)} s`);
    slot.timer = setTimeout(() => this.submit(slot), delay);
  }

  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      // only jobs known before squeue ran are judged by its answer (one submitted meanwhile is not in it)
      const asked = [...this.slots.values()].flatMap((s) => (s.jobId && !s.stopping ? [[s, s.jobId] as const] : []));
      if (!asked.length && !this.leftover.size) return;
      const jobs = await this.queue.jobs();
      if (!jobs || this.closed) return;
      const byId = new Map(jobs.map((j) => [j.id, j]));
      for (const [slot, id] of asked) {
        if (slot.jobId !== id || slot.stopping || this.slots.get(slot.index) !== slot) continue;
        this.observe(slot, id, byId.get(id));
      }
      if (this.leftover.size) {
        const stale = [...this.leftover.values()].filter((id) => byId.has(id) && !hasEnded(byId.get(id)!));
        this.leftover.clear();
        if (stale.length) {
          this.opts.log(`cancelling Slurm job(s) ${stale.join(', ')} left by the previous coordinator for workers this pool no longer has`);
          await run('scancel', stale);
        }
        this.saveJobs();
      }
    } finally {
      this.polling = false;
    }
  }

  private observe(slot: Slot, id: string, job: SlurmJob | undefined): void {
    if (!job || hasEnded(job)) return this.ended(slot, id, job);
    if (job.restarts > slot.run) slot.run = job.restarts;
    if (job.state === 'RUNNING' || job.state === 'COMPLETING') {
      if (slot.runningSince === undefined) {
        slot.runningSince = Date.now();
        this.opts.log(`worker ${slot.name}: Slurm job ${id} runs on ${job.nodes ?? '?'}`);
      }
      slot.node = job.nodes;
      slot.engine.set('running', `Slurm job ${id} ${job.state}`);
    } else if (job.state === 'CONFIGURING') {
      slot.node = job.nodes;
      slot.engine.set('starting', `Slurm job ${id} is CONFIGURING on ${job.nodes ?? '?'}`);
    } else if (job.state === 'PENDING') {
      slot.engine.set('pending', `Slurm job ${id} is PENDING${job.reason ? `: ${job.reason}` : ''}`);
    } else {
      slot.engine.set('pending', `Slurm job ${id} is ${job.state}${job.reason ? `: ${job.reason}` : ''}`);
    }
  }

  /** Its job ended (or squeue forgot it): submit a new one, unless the worker's token was refused. */
  private ended(slot: Slot, id: string, job: SlurmJob | undefined): void {
    const how = job
      ? `${job.state}${job.exitCode !== undefined ? `, exit ${job.exitCode}` : ''}${job.signal ? `, signal ${job.signal}` : ''}${job.reason && job.reason !== 'NonZeroExitCode' ? `, ${job.reason}` : ''}`
      : 'and squeue no longer lists it';
    const tail = this.logTail(slot, id);
    const why = `Slurm job ${id} ended (${how})${tail ? `: ${tail}` : ''}`;
    slot.jobId = undefined;
    this.saveJobs();
    if (job?.exitCode === EXIT_AUTH_REFUSED) {
      slot.engine.set('gone', `${why}: the coordinator refused its token`);
      this.opts.log(`worker ${slot.name}: ${why}: the coordinator refused its token; not submitting it again`);
      return;
    }
    if (slot.runningSince !== undefined && Date.now() - slot.runningSince > HEALTHY_RUN_MS) slot.engine.failures = 0;
    this.retryLater(slot, why);
  }

  /** The last line the job wrote, which usually says why it ended. */
  private logTail(slot: Slot, id: string): string | undefined {
    try {
      const text = fs.readFileSync(path.join(this.shared, 'logs', `${slot.name}-${id}.out`), 'utf8');
      return text.trim().split('\n').filter(Boolean).at(-1)?.trim().slice(0, 300);
    } catch {
      return undefined;
    }
  }

  private saveJobs(): void {
    const jobs: Record<string, string> = {};
    for (const s of this.slots.values()) if (s.jobId) jobs[s.index] = s.jobId;
    for (const [i, id] of this.leftover) jobs[i] ??= id;
    fs.writeFileSync(path.join(this.opts.poolDir, SLURM_JOBS_FILE), JSON.stringify(jobs));
  }
}


