import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkybatchError, toWireError } from '../../formats/common/errors.js';
import { buildId } from '../build-id.js';
import { forEachLine } from '../lines.js';
import { checkFrame, mapperToAgent } from '../protocol-guards.js';
import type { BatchAssignment, BatchReportItem, JobSpec, WorkerMessage } from '../protocol.js';
import type { BundleCache } from './bundle-cache.js';
import type { PackageFolder } from './package-folder.js';
import type { AgentToMapper, MapperToAgent } from './mapper-ipc.js';
import { batchedSender, eachMessage } from './ipc-batch.js';
import { canWatchMemory, capMemory, killTree } from './memory-watch.js';
import { WarmMapper, stopPinging, terminate, untilIdle } from './warm-mapper.js';
import { mapperEnv, processKey } from './mapper-env.js';
import { HOLD_YOUNG_GENERATION } from './young-generation.js';

const MAPPER_PROCESS = fileURLToPath(new URL('./mapper-process.js', import.meta.url));
const END_GRACE_MS = 30_000;
const BUILD = buildId();

export { DEVICE_ENV, withoutDeviceEnv } from './mapper-env.js';

/** One job's use of a mapper process on this worker. */
export interface MapperChild {
  jobId: string;
  inflight: Map<number, { attempt: number; started: boolean; start: number; end: number }>;
  /** The process running this job, once the job's bundle is here and it was spawned (or a warm one was handed the job). */
  host?: MapperProc;
  /** Settles once `host` runs the job, or once the child was given up before that. */
  spawned: Promise<void>;
  /** `spawned` settled: batches go to `host` at once, not a promise later. */
  settled: boolean;
  /** Stopped, exited or superseded: it takes no more batches. */
  gone: boolean;
  /** Whether its process ever took a batch of this job from load(). */
  tookBatch: boolean;
  /** It runs in a process an earlier job left warm. */
  reused: boolean;
}

/** A mapper process, which may run several jobs one after another (see `keyOf`). */
export interface MapperProc {
  proc: ChildProcess;
  /** Sends to `proc`, several messages per IPC write (see `batchedSender`). */
  send: (msg: AgentToMapper) => void;
  /** What a next job must match to run in it; undefined: never reused. */
  key?: string;
  /** The job it runs now; none while it waits as the warm process. */
  job?: MapperChild;
  stderrTail: string[];
  /** Set when the agent stopped it for using more than `resources.memoryMb`. */
  overMemoryMb?: number;
  /** After a `done` job's `end` with keep: true once it waits for a next job, false if it exited instead. */
  idle?: Promise<boolean>;
  settleIdle?: (ok: boolean) => void;
  /** While it waits as the warm process: the ping timer, and whether the last ping is unanswered. */
  pinger?: NodeJS.Timeout;
  unanswered?: boolean;
}

/** What the agent lends the supervisor: the connection, and what it knows of the worker and its job. */
export interface SupervisorPorts {
  workdir: string;
  worker: string;
  send: (msg: WorkerMessage) => void;
  /** Sends a report on one batch of job `jobId` (`send` of it with its job id, without building that message). */
  report: (jobId: string, item: BatchReportItem) => void;
  log: (line: string) => void;
  bundles: BundleCache;
  /** The host's folder of job packages, for jobs whose packages the coordinator ships (`JobSpec.packages`). */
  packages: PackageFolder;
  /** The mapper memory limit of this worker, if any (resources.memory). */
  memoryMb?: number;
  /** The pool's envs, and the GPUs this worker shows its processes. */
  setupEnv: () => Record<string, string>;
  deviceEnv: () => Record<string, string>;
  /** The job the agent runs now, if any. */
  currentJob: () => string | undefined;
  /** The job's mapper cannot start here (its bundle is unavailable, ...). */
  startFailed: (jobId: string, err: unknown) => void;
}

