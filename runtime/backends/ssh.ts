import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { forEachLine } from '../lines.js';
import type { PoolConfig, SshHost } from '../pool-config.js';
import type { BackendWorkerSummary, WorkerResources } from '../protocol.js';
import { EngineRecord, onceInFlight, restartDelayMs, WORKER_UP_MARKER, WorkerBackend } from './backend.js';
import { hostLabel, planHostWorkers } from './host-placement.js';
import { packRuntimeOffThread } from './package-pack.js';
import type { RuntimePack } from './runtime-pack.js';
import { EXIT_NO_RUNTIME, EXIT_NOT_FOUND, EXIT_OLD_NODE, EXIT_SSH, launchCommand, shipCommand, sshArgs } from './ssh-command.js';

/** The worker's exit code when the coordinator refused its token (worker/agent.ts). */
const EXIT_AUTH_REFUSED = 2;
/** A worker that ran this long before its session ended starts again at once, not after a backoff. */
const HEALTHY_RUN_MS = 10_000;
const STDERR_TAIL = 5;

export interface SshBackendOptions {
  pool: string;
  config: () => PoolConfig;
  /** The URL a worker on `host` dials: the coordinator's address as that host reaches it. */
  url: (host: SshHost) => string;
  token: string;
  /** PEM the workers pin for a wss:// coordinator. */
  caPem?: string;
  log: (line: string) => void;
  /** Each worker's ssh session output goes to DIR/NAME.log. */
  logDir: string;
  /** Longest wait between two launches of a worker that keeps failing (default 30 s). */
  maxBackoffMs?: number;
}

interface Slot {
  index: number;
  name: string;
  host: number;
  resources: WorkerResources;
  engine: EngineRecord;
  /** The id of its current launch; a worker saying hello with another one is stale. */
  launch?: string;
  proc?: ChildProcess;
  exited?: Promise<void>;
  timer?: NodeJS.Timeout;
  stopping: boolean;
  startedAt: number;
  stderr: string[];
}

/**
 * Workers on other machines, one ssh session each: `ssh HOST 'exec node .../worker/main.js
 * ... --lifeline stdin'`, with the pool token and the coordinator's certificate sent on the
 * session's stdin and the session itself as the worker's lifeline. Ending the session (pool
 * down, a crashed coordinator whose pipe closes, a partition that ssh's keepalive gives up
 * on) ends the worker, so none outlives its pool. A host needs only Node: the skybatch
 * runtime is copied once per content hash into ~/.skybatch-host/runtime/HASH the first time
 * a launch finds it missing, and a job's packages into ~/.skybatch-host/packages/HASH the
 * first time one of the host's workers asks for them. A session that ends while the worker should run is started again
 * with backoff, so a host that drops off rejoins when it is back; its batches were already
 * given to others when its connection to the coordinator went quiet.
 */
export class SshBackend implements WorkerBackend {
  readonly kind = 'ssh';
  readonly remote = true;
  private readonly slots = new Map<number, Slot>();
  private pack?: RuntimePack;
  /** The runtime being packed, off the event loop; launches wait on it. */
  private packing?: Promise<RuntimePack>;
  /** Per host: the runtime copy in flight or done, and when it finished. */
  private readonly shipped = new Map<number, { done: Promise<void>; at?: number }>();
  private readonly shippers = new Set<ChildProcess>();
  /** Per host and packages hash: the copy in flight. */
  private readonly packagesShipped = new Map<string, Promise<void>>();
  private closed = false;

  constructor(private readonly opts: SshBackendOptions) {
    fs.mkdirSync(opts.logDir, { recursive: true });
  }

  startWorkers(count: number): string[] {
    const free: number[] = [];
    for (let i = 0; free.length < count; i++) if (!this.slots.has(i)) free.push(i);
    const plan = planHostWorkers(this.opts.config(), Math.max(...free, ...this.slots.keys()) + 1);
    return free.map((index) => {
      const placed = plan.workers[index];
      const slot: Slot = {
        index,
        name: placed?.name ?? `unplaced-${index}`,
        host: placed?.host ?? 0,
        resources: placed?.resources ?? {},
        engine: new EngineRecord(),
        stopping: false,
        startedAt: Date.now(),
        stderr: [],
      };
      this.slots.set(index, slot);
      if (placed) this.launch(slot);
      else slot.engine.set('gone', plan.problems.map((p) => p.message).join('; ') || 'fits on no host');
      return slot.name;
    });
  }

  workers(): BackendWorkerSummary[] {
    const hosts = this.opts.config().hosts ?? [];
    return [...this.slots.values()].sort((a, b) => a.index - b.index).map((s) => s.engine.summary(s.name, hosts[s.host] ? hostLabel(hosts[s.host]) : '?'));
  }

  admit(name: string, launch: string | undefined): string | undefined {
    if (launch === undefined) return undefined; // started by hand: not this backend's business
    const slot = [...this.slots.values()].find((s) => s.name === name);
    if (!slot) return `this pool's ssh backend runs no worker ${name} now (it is left from an earlier start)`;
    if (slot.launch !== launch) return `a newer start of ${name} runs (this one is an earlier start that outlived its ssh session)`;
    return undefined;
  }

