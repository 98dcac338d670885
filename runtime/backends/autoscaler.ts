/** What the pool has to do now, as the coordinator sees it. */
export interface PoolLoad {
  /** Batches of unfinished jobs not handed out yet (retries waiting for their backoff too). */
  pending: number;
  /** Workers holding a batch. */
  holding: number;
}

/** An autoscaled pool's size now and why, for `pool status`. */
export interface SizeDecision {
  wanted: number;
  reason: string;
}

export interface AutoscaleRange {
  min: number;
  max: number;
}

/**
 * When an autoscaled pool grows and shrinks. It wants a worker per busy worker plus one
 * per pending batch, between `min` and `max`. It grows at once; it shrinks only once it has
 * wanted fewer workers for a whole `idleDelayMs` (a burst of short jobs does not make it
 * stop and start workers), and never below the workers holding batches. Pure: the caller
 * owns the clock and the pool.
 */
export class AutoscalePolicy {
  private surplusSince?: number;

  constructor(
    public range: AutoscaleRange,
    public idleDelayMs: number,
  ) {}

  decide(current: number, load: PoolLoad, now: number): SizeDecision {
    const { min, max } = this.range;
    const need = Math.min(max, Math.max(min, load.holding + load.pending));
    const what = `${load.pending} batch(es) pending, ${load.holding} worker(s) busy`;
    if (need >= current) this.surplusSince = undefined;
    if (need > current) return { wanted: need, reason: `growing to ${need} (max ${max}): ${what}` };
    if (need === current) {
      if (current === max && load.pending > 0) return { wanted: current, reason: `at max ${max}: ${what}` };
      if (current === min && !load.pending && !load.holding) return { wanted: current, reason: `at min ${min}: nothing to run` };
      return { wanted: current, reason: `${current} worker(s) for the work there is: ${what}` };
    }
    this.surplusSince ??= now;
    const due = this.surplusSince + this.idleDelayMs;
    if (now >= due) {
      this.surplusSince = now; // a further shrink waits its own delay
      return { wanted: need, reason: `shrinking to ${need} (min ${min}): ${current - need} worker(s) idle for ${seconds(this.idleDelayMs)} (idle_delay); ${what}` };
    }
    return {
      wanted: current,
      reason: `keeping ${current}: ${current - need} worker(s) idle since ${new Date(this.surplusSince).toISOString()}; shrinking to ${need} at ${new Date(due).toISOString()} (idle_delay ${seconds(this.idleDelayMs)}); ${what}`,
    };
  }
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

const TICK_MS = 500;

/** What the autoscaler drives: the pool sizer (pool-sizer.ts). */
export interface Resizable {
  /** The size it keeps the pool at now (a pool that was not autoscaled starts from there). */
  readonly size: number;
  resize(workers: number): void;
}

/**
 * Applies an `AutoscalePolicy` to a pool: checks the coordinator's load every half second
 * and resizes through the pool sizer, whose shrink drains workers and stops only those
 * holding no batch.
 */
export class Autoscaler {
  private readonly timer: NodeJS.Timeout;
  private current: number;
  private last: SizeDecision;

  constructor(
    private readonly sizer: Resizable,
    private readonly load: () => PoolLoad,
    private readonly policy: AutoscalePolicy,
    private readonly log: (line: string) => void,
  ) {
    const { min, max } = policy.range;
    this.current = Math.min(max, Math.max(min, sizer.size));
    this.last = { wanted: this.current, reason: `starting at ${this.current} (min ${min}, max ${max})` };
    this.sizer.resize(this.current);
    this.tick();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** `pool apply` changed the range or the delay: takes effect at once, within the new range. */
  update(range: AutoscaleRange, idleDelayMs: number): void {
    this.policy.range = range;
    this.policy.idleDelayMs = idleDelayMs;
    const clamped = Math.min(range.max, Math.max(range.min, this.current));
    if (clamped !== this.current) this.apply({ wanted: clamped, reason: `pool apply: range ${range.min}–${range.max}` });
    this.tick();
  }

  /** The size it wants and why. */
  view(): SizeDecision & AutoscaleRange {
    return { ...this.last, ...this.policy.range };
  }

  private tick(): void {
    const d = this.policy.decide(this.current, this.load(), Date.now());
    if (d.wanted !== this.current) this.apply(d);
    else this.last = d;
  }

  private apply(d: SizeDecision): void {
    this.log(`autoscaling from ${this.current} to ${d.wanted} worker(s): ${d.reason}`);
    this.current = d.wanted;
    this.last = d;
    this.sizer.resize(d.wanted);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
