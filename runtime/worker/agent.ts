import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import WebSocket from 'ws';
import { fromWireError, toWireError } from '../../formats/common/errors.js';
import { DEFAULT_SETUP_TIMEOUT_S } from '../pool-config.js';
import { checkFrame, coordinatorToWorker } from '../protocol-guards.js';
import { BatchAssignment, BatchReportItem, CoordinatorToWorker, FENCED_CLOSE_CODE, JobSpec, PROTOCOL_VERSION, WorkerMessage, WorkerResources } from '../protocol.js';
import { sendCorked } from '../corked-send.js';
import { BundleCache } from './bundle-cache.js';
import { PackageFolder } from './package-folder.js';
import { DEVICE_ENV, MapperSupervisor, withoutDeviceEnv } from './mapper-supervisor.js';
import { canWatchMemory } from './memory-watch.js';
import { SetupRunner } from './setup.js';

/**
 * A zero mask, which ws then skips on both ends. Masking keeps a page's script from shaping
 * the bytes a browser sends through a caching proxy; an agent is no browser, and masking
 * each report frame byte by byte was 2.5 % of its time at batchSize 1.
 */
export const UNMASKED = (mask: Buffer): void => void mask.fill(0);

/** The coordinator pings every second; this long without one means it is gone (half-open TCP). */
const PING_TIMEOUT_MS = 5_000;

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
  /** Where job packages shipped to this host go, shared by its workers (default: `<workdir>/.skybatch-packages`). */
  packagesDir?: string;
  log?: (line: string) => void;
}

/**
 * The agent on a worker machine. It dials the coordinator (so a worker anywhere can join
 * with a URL and token), runs the pool's `setup` once per working directory, then stays up
 * across jobs: for each job it starts one mapper process and forwards batches to it.
 */
