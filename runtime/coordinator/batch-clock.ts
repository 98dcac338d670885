import { MAX_JOB_IN_FLIGHT, MAX_WORKER_CREDIT, WORKER_CREDIT } from '../protocol.js';

/** How much work, in time, a worker should hold queued: enough to cover a round trip to it. */
const QUEUED_WORK_MS = 100;
const RATE_WINDOW_S = 5;
const DURATIONS_KEPT = 200;
/** The median is recomputed after this many new durations, not on every read. */
const MEDIAN_EVERY = 25;

/**
 * A job's timing figures, each O(1) per commit and per read: the items-per-second rate over
 * the last 5 s (per-second buckets; it was an array of every commit trimmed with `shift()`,
 * 28 % of the coordinator at 1,000 workers), the median batch duration (for stragglers), and
 * from it the credit: batches a worker may hold at once.
 */
export class BatchClock {
  /** Items committed in each of the last seconds, by second (`second % buckets.length`). */
  private readonly buckets = new Float64Array(RATE_WINDOW_S + 1);
  private readonly bucketSecond = new Float64Array(RATE_WINDOW_S + 1).fill(-1);
  private firstAt?: number;
  /** The last `DURATIONS_KEPT` durations, a ring (`kept` of them filled); sorted in `scratch`, allocating nothing. */
  private readonly durations = new Float64Array(DURATIONS_KEPT);
  private readonly scratch = new Float64Array(DURATIONS_KEPT);
  private kept = 0;
  private nextDuration = 0;
  private sinceMedian = 0;
  private medianMs = 0;

  /** Per worker: its last report frame with commits (`at`), their count, and since when they ran. */
  private readonly frames = new Map<string, { since: number; at: number; count: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * A batch of `items` committed, `durationMs` after its mapper took it (if known). With
   * `on` (the worker and when it was handed the batch), the duration counted is the
   * batch's share of the worker's time since its previous commit (or since the hand-over,
   * if later): a mapper whose batch runs synchronously reports its start and end in one
   * frame, so start-to-end read 0 ms for a 200 ms sha256 batch, the same as a no-op batch,
   * and the credit went to 128: the whole job was handed out up front, half to each worker,
   * with no balancing left for the tail (and no progress until each worker's end). Commits
   * of one worker arriving in one frame share the time since its previous frame.
   */
  committed(items: number, durationMs?: number, on?: { worker: string; leasedAt: number }): void {
    const t = this.now();
    if (on) durationMs = this.serviceTime(on.worker, on.leasedAt, t);
    this.firstAt ??= t;
    const sec = Math.floor(t / 1000);
    const slot = sec % this.buckets.length;
    if (this.bucketSecond[slot] !== sec) {
      this.bucketSecond[slot] = sec;
      this.buckets[slot] = 0;
    }
    this.buckets[slot] += items;
    if (durationMs === undefined) return;
    this.addDuration(durationMs);
  }

  /**
   * The previous frame's per-batch time once this commit starts a new frame (undefined while
   * commits of the same frame keep arriving: they are counted when the next frame comes).
   */
  private serviceTime(worker: string, leasedAt: number, t: number): number | undefined {
    const f = this.frames.get(worker);
    if (f && t - f.at <= 1) {
      f.count++;
      return undefined;
    }
    this.frames.set(worker, { since: f ? Math.max(f.at, leasedAt) : leasedAt, at: t, count: 1 });
    if (!f) return undefined;
    const each = (f.at - f.since) / f.count;
    for (let i = 1; i < f.count; i++) this.addDuration(each);
    return each;
  }

  private addDuration(durationMs: number): void {
    this.durations[this.nextDuration] = durationMs;
    this.kept = Math.min(this.kept + 1, DURATIONS_KEPT);
    this.nextDuration = (this.nextDuration + 1) % DURATIONS_KEPT;
    if (++this.sinceMedian >= MEDIAN_EVERY || this.kept < MEDIAN_EVERY) this.updateMedian();
  }

  /**
   * A typed array's own sort: sorting a copy of a `number[]` with a comparator boxed every
   * compared double: about a tenth of the coordinator's allocations at 1,000 workers (docs/bench.md).
   */
  private updateMedian(): void {
    this.sinceMedian = 0;
    const n = this.kept;
    this.scratch.set(this.durations);
    const sorted = n < DURATIONS_KEPT ? this.scratch.subarray(0, n).sort() : this.scratch.sort();
    this.medianMs = sorted[n >> 1] ?? 0;
  }

  /** The median batch duration over the last 200 commits (0 before the first). */
  get median(): number {
    return this.medianMs;
  }

  /** Some batch's duration is known (before, `median` is 0 as for no-op batches). */
  get timed(): boolean {
    return this.kept > 0;
  }

  /** Items per second since the start of the second 5 s ago (or since the first commit). */
  itemsPerSec(): number {
    if (this.firstAt === undefined) return 0;
    const t = this.now();
    const sec = Math.floor(t / 1000);
    let items = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      const s = this.bucketSecond[i];
      if (s <= sec && s >= sec - RATE_WINDOW_S) items += this.buckets[i];
    }
    const dt = (t - Math.max(this.firstAt, (sec - RATE_WINDOW_S) * 1000)) / 1000;
    return dt > 0 ? items / dt : 0;
  }

  /**
   * Batches a worker may hold: enough queued work to hide the round trip for short batches
   * (a fixed 2 bounded no-op dispatch by latency, not CPU), 2 until durations are known, and
   * 2 for batches of 50 ms or more, whose prefetched input would only take memory; for each
   * of `workers` serving the job, at most its share of `MAX_JOB_IN_FLIGHT`.
   */
  credit(workers = 1): number {
    if (this.kept < 5) return WORKER_CREDIT;
    // a median of 0: no-op batches whose start and end reach the coordinator in one frame
    const perWorker = Math.min(MAX_WORKER_CREDIT, Math.floor(MAX_JOB_IN_FLIGHT / Math.max(1, workers)));
    return Math.max(WORKER_CREDIT, Math.min(perWorker, Math.floor(QUEUED_WORK_MS / Math.max(this.medianMs, QUEUED_WORK_MS / MAX_WORKER_CREDIT))));
  }
}
