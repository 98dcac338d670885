import type { WireError } from '../../formats/common/errors.js';
import type { BatchState } from '../protocol.js';

export interface BatchRecord {
  index: number;
  start: number;
  end: number;
  state: BatchState;
  /** The last attempt number handed out (they never repeat, across restarts too). */
  attempts: number;
  /** The attempt of the current lease (its holder is `worker`). */
  current: number;
  /** A second attempt of a straggling batch on another worker; the first to finish wins. */
  backup?: { attempt: number; worker: string; started: boolean };
  /** Failed attempts, counted against `maxAttempts`; a batch given back untouched is not one. */
  failures: number;
  /** The mapper has taken the current attempt's batch (it is no longer just prefetched). */
  started: boolean;
  startedAt?: number;
  /** When the current attempt was handed to `worker` (BatchClock's service time). */
  leasedAt?: number;
  worker?: string;
  /** Its holder was asked to give it back unstarted (`Rebalance.askBack`): a batch is asked back once, whatever its attempts. */
  askedBack?: boolean;
  notBefore: number;
  lastError?: WireError;
}

/** Batch states as the compact table stores them (a byte per batch). */
const STATES: readonly BatchState[] = ['pending', 'running', 'retrying', 'done', 'skipped', 'split', 'failed'];
const PENDING = 0;
export const DONE = 3;
export const SKIPPED = 4;
const SPLIT = 5;

/**
 * A job's batches: a `BatchRecord` only while a batch is live, from its first lease (or its
 * split) until it is done, skipped or split. The rest is compact: the job is index ranges
 * (`batchSize` each, then the single-item batches of each split, appended), and a settled
 * batch keeps a state byte and its last attempt number; a 1,000,000-batch job holds 5 MB
 * there plus the batches in flight, not a million objects.
 */
export class BatchTable {
  /** Batches of the job before any split: `[i * batchSize, …]`. */
  private readonly baseCount: number;
  private count: number;
  /** State of each batch without a record (index into `STATES`). */
  private states: Uint8Array;
  /** The last attempt of each batch without a record: the winner of a done one, 0 if never leased. */
  private attemptOf: Uint32Array;
  /** The live batches, by index. */
  private readonly records = new Map<number, BatchRecord>();
  /** Splits in the order they happened: the batches `base…base + end - start` hold items `start…end`. */
  private readonly splitRanges: { base: number; start: number }[] = [];

  constructor(
    private readonly jobId: string,
    private readonly total: number,
    private readonly batchSize: number,
    /** Attempt numbers of this load start above it (see JobRun). */
    private readonly attemptBase: number,
  ) {
    this.baseCount = total > 0 ? Math.ceil(total / batchSize) : 0;
    this.count = this.baseCount;
    this.states = new Uint8Array(this.count);
    this.attemptOf = new Uint32Array(this.count);
  }

  /** How many batches the job has, the single-item batches of splits included. */
  get size(): number {
    return this.count;
  }

  has(i: number): boolean {
    return Number.isInteger(i) && i >= 0 && i < this.count;
  }

  stateOf(i: number): BatchState {
    return this.records.get(i)?.state ?? STATES[this.states[i]];
  }

  /** The live record of batch `i`, if it has one. */
  liveRecord(i: number): BatchRecord | undefined {
    return this.records.get(i);
  }

  liveRecords(): IterableIterator<BatchRecord> {
    return this.records.values();
  }

  /** Makes `b` (a copy from `batch()` of a batch never leased) the live record of its batch. */
  adopt(b: BatchRecord): void {
    if (this.records.get(b.index) !== b) this.records.set(b.index, b);
  }

  /** Batch `i`'s live record when it waits for its first lease, made now if it has none. */
  pendingAt(i: number): BatchRecord | undefined {
    const b = this.records.get(i);
    if (b ? b.state === 'pending' : this.states[i] === PENDING) return b ?? this.live(i);
    return undefined;
  }