/**
 * The mapper process of the agent's current job: started for the job's first batch, handed
 * its batches, and when it goes away, its batches reported (a started one failed, the rest
 * given back). Decisions about it are synchronous, in message order.
 *
 * A process whose job ended `done`, whose mapper returned cleanly, stays warm: the next job
 * with the same bundle and process environment (`keyOf`) runs in it, so module state (a
 * loaded model) survives between jobs. Anything else ends it as before; a process that
 * crashed, was killed for memory or was aborted as hung has exited and is never reused.
 */
export class MapperSupervisor {
  /** The mapper process's use by the current job, which takes new batches. */
  private child?: MapperChild;
  /** The process a finished job left for the next one, and the warm processes it stopped. */
  private readonly warm: WarmMapper;

  constructor(private readonly ports: SupervisorPorts) {
    this.warm = new WarmMapper((line) => ports.log(line));
  }

  private keyOf(spec: JobSpec): string | undefined {
    return processKey(spec, this.envFor(spec, spec.packages?.hash), this.ports.memoryMb);
  }

  private envFor(spec: JobSpec, packages: string | undefined): NodeJS.ProcessEnv {
    return mapperEnv(spec, { setupEnv: this.ports.setupEnv(), deviceEnv: this.ports.deviceEnv(), worker: this.ports.worker, build: BUILD, packages });
  }

  /**
   * The agent was handed job `spec`. The current job's process, if it holds no batch (the
   * coordinator moved this worker to a job short of its share), returns from its job and may
   * stay warm, as at a job's end; one holding batches is stopped. The warm one stays only if
   * `spec` can run in it.
   */
  newJob(spec: JobSpec): void {
    if (this.child && this.child.jobId !== spec.jobId && this.child.inflight.size === 0) this.end('done');
    else this.kill('superseded by a new job', false);
    const warm = this.warm.host;
    if (warm && warm.key !== this.keyOf(spec)) {
      this.ports.log(`stopping the warm mapper process: job ${spec.jobId} has another bundle or environment`);
      this.warm.retire(warm);
    }
  }

  /**
   * Hands batches `list` of job `spec` (checked, and not to be changed) to the job's mapper
   * process, starting one when there is none. The list goes on as it came, in one message.
   */
  forward(spec: JobSpec, list: BatchAssignment[]): void {
    if (!this.child || this.child.gone) this.child = this.startChild(spec);
    const child = this.child;
    for (const b of list) child.inflight.set(b.index, { attempt: b.attempt, started: false, start: b.start, end: b.end });
    const fwd: AgentToMapper = { type: 'batches', batches: list };
    const hand = () => {
      // A child that went away meanwhile reports these batches with the rest of its batches.
      if (child.gone || !child.host?.proc.connected) return;
      child.host.send(fwd);
    };
    // Once it runs, in order: batches queued on `spawned` before went out when it settled.
    if (child.settled) hand();
    else void child.spawned.then(hand);
  }

  private startChild(spec: JobSpec): MapperChild {
    const child: MapperChild = { jobId: spec.jobId, inflight: new Map(), gone: false, tookBatch: false, reused: false, spawned: Promise.resolve(), settled: false };
    const key = this.keyOf(spec);
    const warm = key !== undefined && this.warm.host?.key === key ? this.warm.host : undefined;
    if (this.warm.host && !warm) this.warm.retire(this.warm.host);
    this.warm.host = undefined;
    const packages = spec.packages ? this.ports.packages.dir(spec.packages.hash) : Promise.resolve(undefined);
    // a fresh start waits for stopped warm processes; one that does not come back idle is stopped too
    const ready = warm ? untilIdle(warm).then((idle) => (idle ? true : (this.warm.retire(warm), this.warm.exited.then(() => false)))) : this.warm.exited.then(() => false);
    child.spawned = Promise.all([this.ports.bundles.path(spec.bundleHash), packages, ready]).then(
      ([bundlePath, packagesDir, idle]) => {
        const reusable = warm && idle && warm.proc.exitCode === null && warm.proc.signalCode === null && warm.proc.connected;
        if (child.gone) {
          if (warm) this.warm.retire(warm);
          this.settle(child, 'was stopped before it started', false);
        } else if (reusable) this.warm.reuse(warm, child, spec, bundlePath, this.cacheDir(spec));
        else {
          if (warm) this.warm.retire(warm);
          this.spawnMapper(child, spec, bundlePath, packagesDir, key);
        }
      },
      (err: unknown) => {
        child.gone = true;
        child.inflight.clear();
        if (warm) this.warm.retire(warm);
        if (this.child === child && this.ports.currentJob() === spec.jobId) {
          this.child = undefined;
          this.ports.startFailed(spec.jobId, err);
        }
      },
    );
    // registered first, so it runs before the batches waiting on `spawned`
    void child.spawned.then(() => (child.settled = true));
    return child;
  }