export class WorkerAgent {
  private ws?: WebSocket;
  private job?: JobSpec;
  private readonly mappers: MapperSupervisor;
  private setupEnv: Record<string, string> = {};
  private readonly setup: SetupRunner;
  private readonly bundles: BundleCache;
  private readonly packages: PackageFolder;
  private closed = false;
  /** The coordinator sent a `batches` frame on this connection, so it takes `batchReports` too. */
  private batchFrames = false;
  /** Batch reports of one job sent this tick, leaving as one `batchReports` frame (a dropped start: undefined). */
  private reports?: { jobId: string; reports: (BatchReportItem | undefined)[]; started: Map<number, number> };
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
    const send = (msg: WorkerMessage) => this.send(msg);
    this.bundles = new BundleCache(opts.workdir, send);
    this.packages = new PackageFolder(opts.packagesDir ?? path.join(opts.workdir, '.skybatch-packages'), send);
    this.setup = new SetupRunner({
      workdir: opts.workdir,
      worker: opts.name,
      send,
      log: this.log,
      env: () => ({ ...withoutDeviceEnv(process.env), ...this.setupEnv, ...this.deviceEnv() }),
    });
    this.mappers = new MapperSupervisor({
      workdir: opts.workdir,
      worker: opts.name,
      send,
      report: (jobId, item) => this.report(jobId, item),
      log: this.log,
      bundles: this.bundles,
      packages: this.packages,
      memoryMb: this.resources?.memoryMb,
      setupEnv: () => this.setupEnv,
      deviceEnv: () => this.deviceEnv(),
      currentJob: () => this.job?.jobId,
      startFailed: (jobId, err) => this.startFailed(jobId, err),
    });
    // however this process ends, a setup it started does not outlive it
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
    const ws = new WebSocket(this.opts.url, { headers: { authorization: `Bearer ${this.opts.token}` }, generateMask: UNMASKED, ...(this.opts.ca ? { ca: this.opts.ca } : {}) });
    this.ws = ws;
    this.batchFrames = false;
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
      this.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'worker', name: this.opts.name, host: os.hostname(), pid: process.pid, ...(this.resources ? { resources: this.resources } : {}), ...(this.opts.launch ? { launch: this.opts.launch } : {}), batchFrames: true });
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
    this.mappers.kill('coordinator connection lost');
    this.job = undefined;
    const limit = this.opts.reconnectTimeoutMs ?? 60_000;
    if (Date.now() - this.lastConnected > limit) {
      this.log(`coordinator unreachable for ${Math.round(limit / 1000)} s; exiting`);
      this.shutdown(1);
      return;
    }
    setTimeout(() => !this.closed && this.start(), 500);
  }

  /**
   * Batch reports sent in one tick leave as one `batchReports` frame (to a coordinator that
   * sends `batches`, so takes them); any other message sends those queued before it first.
   */
  private send(msg: WorkerMessage): void {
    if (this.batchFrames && isBatchReport(msg)) {
      const { jobId, ...item } = msg;
      this.report(jobId, item);
      return;
    }
    this.flushReports();
    this.sendNow(msg);
  }

  /** A report on batch `item` of job `jobId`; `item` is the report's own object (the frame lists it as it is). */
  private report(jobId: string, item: BatchReportItem): void {
    if (!this.batchFrames) {
      this.send({ ...item, jobId });
      return;
    }
    if (this.reports && this.reports.jobId !== jobId) this.flushReports();
    if (!this.reports) {
      this.reports = { jobId, reports: [], started: new Map() };
      process.nextTick(() => this.flushReports());
    }
    const r = this.reports;
    // A batch done in the same tick as it started needs no start: the coordinator takes
    // the commit as both (half the reports of a short batch).
    const at = item.type === 'batchStarted' ? undefined : r.started.get(item.index);
    if (at !== undefined && item.type === 'batchDone' && r.reports[at]?.attempt === item.attempt) r.reports[at] = undefined;
    if (item.type === 'batchStarted') r.started.set(item.index, r.reports.length);
    r.reports.push(item);
  }

  private flushReports(): void {
    const r = this.reports;
    if (!r) return;
    this.reports = undefined;
    const reports = r.reports.filter((x) => x !== undefined);
    this.sendNow(reports.length === 1 ? { ...reports[0], jobId: r.jobId } : { type: 'batchReports', jobId: r.jobId, reports });
  }

  private sendNow(msg: WorkerMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) sendCorked(this.ws, JSON.stringify(msg));
  }

  private onMessage(msg: CoordinatorToWorker): void {
    switch (msg.type) {
      case 'welcome':
        // Also sent again when `pool apply` changed setup or envs: a mapper started before runs on the old ones.
        this.mappers.kill('the pool setup changed');
        this.job = undefined;
        this.setupEnv = msg.envs;
        void this.setup.run(msg.setup, msg.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_S * 1000);
        break;
      case 'job':
        this.mappers.newJob(msg.spec);
        this.job = msg.spec;
        break;
      case 'bundle':
        this.bundles.received(msg.hash, msg.code);
        break;
      case 'bundleUnavailable':
        this.bundles.unavailable(msg.hash, fromWireError(msg.error));
        break;
      case 'packages':
        this.packages.received(msg.hash, msg.error);
        break;
      case 'error':
        this.log(`the coordinator refused a message of this worker: ${msg.error.message}`);
        break;
      case 'batch': {
        const { type: _, jobId, ...b } = msg;
        this.forwardBatches(jobId, [b]);
        break;
      }
      case 'batches':
        this.batchFrames = true;
        this.forwardBatches(msg.jobId, msg.batches);
        break;
      case 'endJob':
        if (this.job?.jobId === msg.jobId) {
          this.job = undefined;
          this.mappers.end(msg.reason);
        }
        break;
      case 'abortBatch':
        if (this.job?.jobId === msg.jobId) this.mappers.abort(msg.jobId, msg.index, msg.attempt);
        break;
      case 'releaseBatch':
        if (this.job?.jobId === msg.jobId) this.mappers.release(msg.jobId, msg.index, msg.attempt);
        break;
      case 'shutdown':
        this.shutdown(0);
        break;
    }
  }

  private forwardBatches(jobId: string, batches: BatchAssignment[]): void {
    if (this.job && this.job.jobId === jobId) this.mappers.forward(this.job, batches);
  }

  /** The job's mapper cannot start on this worker (its bundle is unavailable, ...): the job fails with the reason. */
  private startFailed(jobId: string, err: unknown): void {
    if (this.job?.jobId !== jobId) return;
    this.job = undefined;
    this.log(`cannot start the mapper of job ${jobId}: ${(err as Error)?.message ?? String(err)}`);
    this.send({ type: 'jobFatal', jobId, error: toWireError(err, { jobId, worker: this.opts.name }) });
  }

  shutdown(code = 0): void {
    if (this.closed) return;
    this.closed = true;
    this.mappers.kill('worker shutting down');
    this.setup.stop();
    this.ws?.close();
    this.stopped();
    process.exitCode = code;
    setTimeout(() => process.exit(code), 3000).unref(); // if a child or socket lingers
  }
}


function isBatchReport(msg: WorkerMessage): msg is Extract<WorkerMessage, { type: BatchReportItem['type'] }> {
  return msg.type === 'batchStarted' || msg.type === 'batchDone' || msg.type === 'batchReleased' || msg.type === 'batchFailed';
}