  /** Items `[start, end]` of batch `i` (a valid index). */
  private range(i: number): [number, number] {
    if (i < this.baseCount) {
      const start = i * this.batchSize;
      return [start, Math.min(start + this.batchSize - 1, this.total - 1)];
    }
    // the last split whose singles start at or before i
    const r = this.splitRanges;
    let lo = 0;
    let hi = r.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (r[mid].base <= i) lo = mid;
      else hi = mid - 1;
    }
    const item = r[lo].start + (i - r[lo].base);
    return [item, item];
  }

  /**
   * Batch `i`: its live record, or for a batch that has none (never leased, or settled) a
   * copy made for the caller: changing it changes nothing. Undefined for an unknown index.
   */
  batch(i: number): BatchRecord | undefined {
    const live = this.records.get(i);
    if (live || !this.has(i)) return live;
    const [start, end] = this.range(i);
    const attempt = this.attemptOf[i];
    const b = this.record(i, start, end);
    b.state = STATES[this.states[i]];
    b.current = attempt;
    b.attempts = Math.max(this.attemptBase, attempt);
    return b;
  }

  /** The live record of batch `i`, made when it is first needed (lease, split, skip). */
  live(i: number): BatchRecord {
    let b = this.records.get(i);
    if (b) return b;
    if (!this.has(i)) throw new Error(`job ${this.jobId} has no batch ${i} (it has ${this.count})`);
    b = this.batch(i)!;
    this.records.set(i, b);
    return b;
  }

  /** Batch `i` is done, skipped or split: its record (if any) goes, its state byte and last attempt stay. */
  settle(i: number, state: number, attempt?: number): void {
    const b = this.records.get(i);
    this.states[i] = state;
    this.attemptOf[i] = attempt ?? b?.current ?? this.attemptOf[i];
    if (!b) return;
    // a record still held elsewhere (the retry queue, `running`) reads as settled
    b.state = STATES[state];
    if (attempt !== undefined) b.current = attempt;
    b.worker = undefined;
    b.backup = undefined;
    this.records.delete(i);
  }

  private record(index: number, start: number, end: number): BatchRecord {
    // Every field from the start: one hidden class, no property store added per batch as it is leased
    return { index, start, end, state: 'pending', attempts: this.attemptBase, current: 0, backup: undefined, failures: 0, started: false, startedAt: undefined, worker: undefined, notBefore: 0, lastError: undefined };
  }

  /**
   * Settles batch `index` as split and appends one batch per item of it; returns them (live).
   * `base` of the split is the table's size before.
   */
  split(index: number): BatchRecord[] {
    const b = this.live(index);
    const base = this.count;
    this.settle(index, SPLIT);
    this.grow(base + b.end - b.start + 1);
    this.splitRanges.push({ base, start: b.start });
    const singles: BatchRecord[] = [];
    for (let i = b.start; i <= b.end; i++) {
      const single = this.record(this.count++, i, i);
      this.records.set(single.index, single);
      singles.push(single);
    }
    return singles;
  }

  /** Room for batches up to `count` in the compact table (splits append batches). */
  private grow(count: number): void {
    if (count <= this.states.length) return;
    const size = Math.max(count, Math.ceil(this.states.length * 1.5));
    const states = new Uint8Array(size);
    states.set(this.states);
    const attempts = new Uint32Array(size);
    attempts.set(this.attemptOf);
    this.states = states;
    this.attemptOf = attempts;
  }

  /** Every batch in index order, with no record made for those that have none (a reduce plan walks a million). */
  forEachBatch(f: (index: number, start: number, end: number, state: BatchState, attempt: number, b?: BatchRecord) => void): void {
    for (let i = 0; i < this.count; i++) {
      const b = this.records.get(i);
      if (b) {
        f(i, b.start, b.end, b.state, b.current, b);
        continue;
      }
      const [start, end] = this.range(i);
      f(i, start, end, STATES[this.states[i]], this.attemptOf[i]);
    }
  }
}