  private cacheDir(spec: JobSpec): string {
    const cacheDir = path.join(this.ports.workdir, '.skybatch-cache', spec.jobId);
    fs.mkdirSync(cacheDir, { recursive: true });
    return cacheDir;
  }

  private spawnMapper(child: MapperChild, spec: JobSpec, bundlePath: string, packagesDir: string | undefined, key: string | undefined): void {
    const cacheDir = this.cacheDir(spec);
    const env = this.envFor(spec, packagesDir);
    const memoryMb = this.ports.memoryMb;
    // V8's heap limit follows the worker's memory limit, so it collects garbage before the
    // agent would see the process over its limit; the agent's RSS poll is what enforces it.
    const nodeArgs = ['--enable-source-maps', ...HOLD_YOUNG_GENERATION, ...(memoryMb ? [`--max-old-space-size=${memoryMb}`] : []), MAPPER_PROCESS];
    const stdio: ('ignore' | 'pipe' | 'ipc')[] = ['ignore', 'pipe', 'pipe', 'ipc'];
    const proc = spec.activateEnv
      ? spawn('bash', ['-c', `${spec.activateEnv}\nexec "$0" "$@"`, process.execPath, ...nodeArgs], { cwd: this.ports.workdir, env, stdio })
      : spawn(process.execPath, nodeArgs, { cwd: this.ports.workdir, env, stdio });
    const host: MapperProc = {
      proc,
      key,
      job: child,
      stderrTail: [],
      send: batchedSender<AgentToMapper>(
        (m) => proc.connected && proc.send(m),
        // the process is going away: its exit hands its batches back (they are in inflight)
        (err) => this.ports.log(`messages of job ${host.job?.jobId ?? '(none)'} not handed to its mapper process: ${err.message}`),
      ),
    };
    child.host = host;
    if (memoryMb && canWatchMemory && proc.pid) {
      const stop = capMemory(proc.pid, memoryMb * 2 ** 20, (rss) => {
        host.overMemoryMb = Math.round(rss / 2 ** 20);
        this.ports.log(`mapper of job ${host.job?.jobId ?? '(none, warm)'} used ${host.overMemoryMb} MB, over its ${memoryMb} MB limit; stopped it`);
      });
      proc.once('exit', stop);
    }
    const relay = (stream: 'stdout' | 'stderr') => (line: string) => {
      if (stream === 'stderr') {
        host.stderrTail.push(line);
        if (host.stderrTail.length > 10) host.stderrTail.shift();
      }
      // a warm process between jobs has no job to log to: its lines go to the worker's log
      const jobId = host.job?.jobId;
      if (jobId) this.ports.send({ type: 'log', jobId, stream, line });
      else this.ports.log(`warm mapper process ${proc.pid} ${stream}: ${line}`);
    };
    forEachLine(proc.stdout, relay('stdout'));
    forEachLine(proc.stderr, relay('stderr'));
    proc.on('message', (raw: unknown) =>
      eachMessage(raw, (m) => {
        const checked = checkFrame(mapperToAgent, m, `the mapper process of job ${host.job?.jobId ?? '(none)'}`);
        if (checked.ok) this.onChildMessage(host, checked.msg);
        else this.ports.log(`ignored a message: ${checked.error.message}`);
      }),
    );
    proc.on('exit', (code, signal) => this.onChildExit(host, code, signal));
    proc.on('error', (err) => this.ports.log(`mapper process error: ${err.message}`));
    host.send({ type: 'start', spec, bundlePath, cacheDir });
  }

