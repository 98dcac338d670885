import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { poolDir } from '../pool-store.js';

const WORKER_MAIN = fileURLToPath(new URL('../worker/main.js', import.meta.url));
const EXIT_AUTH_REFUSED = 2;

interface Slot {
  index: number;
  proc?: ChildProcess;
  restarts: number;
  stopping: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * The embedded default backend: `pool.workers` worker processes on this machine, each in
 * its own working directory under the pool folder. They join through the same URL and
 * token a remote worker would use. A worker that dies is started again (its setup marker
 * keeps setup from running twice); one refused for its token is not.
 */
export class LocalBackend {
  private readonly slots = new Map<number, Slot>();

  constructor(
    private readonly pool: string,
    private readonly url: () => string,
    private readonly token: string,
    private readonly log: (line: string) => void,
  ) {}

  workerDir(index: number): string {
    return path.join(poolDir(this.pool), 'workers', String(index));
  }

  scale(workers: number): void {
    for (let i = 0; i < workers; i++) if (!this.slots.has(i)) this.startSlot({ index: i, restarts: 0, stopping: false });
    for (const [i, slot] of this.slots) {
      if (i >= workers) {
        this.slots.delete(i);
        this.stopSlot(slot);
      }
    }
  }

  private startSlot(slot: Slot): void {
    this.slots.set(slot.index, slot);
    const dir = this.workerDir(slot.index);
    fs.mkdirSync(dir, { recursive: true });
    const out = fs.openSync(path.join(dir, 'worker.log'), 'a');
    const proc = spawn(process.execPath, ['--enable-source-maps', WORKER_MAIN, '--coordinator', this.url(), '--name', `local-${slot.index}`, '--workdir', dir], {
      env: { ...process.env, SKYBATCH_TOKEN: this.token },
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    slot.proc = proc;
    proc.on('exit', (code, signal) => {
      slot.proc = undefined;
      if (slot.stopping || this.slots.get(slot.index) !== slot) return;
      this.log(`local worker ${slot.index} exited (${signal ?? `code ${code}`})`);
      if (code === EXIT_AUTH_REFUSED) return;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(slot.restarts++, 6));
      slot.timer = setTimeout(() => this.startSlot(slot), delay);
    });
  }

  private stopSlot(slot: Slot): void {
    slot.stopping = true;
    if (slot.timer) clearTimeout(slot.timer);
    slot.proc?.kill('SIGTERM');
  }

  pids(): number[] {
    return [...this.slots.values()].map((s) => s.proc?.pid).filter((p): p is number => p !== undefined);
  }

  /** Stops every worker: SIGTERM, then SIGKILL for any still alive after `graceMs`. */
  async stopAll(graceMs = 3000): Promise<void> {
    const procs = [...this.slots.values()].map((s) => s.proc).filter((p): p is ChildProcess => !!p && p.exitCode === null);
    for (const s of this.slots.values()) this.stopSlot(s);
    this.slots.clear();
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
            p.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}
