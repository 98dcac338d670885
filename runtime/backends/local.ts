import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostFacts, probeHost } from '../host-resources.js';
import type { PoolConfig } from '../pool-config.js';
import { isAlive, liveWorkerPid, poolDir } from '../store/pool-store.js';
import type { BackendWorkerSummary, WorkerResources } from '../protocol.js';
import { planLocalWorkers } from '../worker-placement.js';
import { EngineRecord, WorkerBackend } from './backend.js';

const WORKER_MAIN = fileURLToPath(new URL('../worker/main.js', import.meta.url));
const EXIT_AUTH_REFUSED = 2;
const ADOPTED_POLL_MS = 500;
/** A worker that ran this long before dying is restarted at once, not after a backoff. */
const HEALTHY_RUN_MS = 10_000;

interface Slot {
  index: number;
  pid?: number;
  startedAt: number;
  restarts: number;
  stopping: boolean;
  timer?: NodeJS.Timeout;
  exited?: Promise<void>;
  engine: EngineRecord;
}

/**
 * The embedded default backend: `pool.workers` worker processes on this machine, each in
 * its own working directory under the pool folder. They join through the same URL and
 * token a remote worker would use. A worker that dies is started again (its setup marker
 * keeps setup from running twice); one refused for its token is not. Workers left running
 * by a coordinator that crashed are adopted by the next one (their pid files say who they
 * are), so a restart neither loses nor doubles the pool. Each slot gets its own share of
 * the host from `resources` (GPUs, CPUs pinned with taskset, a memory limit); a slot keeps
 * its share across restarts.
 */
export class LocalBackend implements WorkerBackend {
  readonly kind = 'local';
  readonly remote = false;
  private readonly slots = new Map<number, Slot>();
  private host?: { key: string; facts: HostFacts };

  constructor(
    private readonly pool: string,
    private readonly url: () => string,
    private readonly token: string,
    private readonly log: (line: string) => void,
    private readonly caFile: string | undefined,
    private readonly config: () => PoolConfig,
  ) {}

  workerDir(index: number): string {
    return path.join(poolDir(this.pool), 'workers', String(index));
  }

  /** Takes the lowest free slots, so a pool restarted at its old size adopts the workers its last coordinator left. */
  startWorkers(count: number): string[] {
    const names: string[] = [];
    for (let i = 0; names.length < count; i++) {
      if (this.slots.has(i)) continue;
      const slot: Slot = { index: i, restarts: 0, stopping: false, startedAt: Date.now(), engine: new EngineRecord() };
      this.slots.set(i, slot);
      const orphan = this.orphanPid(i);
      if (orphan) this.adopt(slot, orphan);
      else this.start(slot);
      names.push(slotName(i));
    }
    return names;
  }

  async stopWorker(name: string): Promise<void> {
    const slot = [...this.slots.values()].find((s) => slotName(s.index) === name);
    if (!slot) return;
    await this.stopSlots([slot], 3000);
    this.slots.delete(slot.index);
  }

  workers(): BackendWorkerSummary[] {
    return [...this.slots.values()].sort((a, b) => a.index - b.index).map((s) => s.engine.summary(slotName(s.index), os.hostname()));
  }

  /** The pid of a live worker of this slot left by an earlier coordinator, if any. */
  private orphanPid(index: number): number | undefined {
    return liveWorkerPid(this.workerDir(index));
  }

  /** Slot `index`'s share of the host; `pool apply` already refused a pool that does not fit. */
  private share(index: number): { resources: WorkerResources; taskset?: string } {
    const config = this.config();
    const key = JSON.stringify(config.host ?? {});
    if (this.host?.key !== key) this.host = { key, facts: probeHost(config.host) };
    const plan = planLocalWorkers(config, this.host.facts);
    const resources = plan.workers[index] ?? { gpus: [], notes: plan.problems.map((p) => `given no GPU: ${p.message}`) };
    return { resources, taskset: resources.cpus ? this.host.facts.taskset : undefined };
  }

  private start(slot: Slot): void {
    const dir = this.workerDir(slot.index);
    fs.mkdirSync(dir, { recursive: true });
    const out = fs.openSync(path.join(dir, 'worker.log'), 'a', 0o600);
    const share = this.share(slot.index);
    const args = ['--enable-source-maps', WORKER_MAIN, '--coordinator', this.url(), '--name', slotName(slot.index), '--workdir', dir, '--resources', JSON.stringify(share.resources)];
    // taskset execs node in place: the pid (and so the pid file and adoption) stays the worker's.
    const [cmd, argv] = share.taskset ? [share.taskset, ['-c', share.resources.cpus!, process.execPath, ...args]] : [process.execPath, args];
    const proc = spawn(cmd, argv, {
      env: { ...process.env, SKYBATCH_TOKEN: this.token, ...(this.caFile ? { SKYBATCH_CA: this.caFile } : {}) },
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    slot.pid = proc.pid;
    slot.startedAt = Date.now();
    fs.writeFileSync(path.join(dir, 'worker.pid'), String(proc.pid));
    slot.engine.set('running');
    slot.exited = new Promise((resolve) => proc.on('exit', (code, signal) => (this.onExit(slot, signal ?? `code ${code}`, code, signal), resolve())));
  }

  private adopt(slot: Slot, pid: number): void {
    this.log(`adopting local worker ${slot.index} (pid ${pid}) left by the previous coordinator`);
    slot.pid = pid;
    slot.engine.set('running');
    slot.exited = new Promise((resolve) => {
      const t = setInterval(() => {
        if (isAlive(pid)) return;
        clearInterval(t);
        this.onExit(slot, 'exited', null, null);
        resolve();
      }, ADOPTED_POLL_MS);
    });
  }

  private onExit(slot: Slot, how: string, code: number | null, signal: NodeJS.Signals | null): void {
    slot.pid = undefined;
    if (slot.stopping || this.slots.get(slot.index) !== slot) return;
    this.log(`local worker ${slot.index} exited (${how})`);
    if (code === EXIT_AUTH_REFUSED) {
      slot.engine.set('gone', `exited (${how}): the coordinator refused its token`);
      return;
    }
    // Backoff is for a worker that keeps failing at start; one killed from outside
    // (a preemption, the OOM killer, a test) comes back at once.
    if (signal || Date.now() - slot.startedAt > HEALTHY_RUN_MS) slot.restarts = 0;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(slot.restarts++, 7));
    slot.engine.failures = slot.restarts;
    slot.engine.set('pending', `exited (${how}); restarting in ${(delay / 1000).toFixed(1)} s`);
    slot.timer = setTimeout(() => this.start(slot), delay);
  }

  private stopSlot(slot: Slot): void {
    slot.stopping = true;
    if (slot.timer) clearTimeout(slot.timer);
    if (slot.pid && isAlive(slot.pid)) process.kill(slot.pid, 'SIGTERM');
  }

  /** Stops every worker: SIGTERM, then SIGKILL for any still alive after `graceMs`. */
  async teardown(graceMs = 3000): Promise<void> {
    const slots = [...this.slots.values()];
    this.slots.clear();
    await this.stopSlots(slots, graceMs);
  }

  private async stopSlots(slots: Slot[], graceMs: number): Promise<void> {
    await Promise.all(
      slots.map(async (s) => {
        const pid = s.pid;
        this.stopSlot(s);
        s.engine.set('gone', 'stopped');
        if (!pid) return;
        const t = setTimeout(() => isAlive(pid) && process.kill(pid, 'SIGKILL'), graceMs);
        await s.exited;
        clearTimeout(t);
      }),
    );
  }
}

const slotName = (index: number) => `local-${index}`;