  async stopWorker(name: string): Promise<void> {
    const slot = [...this.slots.values()].find((s) => s.name === name);
    if (!slot) return;
    await this.stopSlots([slot], 3000);
    this.slots.delete(slot.index);
  }

  async teardown(graceMs = 3000): Promise<void> {
    this.closed = true;
    for (const p of this.shippers) p.kill('SIGKILL');
    const slots = [...this.slots.values()];
    this.slots.clear();
    await this.stopSlots(slots, graceMs);
  }

  /**
   * Ends sessions politely first: closing stdin is the worker's signal to stop (it stops its
   * mapper and exits, and ssh with it). A session still open after `graceMs` is killed; the
   * remote sshd then closes the worker's stdin all the same.
   */
  private async stopSlots(slots: Slot[], graceMs: number): Promise<void> {
    await Promise.all(
      slots.map(async (s) => {
        s.stopping = true;
        if (s.timer) clearTimeout(s.timer);
        s.engine.set('gone', 'stopped');
        const proc = s.proc;
        if (!proc) return;
        proc.stdin?.end();
        const term = setTimeout(() => proc.kill('SIGTERM'), graceMs);
        const kill = setTimeout(() => proc.kill('SIGKILL'), 2 * graceMs);
        await s.exited;
        clearTimeout(term);
        clearTimeout(kill);
      }),
    );
  }

  private async packRuntime(): Promise<RuntimePack> {
    const t0 = Date.now();
    const pack = await packRuntimeOffThread();
    this.opts.log(`packed the skybatch runtime ${pack.hash.slice(0, 12)} (${pack.files} files, ${(pack.bytes / 2 ** 20).toFixed(1)} MB) in ${Date.now() - t0} ms`);
    return pack;
  }

  private host(slot: Slot): SshHost {
    return this.opts.config().hosts![slot.host];
  }

  private launch(slot: Slot): void {
    if (slot.stopping || this.closed) return;
    if (!this.pack) {
      slot.engine.set('starting', 'packing the skybatch runtime for the hosts');
      const packing = (this.packing ??= this.packRuntime());
      packing.then(
        (pack) => {
          this.pack = pack;
          this.launch(slot);
        },
        (err: Error) => {
          if (this.packing === packing) this.packing = undefined; // the next launch tries again
          if (!slot.stopping && !this.closed) slot.engine.set('gone', `cannot pack the skybatch runtime for the hosts: ${err.message}`);
        },
      );
      return;
    }
    const host = this.host(slot);
    const config = this.opts.config();
    slot.launch = randomBytes(8).toString('hex');
    slot.stderr = [];
    slot.startedAt = Date.now();
    slot.engine.set('starting', `connecting to ${hostLabel(host)} over ssh`);
    const cmd = launchCommand({ host, hash: this.pack.hash, pool: this.opts.pool, name: slot.name, url: this.opts.url(host), launch: slot.launch, resources: slot.resources });
    const proc = spawn('ssh', sshArgs(host, config.ssh, cmd), { stdio: ['pipe', 'pipe', 'pipe'] });
    slot.proc = proc;
    proc.stdin.on('error', () => {}); // EPIPE once the session is gone: its exit says why
    proc.stdin.write(JSON.stringify({ token: this.opts.token, ...(this.opts.caPem ? { ca: this.opts.caPem } : {}) }) + '\n');
    const out = fs.createWriteStream(path.join(this.opts.logDir, `${slot.name}.log`), { flags: 'a', mode: 0o600 });
    out.on('error', () => {});
    forEachLine(proc.stdout, (line) => {
      out.write(`${line}\n`);
      if (line.startsWith(WORKER_UP_MARKER) && slot.proc === proc) slot.engine.set('running');
    });
    forEachLine(proc.stderr, (line) => {
      out.write(`${line}\n`);
      if (!line.trim()) return;
      slot.stderr.push(line.trim());
      if (slot.stderr.length > STDERR_TAIL) slot.stderr.shift();
    });
    let ended = false;
    slot.exited = new Promise((resolve) => {
      const end = (code: number | null, signal: NodeJS.Signals | null, err?: Error) => {
        if (ended) return;
        ended = true;
        out.end();
        if (slot.proc === proc) slot.proc = undefined;
        this.onExit(slot, code, signal, err);
        resolve();
      };
      proc.on('error', (err) => end(null, null, err));
      proc.on('close', (code, signal) => end(code, signal));
    });
  }

