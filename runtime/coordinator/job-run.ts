import type { WireError } from '../../formats/common/errors.js';
import type { BatchInfo, BatchState, DeadLetter, JobSpec, JobStatus, JobSummary } from '../protocol.js';
import { isTerminal } from '../job-events.js';
import { DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE_MS } from '../job-options.js';
import { BatchClock } from './batch-clock.js';
import type { JournalState } from '../store/job-store.js';
import type { Journal } from '../store/journal.js';
import { BatchRecord, BatchTable, DONE, SKIPPED } from './batch-table.js';
import { RetryQueue } from './retry-queue.js';
import { Rebalance } from './rebalance.js';

export type { BatchRecord } from './batch-table.js';

/**
 * Attempt numbers of a job loaded again (restart, resume) start above all earlier ones: each
 * load reserves them in blocks of this size in the journal (durably) before handing one out.
 */
const ATTEMPTS_PER_LOAD = 1000;
/**
 * One job's batch table and its transitions. Pure bookkeeping plus the journal: the
 * coordinator decides who gets what; this class says what may be dispatched next and
 * accepts only the current lease holder's results (fencing). The batches themselves are a
 * compact `BatchTable`, the batches waiting to go out again a `RetryQueue`, straggler copies and
 * batches asked back a `Rebalance`; this class keeps leases, attempts, outcomes and the journal.
 */
export class JobRun {
  status: JobStatus;
  error?: WireError;
  finishedAt?: string;
  batchesDone = 0;
  itemsDone = 0;
  itemsFailed = 0;
  retries = 0;
  samplesWanted = 3;
  private fresh = 0;
  private readonly retryQueue = new RetryQueue();
  private readonly journal?: Journal;
  private readonly clock = new BatchClock();
  private readonly table: BatchTable;
  /** Straggler copies and batches asked back (the scheduler's `askBacks`). */
  readonly rebalance: Rebalance;
  /**
   * Batches leased and maybe still running: what `overdue()` and `straggler()` look at, so
   * neither scans the whole table. Entries that left 'running' are dropped when met.
   */
  private readonly running = new Set<BatchRecord>();
  private failedBatches = 0;
  private attemptsReserved: number;

  constructor(
    readonly spec: JobSpec,
    replay?: JournalState,
    journal?: Journal,
  ) {
    this.journal = journal;
    this.status = replay?.status ?? 'PENDING';
    this.error = replay?.error;
    this.finishedAt = replay?.finishedAt;
    this.retries = replay?.retries ?? 0;
    // Status records count loads (older journals have no reservations); the reservations
    // and recorded attempts cover a load whose status record was lost.
    const attemptBase = Math.max((replay?.loads ?? 0) * ATTEMPTS_PER_LOAD, replay?.attemptsUpTo ?? 0);
    this.attemptsReserved = attemptBase;
    const table = new BatchTable(spec.jobId, spec.total, spec.batchSize, attemptBase);
    this.table = table;
    this.rebalance = new Rebalance(this, table, this.clock, this.retryQueue);
    journal?.reserve(table.size);
    // Replay in journal order: splits first recreate the single-item batches they made.
    for (const s of replay?.splits ?? []) this.split(s.i, false);
    // by what the journal names, not by batch: a restart mid-job replays a million batches
    replay?.committed.forEach((attempt, i) => {
      if (!table.has(i) || table.stateOf(i) === 'done') return;
      table.settle(i, DONE, attempt);
      this.batchesDone++;
    });
    for (const i of replay?.skipped ?? []) {
      if (!table.has(i)) continue;
      const state = table.stateOf(i);
      if (state === 'done' || state === 'skipped') continue;
      table.settle(i, SKIPPED);
      this.batchesDone++;
    }
    this.itemsDone = replay?.itemsDone ?? 0;
    this.itemsFailed = replay?.deadLetters.length ?? 0;
  }

  /** How many batches the job has, the single-item batches of splits included. */
  get batchCount(): number {
    return this.table.size;
  }

  /**
   * Batch `i`: its live record, or for a batch that has none (never leased, or settled) a
   * copy made for the caller: changing it changes nothing. Undefined for an unknown index.
   */
  batch(i: number): BatchRecord | undefined {
    return this.table.batch(i);
  }

  /** Every batch as `batch(i)` gives it: a record each, so for small jobs (tests) only. */
  batchList(): BatchRecord[] {
    return Array.from({ length: this.table.size }, (_, i) => this.table.batch(i)!);
  }

  get skipsItems(): boolean {
    return this.spec.onItemError === 'skip';
  }

