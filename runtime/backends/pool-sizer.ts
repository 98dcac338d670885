import type { WorkerBackend } from './backend.js';

/** What the sizer needs of the coordinator: stop giving a worker batches, and tell whether it still holds any. */
export interface Drainable {
  /** Gives the worker(s) of this name no more batches; true when none of them holds a batch now. */
  drain(name: string): boolean;
  /** Forgets a drain (the name may be started again). */
  undrain(name: string): void;
  /** Whether a worker of this name holds a batch now (a shrink drains the others first). */
  holds?(name: string): boolean;
}

const SWEEP_MS = 250;

/**
 * Keeps a backend at the pool's size. Growing starts workers; shrinking drains the newest
 * ones (idle ones first) on the coordinator and stops each only once it holds no batch, so a smaller pool
 * never costs a running batch (the autoscaler's scale-down goes through here too).
 * Workers the backend gave up on (`gone`) keep their place until the next `resize`, which
 * replaces them: applying the pool again is how a user retries them.
 */
export class PoolSizer {
  private target = 0;
  /** Names being drained, then stopped. */
  private readonly leaving = new Set<string>();
  private readonly stopping = new Set<string>();
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly backend: WorkerBackend,
    private readonly coordinator: Drainable,
    private readonly log: (line: string) => void,
  ) {}

  /** The size it keeps the backend at. */
  get size(): number {
    return this.target;
  }

  resize(workers: number): void {
    if (this.closed) return;
    this.target = workers;
    for (const w of this.backend.workers()) {
      if (w.state === 'gone' && !this.leaving.has(w.name)) {
        this.log(`replacing worker ${w.name} (${w.reason ?? 'gone'})`);
        this.leave(w.name);
      }
    }
    const staying = this.backend.workers().filter((w) => !this.leaving.has(w.name));
    if (staying.length < this.target) {
      const names = this.backend.startWorkers(this.target - staying.length);
      this.log(`starting ${names.length} ${this.backend.kind} worker(s): ${names.join(', ')}`);
    }
    // newest first, but a worker holding a batch only when the idle ones are not enough
    const surplus = [...staying].reverse().sort((a, b) => Number(this.holds(a.name)) - Number(this.holds(b.name)));
    for (const w of surplus.slice(0, Math.max(0, staying.length - this.target))) {
      this.log(`pool shrinks to ${this.target}: draining worker ${w.name}`);
      this.leave(w.name);
    }
    this.sweep();
  }

  private holds(name: string): boolean {
    return this.coordinator.holds?.(name) ?? false;
  }

  private leave(name: string): void {
    this.leaving.add(name);
    this.coordinator.drain(name);
  }

  /** Stops each leaving worker that holds nothing; checks the others again shortly. */
  private sweep(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let waiting = false;
    for (const name of this.leaving) {
      if (this.stopping.has(name)) continue;
      if (!this.coordinator.drain(name)) {
        waiting = true;
        continue;
      }
      this.stopping.add(name);
      void this.backend
        .stopWorker(name)
        .catch((err) => this.log(`could not stop worker ${name}: ${(err as Error)?.message ?? String(err)}`))
        .finally(() => {
          this.stopping.delete(name);
          this.leaving.delete(name);
          this.coordinator.undrain(name);
        });
    }
    if (waiting && !this.closed) this.timer = setTimeout(() => this.sweep(), SWEEP_MS);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