  private onExit(slot: Slot, code: number | null, signal: NodeJS.Signals | null, err?: Error): void {
    if (slot.stopping || this.closed || this.slots.get(slot.index) !== slot) return;
    const host = this.host(slot);
    const label = hostLabel(host);
    const tail = slot.stderr.at(-1);
    if (code === EXIT_NO_RUNTIME) {
      slot.engine.set('starting', `copying the skybatch runtime (${(this.pack!.bytes / 2 ** 20).toFixed(1)} MB) to ${label}`);
      this.ship(slot.host, slot.startedAt).then(
        () => this.launch(slot),
        (e: Error) => this.retryLater(slot, `cannot copy the skybatch runtime to ${label}: ${e.message}`),
      );
      return;
    }
    if (code === EXIT_AUTH_REFUSED) {
      slot.engine.set('gone', 'the coordinator refused its token');
      this.opts.log(`worker ${slot.name} on ${label}: the coordinator refused its token; not restarting it`);
      return;
    }
    let why: string;
    if (err) why = `cannot run ssh: ${err.message}`;
    else if (code === EXIT_SSH) why = `ssh to ${label} failed or was cut (${tail ?? 'exit 255'})`;
    else if (code === EXIT_NOT_FOUND) why = `${host.node ?? 'node'} was not found on ${label} (${tail ?? 'exit 127'}): install Node 20 or newer there, or set hosts[].node`;
    else if (signal) why = `its ssh session was killed by ${signal}`;
    else why = `its session on ${label} ended with code ${code}${tail ? ` (${tail})` : ''}`;
    this.retryLater(slot, why);
  }

  private retryLater(slot: Slot, why: string): void {
    if (slot.stopping || this.closed) return;
    if (Date.now() - slot.startedAt > HEALTHY_RUN_MS) slot.engine.failures = 0;
    slot.engine.failures++;
    const delay = restartDelayMs(slot.engine.failures, this.opts.maxBackoffMs);
    slot.engine.set('pending', `${why}; retrying in ${Math.round(delay / 1000)} s`);
    this.opts.log(`worker ${slot.name}: ${why}; retrying in ${Math.round(delay / 1000)} s`);
    slot.timer = setTimeout(() => this.launch(slot), delay);
  }

  /**
   * Copies the runtime to a host once, however many of its workers ask at once. A launch
   * that started after the last copy finished and still found no runtime (someone removed
   * it) copies it again.
   */
  private ship(host: number, launchedAt: number): Promise<void> {
    const known = this.shipped.get(host);
    // in flight, or finished after that launch looked: the launch just raced the copy
    if (known && (known.at === undefined || known.at > launchedAt)) return known.done;
    const record: { done: Promise<void>; at?: number } = { done: this.copyRuntime(host) };
    record.done.then(
      () => (record.at = Date.now()),
      () => this.shipped.get(host) === record && this.shipped.delete(host),
    );
    this.shipped.set(host, record);
    return record.done;
  }

  /**
   * Copies a job's packages to the host of worker `name`: one copy per host however many of
   * its workers ask at once (a copy already there is kept). A worker asks only when its host
   * lacks them, so a later ask (they were removed as unused) copies them again.
   */
  shipPackages(name: string, pack: RuntimePack): Promise<void> {
    const slot = [...this.slots.values()].find((s) => s.name === name);
    if (!slot) return Promise.reject(new Error(`this pool's ssh backend runs no worker ${name}`));
    return onceInFlight(this.packagesShipped, `${slot.host}:${pack.hash}`, () => this.copyPack(slot.host, pack, 'packages', "the job's packages"));
  }

  private copyRuntime(index: number): Promise<void> {
    return this.copyPack(index, this.pack!, 'runtime', 'the skybatch runtime');
  }

  private copyPack(index: number, pack: RuntimePack, into: 'runtime' | 'packages', what: string): Promise<void> {
    const host = this.opts.config().hosts![index];
    const label = hostLabel(host);
    const t0 = Date.now();
    this.opts.log(`copying ${what} ${pack.hash.slice(0, 12)} (${(pack.bytes / 2 ** 20).toFixed(1)} MB, ${pack.files} files) to ${label}`);
    const proc = spawn('ssh', sshArgs(host, this.opts.config().ssh, shipCommand(host, pack.hash, into)), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.shippers.add(proc);
    const stderr: string[] = [];
    forEachLine(proc.stderr, (l) => l.trim() && stderr.push(l.trim()));
    let unpacked = false; // packages already there: the host says nothing
    forEachLine(proc.stdout, (l) => {
      if (l === `unpacked ${pack.hash}`) unpacked = true;
      else if (l.startsWith('removed ')) this.opts.log(`${label}: removed the ${into} folder ${l.slice('removed '.length)}`);
    });
    proc.stdin.on('error', () => {});
    fs.createReadStream(pack.file).pipe(proc.stdin);
    return new Promise<void>((resolve, reject) => {
      proc.on('error', reject);
      proc.on('close', (code, signal) => {
        this.shippers.delete(proc);
        if (code === 0) {
          this.opts.log(unpacked ? `copied ${what} to ${label} in ${Date.now() - t0} ms` : `${label} had ${what} ${pack.hash.slice(0, 12)} already`);
          return resolve();
        }
        const tail = stderr.slice(-2).join(' ') || (signal ? `killed by ${signal}` : `exit ${code}`);
        if (code === EXIT_OLD_NODE) reject(new Error(tail));
        else if (code === EXIT_NOT_FOUND) reject(new Error(`${host.node ?? 'node'} was not found on ${label} (${tail}): install Node 20 or newer there, or set hosts[].node`));
        else reject(new Error(tail));
      });
    });
  }
}
