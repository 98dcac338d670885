import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { SkybatchError, fromWireError, toWireError } from '../../formats/errors.js';
import { buildId } from '../build-id.js';
import { forEachLine } from '../lines.js';
import { DEFAULT_SETUP_TIMEOUT_S } from '../pool-config.js';
import { checkFrame, coordinatorToWorker, mapperToAgent } from '../protocol-guards.js';
import { CoordinatorToWorker, FENCED_CLOSE_CODE, JobSpec, PROTOCOL_VERSION, WorkerMessage, WorkerResources } from '../protocol.js';
import { BundleCache } from './bundle-cache.js';
import type { AgentToMapper, MapperToAgent } from './mapper-ipc.js';
import { canWatchMemory, capMemory, killTree } from './memory-watch.js';
import { SetupRunner } from './setup.js';

const MAPPER_PROCESS = fileURLToPath(new URL('./mapper-process.js', import.meta.url));
const END_GRACE_MS = 30_000;
/** The coordinator pings every second; this long without one means it is gone (half-open TCP). */
const PING_TIMEOUT_MS = 5_000;
const BUILD = buildId();
const KILL_GRACE_MS = 3_000;

export interface AgentOptions {
  url: string;
  token: string;
  name: string;
  workdir: string;
  /** PEM of the CA (or self-signed certificate) a wss:// coordinator presents. */
  ca?: Buffer;
  /** Give up when the coordinator stays unreachable this long (default 60 s). */
  reconnectTimeoutMs?: number;
  /** This worker's share of its host, from its backend: GPUs, pinned CPUs, a mapper memory limit. */
  resources?: WorkerResources;
  /** The id its backend gave this start of the worker; the coordinator refuses a stale one. */
  launch?: string;
  log?: (line: string) => void;
}

/** Which GPUs a process sees is the worker's business, never the submitting client's. */
const DEVICE_ENV = ['CUDA_VISIBLE_DEVICES', 'CUDA_DEVICE_ORDER'];

interface MapperChild {
  jobId: string;
  inflight: Map<number, { attempt: number; started: boolean; start: number; end: number }>;
  /** The process, once the job's bundle is here and it was spawned. */
  proc?: ChildProcess;
  /** Settles once `proc` is spawned, or once the child was given up before that. */
  spawned: Promise<void>;
  /** Stopped, exited or superseded: it takes no more batches. */
  gone: boolean;
  ending: boolean;
  stderrTail: string[];
  /** Whether this process ever took a batch from load(). */
  tookBatch: boolean;
  /** Set when the agent stopped it for using more than `resources.memoryMb`. */
  overMemoryMb?: number;
}

/**
 * The agent on a worker machine. It dials the coordinator (so a worker anywhere can join
 * with a URL and token), runs the pool's `setup` once per working directory, then stays up
 * across jobs: for each job it starts one mapper process and forwards batches to it.
 */