  get maxAttempts(): number {
    return this.spec.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  get batchTimeoutMs(): number {
    return this.spec.batchTimeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS;
  }

  get isFinished(): boolean {
    return isTerminal(this.status);
  }

  /** Every batch is done, skipped, or split into batches that are. */
  get allDone(): boolean {
    return this.batchesDone === this.table.size;
  }

  /**
   * Replaces a batch that kept failing by one batch per item, appended to the table, so one
   * poison item costs one item (`onItemError: 'skip'`).
   */
  split(index: number, journal = true): BatchRecord[] {
    const base = this.table.size;
    const singles = this.table.split(index);
    this.batchesDone++;
    if (journal) this.journal?.append({ e: 'split', i: index, base });
    this.retryQueue.first(...singles);
    return singles;
  }

  /** A single-item batch that kept failing: its item goes to errors.jsonl, the job goes on. */
  skip(index: number, dead: DeadLetter): void {
    this.table.live(index);
    this.table.settle(index, SKIPPED);
    this.batchesDone++;
    this.addDeadLetters([dead], index);
  }

  addDeadLetters(d: DeadLetter[], batch?: number): void {
    if (!d.length) return;
    this.journal?.append({ e: 'dead', d, ...(batch === undefined ? {} : { b: batch }) });
    this.itemsFailed += d.length;
  }

  setStatus(status: JobStatus, error?: WireError): void {
    this.status = status;
    this.error = error;
    const at = new Date().toISOString();
    if (this.isFinished) this.finishedAt = at;
    this.journal?.append({ e: 'status', status, at, ...(error ? { error } : {}) });
    // a failed or cancelled job's reduce step may still be running (pool down): only a succeeded one is compacted
    if (this.isFinished) this.journal?.close(status === 'SUCCEEDED');
  }

  /** A job that ended early: batches still out are abandoned, shown as not done. */
  abandonRunning(): void {
    this.running.clear();
    for (const b of this.table.liveRecords()) {
      if (b.state !== 'running' && b.state !== 'retrying') continue;
      b.state = 'pending';
      b.worker = undefined;
      b.backup = undefined;
    }
  }

  log(line: string): void {
    this.journal?.log(line);
  }

  /** The next batch to lease: retries whose backoff has passed first, then fresh ones in order. */
  next(now: number): BatchRecord | undefined {
    const retry = this.retryQueue.next(now);
    if (retry) return retry;
    while (this.fresh < this.table.size) {
      const b = this.table.pendingAt(this.fresh++);
      if (b) return b;
    }
    return undefined;
  }

  /**
   * About how many batches wait to be handed out (with `now`: only retries already due).
   * Fresh batches count from the dispatch cursor, so those a resumed job had already
   * committed further on are counted too: fair shares and autoscaling need a size, and an
   * exact count would cost a scan of the table on every dispatch.
   */
  backlog(now = Infinity): number {
    return Math.max(0, this.table.size - this.fresh) + this.retryQueue.count(now, (b) => b.index < this.fresh);
  }

  /** When the earliest waiting retry becomes due, if any. */
  nextRetryAt(): number | undefined {
    return this.retryQueue.nextDueAt();
  }

  lease(b: BatchRecord, worker: string, now = Date.now()): void {
    this.table.adopt(b); // a copy from `batch()` of a batch never leased
    this.running.add(b);
    b.state = 'running';
    b.worker = worker;
    b.leasedAt = now;
    b.started = false;
    b.current = this.nextAttempt(b);
  }

  private nextAttempt(b: BatchRecord): number {
    const n = ++b.attempts;
    if (n > this.attemptsReserved) {
      this.attemptsReserved = n + ATTEMPTS_PER_LOAD;
      this.journal?.appendDurably({ e: 'attempts', upTo: this.attemptsReserved });
    }
    return n;
  }

  /** Records that a mapper took the batch; returns it when that is its current attempt (not a straggler's copy). */
  markStarted(index: number, attempt: number): BatchRecord | undefined {
    const b = this.table.liveRecord(index);
    if (b?.state !== 'running') return undefined;
    if (b.current === attempt) {
      b.started = true;
      b.startedAt = Date.now();
      return b;
    }
    if (b.backup?.attempt === attempt) b.backup.started = true;
    return undefined;
  }

  /** The attempt of batch `index` that `worker` holds, if any: the current lease or a straggler's copy. */
  heldBy(index: number, worker: string): { attempt: number; started: boolean } | undefined {
    const b = this.table.liveRecord(index);
    if (b?.state !== 'running') return undefined;
    if (b.worker === worker) return { attempt: b.current, started: b.started };
    if (b.backup?.worker === worker) return { attempt: b.backup.attempt, started: b.backup.started };
    return undefined;
  }

  leaseBackup(b: BatchRecord, worker: string): number {
    b.backup = { attempt: this.nextAttempt(b), worker, started: false };
    return b.attempts;
  }

  /**
   * An attempt went away without a result (its worker was lost, it was given back, it
   * failed) while another attempt of the batch runs: drop it, and when it was the current
   * one, the backup takes over. Returns whether such a pair was found.
   */
  private dropCovered(b: BatchRecord, attempt: number): boolean {
    if (!b.backup) return false;
    if (b.backup.attempt === attempt) {
      b.backup = undefined;
      return true;
    }
    if (b.current !== attempt) return false;
    b.current = b.backup.attempt;
    b.worker = b.backup.worker;
    b.started = b.backup.started;
    b.startedAt = Date.now();
    b.backup = undefined;
    return true;
  }

  /** Started batches running past the job's batch timeout. */
  overdue(now: number): BatchRecord[] {
    const found: BatchRecord[] = [];
    for (const b of this.stillRunning()) if (b.started && now - b.startedAt! > this.batchTimeoutMs) found.push(b);
    return found;
  }

  /** The leased batches still running, dropping from `running` those that are not. */
  *stillRunning(): Generator<BatchRecord> {
    for (const b of this.running) {
      if (b.state === 'running') yield b;
      else this.running.delete(b);
    }
  }

  /**
   * Puts back a batch whose current attempt never started. It goes out again at once, behind
   * the batches already due: one given back for a batch lost with its worker waits behind it.
   */
  release(index: number, attempt: number): boolean {
    const b = this.table.liveRecord(index);
    if (!b || b.state !== 'running') return false;
    if (this.dropCovered(b, attempt)) return false;
    if (b.current !== attempt) return false;
    b.state = 'retrying';
    b.worker = undefined;
    this.retryQueue.behindDue(b, Date.now());
    return true;
  }

  /**
   * Records a result: from the current attempt, or from the backup of a straggler (first
   * finisher wins). Returns false for a stale attempt, whose result must be ignored; else
   * the worker still running the losing attempt, if any.
   */
  commit(index: number, attempt: number, worker: string, items: number): false | { loser?: string; loserAttempt?: number } {
    const b = this.table.liveRecord(index);
    if (!b || b.state !== 'running') return false;
    const isCurrent = b.current === attempt && b.worker === worker;
    const isBackup = b.backup?.attempt === attempt && b.backup.worker === worker;
    if (!isCurrent && !isBackup) return false;
    const loser = isCurrent ? b.backup?.worker : b.worker;
    const loserAttempt = isCurrent ? b.backup?.attempt : b.current;
    this.journal?.append({ e: 'commit', i: index, s: b.start, x: b.end, a: attempt, w: worker, n: items });
    this.clock.committed(items, b.startedAt ? Date.now() - b.startedAt : undefined, isCurrent && b.leasedAt !== undefined ? { worker, leasedAt: b.leasedAt } : undefined);
    this.running.delete(b);
    this.table.settle(index, DONE, attempt);
    this.batchesDone++;
    this.itemsDone += items;
    return loser ? { loser, loserAttempt } : {};
  }

  /**
   * Records a failed attempt. Returns 'retry' (queued with exponential backoff, or with
   * `atOnce` first in line now: a batch lost with its worker did not fail on its own),
   * 'fatal' (the job must fail) or 'stale' (an old attempt: ignored).
   */
  fail(index: number, attempt: number, error: WireError, atOnce = false): 'retry' | 'fatal' | 'split' | 'skip' | 'stale' {
    const b = this.table.liveRecord(index);
    if (!b || b.state !== 'running') return 'stale';
    if (this.dropCovered(b, attempt)) return 'stale'; // the other attempt carries on
    if (b.current !== attempt) return 'stale';
    this.journal?.append({ e: 'fail', i: index, a: attempt, w: b.worker, code: error.code });
    b.lastError = error;
    b.worker = undefined;
    b.failures++;
    if (!error.retryable || b.failures >= this.maxAttempts) {
      if (this.skipsItems && b.end > b.start) return 'split';
      if (this.skipsItems) return 'skip';
      b.state = 'failed';
      this.failedBatches++;
      return 'fatal';
    }
    this.retries++;
    b.state = 'retrying';
    if (atOnce) this.retryQueue.first(b);
    else this.retryQueue.later(b, Date.now() + (this.spec.retryBaseMs ?? DEFAULT_RETRY_BASE_MS) * 2 ** (b.failures - 1));
    return 'retry';
  }

  itemsPerSec(): number {
    return this.clock.itemsPerSec();
  }

  /** Batches each of `workers` serving this job may hold at once (see `BatchClock.credit`). */
  credit(workers = 1): number {
    return this.clock.credit(workers);
  }

  /** Batches that failed for good, and batches waiting for a retry: without a scan of the table. */
  failedCount(): number {
    return this.failedBatches;
  }

  retryingCount(): number {
    return this.retryQueue.retrying();
  }

  /** Every batch in index order, with no record made for those that have none (a reduce plan walks a million). */
  forEachBatch(f: (index: number, start: number, end: number, state: BatchState, attempt: number, b?: BatchRecord) => void): void {
    this.table.forEachBatch(f);
  }

  batchInfo(): BatchInfo[] {
    const info: BatchInfo[] = [];
    this.forEachBatch((index, start, end, state, attempt, b) => {
      info.push({ index, start, end, state: state === 'running' && !b!.started ? 'queued' : state, attempt, ...(b?.worker ? { worker: b.worker } : {}) });
    });
    return info;
  }

  summary(): JobSummary {
    return {
      jobId: this.spec.jobId,
      pool: this.spec.pool,
      status: this.status,
      scriptPath: this.spec.scriptPath,
      createdAt: this.spec.createdAt,
      finishedAt: this.finishedAt,
      batchesTotal: this.table.size,
      batchesDone: this.batchesDone,
      itemsTotal: this.spec.total,
      itemsDone: this.itemsDone,
      itemsFailed: this.itemsFailed,
      retries: this.retries,
      outputs: this.spec.writers.map((w) => w.path),
      error: this.error,
    };
  }
}