  private onChildMessage(host: MapperProc, m: MapperToAgent): void {
    if (m.type === 'idle') {
      // Its job's messages all came before this one: the process now belongs to no job.
      host.job = undefined;
      host.settleIdle?.(true);
      if (this.warm.host === host) this.warm.keepPinging(host);
      return;
    }
    if (m.type === 'pong') {
      host.unanswered = false;
      return;
    }
    const child = host.job;
    if (!child) return;
    const jobId = child.jobId;
    if (m.type === 'fatal') {
      this.ports.send({ type: 'jobFatal', jobId, error: m.error });
      return;
    }
    const entry = child.inflight.get(m.index);
    if (entry?.attempt !== m.attempt) return;
    if (m.type === 'batchStarted') entry.started = child.tookBatch = true;
    else child.inflight.delete(m.index);
    this.ports.report(jobId, m);
  }

  private onChildExit(host: MapperProc, code: number | null, signal: NodeJS.Signals | null): void {
    stopPinging(host);
    host.settleIdle?.(false);
    if (this.warm.host === host) this.warm.host = undefined;
    const child = host.job;
    host.job = undefined;
    if (!child) return;
    child.gone = true;
    if (this.child === child) this.child = undefined;
    const over = host.overMemoryMb;
    const limit = `the ${this.ports.memoryMb} MB the pool gives it (resources.memory); raise resources.memory or lower batchSize`;
    if (over !== undefined && !child.tookBatch && !child.reused && this.ports.currentJob() === child.jobId) {
      // Its one-time setup alone is too big: every retry would end the same way.
      const err = new SkybatchError('SKYBATCH_E_MEMORY_LIMIT', `job ${child.jobId}: the mapper process on worker ${this.ports.worker} used ${over} MB before taking its first batch, over ${limit}`, {
        context: { jobId: child.jobId, worker: this.ports.worker },
      });
      this.ports.send({ type: 'jobFatal', jobId: child.jobId, error: toWireError(err) });
      child.inflight.clear();
      return;
    }
    this.settle(child, signal ? `was killed by ${signal}` : `exited with code ${code}`, true, host.stderrTail, over === undefined ? undefined : (batch) => `used ${over} MB while holding batch [${batch[0]}, ${batch[1]}], over ${limit}`);
  }

  /**
   * Reports the batches a mapper process held when it went away: a started batch failed
   * (when `charge`), one it never took is given back without counting against it.
   */
  private settle(child: MapperChild, how: string, charge: boolean, stderrTail: string[] = [], overMemory?: (batch: [number, number]) => string): void {
    const tail = stderrTail.length ? `; last stderr:\n${stderrTail.join('\n')}` : '';
    for (const [index, { attempt, started, start, end }] of child.inflight) {
      if (!started || !charge) {
        this.ports.send({ type: 'batchReleased', jobId: child.jobId, index, attempt });
        continue;
      }
      const context = { jobId: child.jobId, batch: [start, end] as [number, number], worker: this.ports.worker, attempt };
      const err = overMemory
        ? new SkybatchError('SKYBATCH_E_MEMORY_LIMIT', `job ${child.jobId}: the mapper process on worker ${this.ports.worker} ${overMemory([start, end])}`, { retryable: true, context })
        : new SkybatchError('SKYBATCH_E_WORKER_LOST', `job ${child.jobId}: the mapper process on worker ${this.ports.worker} ${how} while holding this batch${tail}`, { retryable: true, context });
      this.ports.send({ type: 'batchFailed', jobId: child.jobId, index, attempt, error: toWireError(err) });
    }
    child.inflight.clear();
  }