export class WorkerAgent {
  private ws?: WebSocket;
  private job?: JobSpec;
  /** The mapper process of `job` that takes new batches. Decisions about it are synchronous, in message order. */
  private child?: MapperChild;
  private setupEnv: Record<string, string> = {};
  private readonly setup: SetupRunner;
  private readonly bundles: BundleCache;
  private closed = false;
  private lastConnected = Date.now();
  private readonly log: (line: string) => void;
  private readonly resources?: WorkerResources;
  private stopped!: () => void;
  readonly done = new Promise<void>((resolve) => (this.stopped = resolve));

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log ?? ((l) => process.stdout.write(`[${opts.name}] ${l}\n`));
    fs.mkdirSync(opts.workdir, { recursive: true });
    const r = opts.resources;
    this.resources = r?.memoryMb && !canWatchMemory ? { ...r, notes: [...(r.notes ?? []), `memory limit not enforced: no /proc on ${process.platform}`] } : r;
    // however this process ends, a setup it started does not outlive it
    const send = (msg: WorkerMessage) => this.send(msg);
    this.bundles = new BundleCache(opts.workdir, send);
    this.setup = new SetupRunner({
      workdir: opts.workdir,
      worker: opts.name,
      send,
      log: this.log,
      env: () => ({ ...withoutDeviceEnv(process.env), ...this.setupEnv, ...this.deviceEnv() }),
    });
    process.once('exit', () => this.setup.stop());
  }

  /**
   * GPU visibility for setup and the mapper: the devices its backend gave this worker (CUDA
   * indices in nvidia-smi's PCI order), or, for a worker started by hand, its own environment's.
   */
  private deviceEnv(): Record<string, string> {
    const gpus = this.resources?.gpus;
    if (gpus) return { CUDA_VISIBLE_DEVICES: gpus.map((g) => g.index).join(','), ...(gpus.length ? { CUDA_DEVICE_ORDER: 'PCI_BUS_ID' } : {}) };
    return Object.fromEntries(DEVICE_ENV.flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k]!]])));
  }

  start(): void {
    const ws = new WebSocket(this.opts.url, { headers: { authorization: `Bearer ${this.opts.token}` }, ...(this.opts.ca ? { ca: this.opts.ca } : {}) });
    this.ws = ws;
    let lastPing = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastPing > PING_TIMEOUT_MS) {
        this.log('no heartbeat from the coordinator; reconnecting');
        ws.terminate();
      }
    }, 1000);
    ws.on('ping', () => (lastPing = Date.now()));
    ws.on('close', () => clearInterval(watchdog));
    ws.on('open', () => {
      lastPing = Date.now();
      this.lastConnected = Date.now();
      this.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'worker', name: this.opts.name, host: os.hostname(), pid: process.pid, ...(this.resources ? { resources: this.resources } : {}), ...(this.opts.launch ? { launch: this.opts.launch } : {}) });
    });
    ws.on('unexpected-response', (_req, res) => {
      this.log(`the coordinator at ${this.opts.url} refused this worker (HTTP ${res.statusCode}): check the pool token`);
      this.shutdown(2);
    });
    ws.on('message', (data) => {
      const checked = checkFrame(coordinatorToWorker, data.toString(), 'the coordinator');
      if (checked.ok) this.onMessage(checked.msg);
      else this.log(`ignored a frame: ${checked.error.message}`);
    });
    ws.on('close', (code, reason) => {
      if (code !== FENCED_CLOSE_CODE) return this.onDisconnect();
      // Its backend started a newer copy of this worker (this one outlived its session): make way.
      this.log(`the coordinator refused this worker: ${reason.toString()}; exiting`);
      this.shutdown(3);
    });
    ws.on('error', (err) => this.log(`connection error: ${err.message}`));
  }

  private onDisconnect(): void {
    if (this.closed) return;
    this.killChild('coordinator connection lost');
    this.job = undefined;
    const limit = this.opts.reconnectTimeoutMs ?? 60_000;
    if (Date.now() - this.lastConnected > limit) {
      this.log(`coordinator unreachable for ${Math.round(limit / 1000)} s; exiting`);
      this.shutdown(1);
      return;
    }
    setTimeout(() => !this.closed && this.start(), 500);
  }

  private send(msg: WorkerMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private onMessage(msg: CoordinatorToWorker): void {
    switch (msg.type) {
      case 'welcome':
        // Also sent again when `pool apply` changed setup or envs: a mapper started before runs on the old ones.
        this.killChild('the pool setup changed');
        this.job = undefined;
        this.setupEnv = msg.envs;
        void this.setup.run(msg.setup, msg.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_S * 1000);
        break;
      case 'job':
        this.killChild('superseded by a new job');
        this.job = msg.spec;
        break;
      case 'bundle':
        this.bundles.received(msg.hash, msg.code);
        break;
      case 'bundleUnavailable':
        this.bundles.unavailable(msg.hash, fromWireError(msg.error));
        break;
      case 'error':
        this.log(`the coordinator refused a message of this worker: ${msg.error.message}`);
        break;
      case 'batch':
        this.forwardBatch(msg);
        break;
      case 'endJob':
        if (this.job?.jobId === msg.jobId) this.endJob(msg.reason);
        break;
      case 'abortBatch':
        if (this.job?.jobId === msg.jobId) this.abortBatch(msg.jobId, msg.index, msg.attempt);
        break;
      case 'shutdown':
        this.shutdown(0);
        break;
    }
  }

  private forwardBatch(msg: Extract<CoordinatorToWorker, { type: 'batch' }>): void {
    const spec = this.job;
    if (!spec || spec.jobId !== msg.jobId) return;
    if (!this.child || this.child.gone) this.child = this.startChild(spec);
    const child = this.child;
    child.inflight.set(msg.index, { attempt: msg.attempt, started: false, start: msg.start, end: msg.end });
    const fwd: AgentToMapper = { type: 'batch', index: msg.index, start: msg.start, end: msg.end, attempt: msg.attempt, wantSample: msg.wantSample };
    // A child that went away meanwhile reports this batch with the rest of its batches.
    void child.spawned.then(() => {
      if (child.gone || !child.proc?.connected) return;
      try {
        child.proc.send(fwd);
      } catch (err) {
        // the process is going away: its exit hands the batch back (it is in inflight)
        this.log(`batch ${msg.index} of job ${msg.jobId} not handed to its mapper process: ${(err as Error).message}`);
      }
    });
  }

  /** The job's mapper cannot start on this worker (its bundle is unavailable, ...): the job fails with the reason. */
  private startFailed(jobId: string, err: unknown): void {
    if (this.job?.jobId !== jobId) return;
    this.job = undefined;
    this.child = undefined;
    this.log(`cannot start the mapper of job ${jobId}: ${(err as Error)?.message ?? String(err)}`);
    this.send({ type: 'jobFatal', jobId, error: toWireError(err, { jobId, worker: this.opts.name }) });
  }

  private startChild(spec: JobSpec): MapperChild {
    const child: MapperChild = { jobId: spec.jobId, inflight: new Map(), gone: false, ending: false, stderrTail: [], tookBatch: false, spawned: Promise.resolve() };
    child.spawned = this.bundles.path(spec.bundleHash).then(
      (bundlePath) => {
        if (child.gone) this.settle(child, 'was stopped before it started', false);
        else this.spawnMapper(child, spec, bundlePath);
      },
      (err: unknown) => {
        child.gone = true;
        child.inflight.clear();
        if (this.child === child) this.startFailed(spec.jobId, err);
      },
    );
    return child;
  }

  private spawnMapper(child: MapperChild, spec: JobSpec, bundlePath: string): void {
    const cacheDir = path.join(this.opts.workdir, '.skybatch-cache', spec.jobId);
    fs.mkdirSync(cacheDir, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...withoutDeviceEnv(process.env),
      ...this.setupEnv,
      ...withoutDeviceEnv(spec.env),
      ...this.deviceEnv(),
      SKYBATCH_JOB_ID: spec.jobId,
      SKYBATCH_WORKER: this.opts.name,
      SKYBATCH_AGENT_BUILD: BUILD,
    };
    delete env.SKYBATCH_TOKEN;
    const memoryMb = this.resources?.memoryMb;
    // V8's heap limit follows the worker's memory limit, so it collects garbage before the
    // agent would see the process over its limit; the agent's RSS poll is what enforces it.
    const nodeArgs = ['--enable-source-maps', ...(memoryMb ? [`--max-old-space-size=${memoryMb}`] : []), MAPPER_PROCESS];
    const stdio: ('ignore' | 'pipe' | 'ipc')[] = ['ignore', 'pipe', 'pipe', 'ipc'];
    const proc = spec.activateEnv
      ? spawn('bash', ['-c', `${spec.activateEnv}\nexec "$0" "$@"`, process.execPath, ...nodeArgs], { cwd: this.opts.workdir, env, stdio })
      : spawn(process.execPath, nodeArgs, { cwd: this.opts.workdir, env, stdio });
    child.proc = proc;
    if (memoryMb && canWatchMemory && proc.pid) {
      const stop = capMemory(proc.pid, memoryMb * 2 ** 20, (rss) => {
        child.overMemoryMb = Math.round(rss / 2 ** 20);
        this.log(`mapper of job ${spec.jobId} used ${child.overMemoryMb} MB, over its ${memoryMb} MB limit; stopped it`);
      });
      proc.once('exit', stop);
    }
    const relay = (stream: 'stdout' | 'stderr') => (line: string) => {
      if (stream === 'stderr') {
        child.stderrTail.push(line);
        if (child.stderrTail.length > 10) child.stderrTail.shift();
      }
      this.send({ type: 'log', jobId: spec.jobId, stream, line });
    };
    forEachLine(proc.stdout, relay('stdout'));
    forEachLine(proc.stderr, relay('stderr'));
    proc.on('message', (m: unknown) => {
      const checked = checkFrame(mapperToAgent, m, `the mapper process of job ${spec.jobId}`);
      if (checked.ok) this.onChildMessage(child, checked.msg);
      else this.log(`ignored a message: ${checked.error.message}`);
    });
    proc.on('exit', (code, signal) => this.onChildExit(child, code, signal));
    proc.on('error', (err) => this.log(`mapper process error: ${err.message}`));
    const start: AgentToMapper = { type: 'start', spec, bundlePath, cacheDir };
    proc.send(start);
  }

  private onChildMessage(child: MapperChild, m: MapperToAgent): void {
    const jobId = child.jobId;
    if (m.type === 'fatal') {
      this.send({ type: 'jobFatal', jobId, error: m.error });
      return;
    }
    const entry = child.inflight.get(m.index);
    if (entry?.attempt !== m.attempt) return;
    if (m.type === 'batchStarted') entry.started = child.tookBatch = true;
    else child.inflight.delete(m.index);
    this.send({ ...m, jobId });
  }

  private onChildExit(child: MapperChild, code: number | null, signal: NodeJS.Signals | null): void {
    child.gone = true;
    if (this.child === child) this.child = undefined;
    const over = child.overMemoryMb;
    const limit = `the ${this.resources?.memoryMb} MB the pool gives it (resources.memory); raise resources.memory or lower batchSize`;
    if (over !== undefined && !child.tookBatch && this.job?.jobId === child.jobId) {
      // Its one-time setup alone is too big: every retry would end the same way.
      const err = new SkybatchError('SKYBATCH_E_MEMORY_LIMIT', `job ${child.jobId}: the mapper process on worker ${this.opts.name} used ${over} MB before taking its first batch, over ${limit}`, {
        context: { jobId: child.jobId, worker: this.opts.name },
      });
      this.send({ type: 'jobFatal', jobId: child.jobId, error: toWireError(err) });
      child.inflight.clear();
      return;
    }
    this.settle(child, signal ? `was killed by ${signal}` : `exited with code ${code}`, true, over === undefined ? undefined : (batch) => `used ${over} MB while holding batch [${batch[0]}, ${batch[1]}], over ${limit}`);
  }

  /**
   * Reports the batches a mapper process held when it went away: a started batch failed
   * (when `charge`), one it never took is given back without counting against it.
   */
  private settle(child: MapperChild, how: string, charge: boolean, overMemory?: (batch: [number, number]) => string): void {
    const tail = child.stderrTail.length ? `; last stderr:\n${child.stderrTail.join('\n')}` : '';
    for (const [index, { attempt, started, start, end }] of child.inflight) {
      if (!started || !charge) {
        this.send({ type: 'batchReleased', jobId: child.jobId, index, attempt });
        continue;
      }
      const context = { jobId: child.jobId, batch: [start, end] as [number, number], worker: this.opts.name, attempt };
      const err = overMemory
        ? new SkybatchError('SKYBATCH_E_MEMORY_LIMIT', `job ${child.jobId}: the mapper process on worker ${this.opts.name} ${overMemory([start, end])}`, { retryable: true, context })
        : new SkybatchError('SKYBATCH_E_WORKER_LOST', `job ${child.jobId}: the mapper process on worker ${this.opts.name} ${how} while holding this batch${tail}`, { retryable: true, context });
      this.send({ type: 'batchFailed', jobId: child.jobId, index, attempt, error: toWireError(err) });
    }
    child.inflight.clear();
  }

  /**
   * The coordinator took a batch away (it timed out, a copy elsewhere won, or it waited too
   * long behind a mapper that does not take batches): that mapper process is hung or
   * stale, so it goes (SIGKILL ends a stopped or spinning process too). Its other batches
   * are reported when it exits; the next batch starts a fresh one.
   */
  private abortBatch(jobId: string, index: number, attempt: number): void {
    const child = this.child;
    if (!child || child.jobId !== jobId || child.inflight.get(index)?.attempt !== attempt) return;
    // The coordinator has dealt with this attempt and taken back what the mapper had not started.
    child.inflight.delete(index);
    for (const [i, b] of child.inflight) if (!b.started) child.inflight.delete(i);
    this.log(`batch ${index} (attempt ${attempt}) of job ${jobId} was taken away; stopping its mapper process`);
    this.child = undefined;
    child.gone = true;
    if (child.proc?.pid) killTree(child.proc.pid); // with what it started (a Python mapper, a model server)
  }

  private endJob(reason: 'done' | 'cancelled' | 'failed'): void {
    const child = this.child;
    this.job = undefined;
    this.child = undefined;
    if (!child) return;
    // A job that is done has every batch committed: a batch still in flight here is the
    // losing copy of a straggler, and must not write into a job that is being reduced.
    const zombie = child.inflight.size > 0;
    child.inflight.clear();
    child.gone = true;
    void child.spawned.then(() => {
      const proc = child.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      if (zombie) {
        if (proc.pid) killTree(proc.pid);
      } else if (reason === 'done') {
        child.ending = true;
        proc.send({ type: 'end' } satisfies AgentToMapper);
        const timer = setTimeout(() => proc.kill('SIGKILL'), END_GRACE_MS);
        proc.once('exit', () => clearTimeout(timer));
      } else {
        terminate(proc);
      }
    });
  }

  private killChild(why: string): void {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.inflight.clear();
    child.gone = true;
    void child.spawned.then(() => {
      if (!child.proc || child.proc.exitCode !== null || child.proc.signalCode !== null) return;
      this.log(`stopping mapper of job ${child.jobId}: ${why}`);
      terminate(child.proc);
    });
  }

  shutdown(code = 0): void {
    if (this.closed) return;
    this.closed = true;
    this.killChild('worker shutting down');
    this.setup.stop();
    this.ws?.close();
    this.stopped();
    process.exitCode = code;
    setTimeout(() => process.exit(code), 3000).unref(); // if a child or socket lingers
  }
}

function withoutDeviceEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out = { ...env };
  for (const k of DEVICE_ENV) delete out[k];
  return out;
}

function terminate(proc: ChildProcess): void {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  proc.kill('SIGCONT'); // a stopped process acts on SIGTERM only once it runs
  const timer = setTimeout(() => proc.kill('SIGKILL'), KILL_GRACE_MS);
  proc.once('exit', () => clearTimeout(timer));
}