  /**
   * The coordinator asks for a batch back that this worker's mapper has not started (another
   * worker has nothing to do): the mapper process drops it from its queue and says
   * `batchReleased`, or, having taken it meanwhile, runs it and reports it as usual.
   */
  release(jobId: string, index: number, attempt: number): void {
    const child = this.child;
    const entry = child?.inflight.get(index);
    if (!child || child.gone || child.jobId !== jobId || entry?.attempt !== attempt || entry.started) return;
    // not spawned yet: the batch is still on its way to the process, which reports it
    if (child.settled && child.host?.proc.connected) child.host.send({ type: 'release', index, attempt });
  }

  /**
   * The coordinator took a batch away (it timed out, a copy elsewhere won, or it waited too
   * long behind a mapper that does not take batches): that mapper process is hung or
   * stale, so it goes (SIGKILL ends a stopped or spinning process too). Its other batches
   * are reported when it exits; the next batch starts a fresh one.
   */
  abort(jobId: string, index: number, attempt: number): void {
    const child = this.child;
    if (!child || child.jobId !== jobId || child.inflight.get(index)?.attempt !== attempt) return;
    // The coordinator has dealt with this attempt and taken back what the mapper had not started.
    child.inflight.delete(index);
    for (const [i, b] of child.inflight) if (!b.started) child.inflight.delete(i);
    this.ports.log(`batch ${index} (attempt ${attempt}) of job ${jobId} was taken away; stopping its mapper process`);
    this.child = undefined;
    child.gone = true;
    const pid = child.host?.proc.pid;
    if (pid) killTree(pid); // with what it started (a Python mapper, a model server)
  }

  /**
   * The job ended: a mapper that is done returns and stays warm for a next job (or ends
   * gracefully when it cannot be reused); one still holding batches (a straggler's losing
   * copy) or of a failed or cancelled job is stopped.
   */
  end(reason: 'done' | 'cancelled' | 'failed'): void {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    // A job that is done has every batch committed: a batch still in flight here is the
    // losing copy of a straggler, and must not write into a job that is being reduced.
    const zombie = child.inflight.size > 0;
    child.inflight.clear();
    child.gone = true;
    whenSpawned(child, () => {
      const host = child.host;
      const proc = host?.proc;
      if (!host || !proc || proc.exitCode !== null || proc.signalCode !== null) return;
      if (zombie) {
        if (proc.pid) killTree(proc.pid);
      } else if (reason === 'done') {
        const keep = host.key !== undefined;
        if (keep) {
          host.idle = new Promise<boolean>((resolve) => (host.settleIdle = resolve));
          if (this.warm.host && this.warm.host !== host) this.warm.retire(this.warm.host);
          this.warm.host = host;
        }
        host.send({ type: 'end', ...(keep ? { keep } : {}) });
        // one that neither returns nor exits in time is hung: it is killed, not kept
        const timer = setTimeout(() => proc.kill('SIGKILL'), END_GRACE_MS);
        proc.once('exit', () => clearTimeout(timer));
        void host.idle?.then(() => clearTimeout(timer));
      } else {
        terminate(proc);
      }
    });
  }

  /** Stops the mapper process, if any, without reporting its batches (the coordinator took them back); with `warmToo`, the warm one as well. */
  kill(why: string, warmToo = true): void {
    const warm = this.warm.host;
    if (warmToo && warm) {
      this.ports.log(`stopping the warm mapper process: ${why}`);
      this.warm.retire(warm);
    }
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.inflight.clear();
    child.gone = true;
    whenSpawned(child, () => {
      const proc = child.host?.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      this.ports.log(`stopping mapper of job ${child.jobId}: ${why}`);
      terminate(proc);
    });
  }
}

/**
 * Runs `fn` at once when the child's process runs its job, else once it does (or was given
 * up). At once matters: the coordinator sends a job's `endJob` and the next job's first
 * batch in one write, and the ending process must be the warm one before that batch asks.
 */
function whenSpawned(child: MapperChild, fn: () => void): void {
  if (child.host) fn();
  else void child.spawned.then(fn);
}
