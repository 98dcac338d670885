// The JobRun of main at f496c1c (a BatchRecord per batch, built up front), kept unchanged as the
// reference the compact batch table is checked against (test/unit/job-run-compact.test.ts).
import type { WireError } from '../../formats/common/errors.js';
import type { BatchInfo, BatchState, DeadLetter, JobSpec, JobStatus, JobSummary } from '../../runtime/protocol.js';
import { isTerminal } from '../../runtime/job-events.js';
import { DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE_MS } from '../../runtime/job-options.js';
import { BatchClock } from '../../runtime/coordinator/batch-clock.js';
import { Journal } from '../../runtime/store/journal.js';
import { JournalState } from '../../runtime/store/job-store.js';

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
  worker?: string;
  notBefore: number;
  lastError?: WireError;
}

/** A batch is a straggler once it has run this many times the median batch (and 2 s). */
const STRAGGLER_FACTOR = 3;
const STRAGGLER_MIN_MS = 2000;
/** The longest a search that found no straggler is trusted (the median, hence the limit, moves). */
const STRAGGLER_RECHECK_MS = 500;
/**
 * Attempt numbers of a job loaded again (restart, resume) start above all earlier ones: each
 * load reserves them in blocks of this size in the journal (durably) before handing one out.
 */
const ATTEMPTS_PER_LOAD = 1000;

/**
 * One job's batch table and its transitions. Pure bookkeeping plus the journal: the
 * coordinator decides who gets what; this class says what may be dispatched next and
 * accepts only the current lease holder's results (fencing).
 */
export class ReferenceJobRun {
  status: JobStatus;
  error?: WireError;
  finishedAt?: string;
  readonly batches: BatchRecord[] = [];
  batchesDone = 0;
  itemsDone = 0;
  itemsFailed = 0;
  retries = 0;
  samplesWanted = 3;
  private fresh = 0;
  private retryQueue: BatchRecord[] = [];
  private readonly journal?: Journal;
  private readonly clock = new BatchClock();
  /**
   * Batches leased and maybe still running: what `overdue()` and `straggler()` look at, so
   * neither scans the whole table. Entries that left 'running' are dropped when met.
   */
  private readonly running = new Set<BatchRecord>();
  private failedBatches = 0;
  private noStragglerBefore = 0;
  private readonly attemptBase: number;
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
    this.attemptBase = Math.max((replay?.loads ?? 0) * ATTEMPTS_PER_LOAD, replay?.attemptsUpTo ?? 0);
    this.attemptsReserved = this.attemptBase;
    for (let start = 0, i = 0; start < spec.total; start += spec.batchSize, i++) {
      const end = Math.min(start + spec.batchSize - 1, spec.total - 1);
      this.batches.push(this.record(i, start, end));
    }
    // Replay in journal order: splits first recreate the single-item batches they made.
    for (const s of replay?.splits ?? []) this.split(s.i, false);
    // by what the journal names, not by batch: a restart mid-job replays a million batches
    for (const [i, attempt] of replay?.committed ?? []) {
      const b = this.batches[i];
      if (!b || b.state === 'done') continue;
      b.state = 'done';
      b.current = attempt;
      this.batchesDone++;
    }
    for (const i of replay?.skipped ?? []) {
      const b = this.batches[i];
      if (!b || b.state === 'done' || b.state === 'skipped') continue;
      b.state = 'skipped';
      this.batchesDone++;
    }
    this.itemsDone = replay?.itemsDone ?? 0;
    this.itemsFailed = replay?.deadLetters.length ?? 0;
  }

  private record(index: number, start: number, end: number): BatchRecord {
    // Every field from the start: one hidden class, no property store added per batch as it is leased (a million records)
    return { index, start, end, state: 'pending', attempts: this.attemptBase, current: 0, backup: undefined, failures: 0, started: false, startedAt: undefined, worker: undefined, notBefore: 0, lastError: undefined };
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
    return this.batchesDone === this.batches.length;
  }

  /**
   * Replaces a batch that kept failing by one batch per item, appended to the table, so one
   * poison item costs one item (`onItemError: 'skip'`).
   */
  split(index: number, journal = true): BatchRecord[] {
    const b = this.batches[index];
    const base = this.batches.length;
    b.state = 'split';
    b.worker = undefined;
    this.batchesDone++;
    const singles: BatchRecord[] = [];
    for (let i = b.start; i <= b.end; i++) {
      const single = this.record(this.batches.length, i, i);
      this.batches.push(single);
      singles.push(single);
    }
    if (journal) this.journal?.append({ e: 'split', i: index, base });
    this.retryQueue.unshift(...singles);
    return singles;
  }

  /** A single-item batch that kept failing: its item goes to errors.jsonl, the job goes on. */
  skip(index: number, dead: DeadLetter): void {
    const b = this.batches[index];
    b.state = 'skipped';
    b.worker = undefined;
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
    for (const b of this.batches) {
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
    while (this.retryQueue.length && !['pending', 'retrying'].includes(this.retryQueue[0].state)) this.retryQueue.shift();
    if (this.retryQueue.length && this.retryQueue[0].notBefore <= now) return this.retryQueue.shift();
    while (this.fresh < this.batches.length) {
      const b = this.batches[this.fresh++];
      if (b.state === 'pending') return b;
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
    let n = Math.max(0, this.batches.length - this.fresh);
    for (const b of this.retryQueue) if ((b.state === 'pending' || b.state === 'retrying') && b.notBefore <= now && b.index < this.fresh) n++;
    return n;
  }

  /** When the earliest waiting retry becomes due, if any. */
  nextRetryAt(): number | undefined {
    return this.retryQueue[0]?.notBefore;
  }

  lease(b: BatchRecord, worker: string): void {
    this.running.add(b);
    b.state = 'running';
    b.worker = worker;
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
    const b = this.batches[index];
    if (b?.state !== 'running') return undefined;
    if (b.current === attempt) {
      b.started = true;
      b.startedAt = Date.now();
      return b;
    }
    if (b.backup?.attempt === attempt) b.backup.started = true;
    return undefined;
  }

  /**
   * Near the end of a job (nothing left to hand out), the batch that has run longest past
   * `STRAGGLER_FACTOR` times the median batch, if it has no backup yet and is not `worker`'s.
   * A search that finds none says when the first could appear, and until then (at most
   * `STRAGGLER_RECHECK_MS`) none is searched for: at the tail of a job every commit asks,
   * for every idle worker, and each search looks at every batch in flight.
   */
  straggler(now: number, worker: string): BatchRecord | undefined {
    if (now < this.noStragglerBefore) return undefined;
    if (this.fresh < this.batches.length || this.retryQueue.some((b) => b.state === 'pending' || b.state === 'retrying')) return undefined;
    const limit = Math.max(STRAGGLER_MIN_MS, STRAGGLER_FACTOR * this.clock.median);
    let pick: BatchRecord | undefined;
    let due = now + STRAGGLER_RECHECK_MS;
    for (const b of this.stillRunning()) {
      if (!b.started || b.backup) continue;
      const at = b.startedAt! + limit;
      if (now <= at || b.worker === worker) {
        due = Math.min(due, now <= at ? at : now); // one on `worker` is a straggler for the next worker asked
        continue;
      }
      if (!pick || b.startedAt! < pick.startedAt!) pick = b;
    }
    if (!pick) this.noStragglerBefore = due;
    return pick;
  }

  /** The attempt of batch `index` that `worker` holds, if any: the current lease or a straggler's copy. */
  heldBy(index: number, worker: string): { attempt: number; started: boolean } | undefined {
    const b = this.batches[index];
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
  private *stillRunning(): Generator<BatchRecord> {
    for (const b of this.running) {
      if (b.state === 'running') yield b;
      else this.running.delete(b);
    }
  }

  /**
   * Puts back a batch whose current attempt never started; it goes out again at once, behind
   * the batches already due (changed since f496c1c, where it went first: a batch given back
   * for a batch lost with its worker waits behind it).
   */
  release(index: number, attempt: number): boolean {
    const b = this.batches[index];
    if (!b || b.state !== 'running') return false;
    if (this.dropCovered(b, attempt)) return false;
    if (b.current !== attempt) return false;
    b.state = 'retrying';
    b.worker = undefined;
    b.notBefore = 0;
    const now = Date.now();
    let at = 0;
    while (at < this.retryQueue.length && this.retryQueue[at].notBefore <= now) at++;
    this.retryQueue.splice(at, 0, b);
    return true;
  }

  /**
   * Records a result: from the current attempt, or from the backup of a straggler (first
   * finisher wins). Returns false for a stale attempt, whose result must be ignored; else
   * the worker still running the losing attempt, if any.
   */
  commit(index: number, attempt: number, worker: string, items: number): false | { loser?: string; loserAttempt?: number } {
    const b = this.batches[index];
    if (!b || b.state !== 'running') return false;
    const isCurrent = b.current === attempt && b.worker === worker;
    const isBackup = b.backup?.attempt === attempt && b.backup.worker === worker;
    if (!isCurrent && !isBackup) return false;
    const loser = isCurrent ? b.backup?.worker : b.worker;
    const loserAttempt = isCurrent ? b.backup?.attempt : b.current;
    this.journal?.append({ e: 'commit', i: index, s: b.start, x: b.end, a: attempt, w: worker, n: items });
    this.clock.committed(items, b.startedAt ? Date.now() - b.startedAt : undefined);
    this.running.delete(b);
    b.state = 'done';
    b.current = attempt;
    b.backup = undefined;
    b.worker = undefined;
    b.startedAt = undefined; // a heap number each: a million finished batches would keep 16 MB of them
    this.batchesDone++;
    this.itemsDone += items;
    return loser ? { loser, loserAttempt } : {};
  }

  /**
   * Records a failed attempt. Returns 'retry' (queued with exponential backoff), 'fatal'
   * (the job must fail) or 'stale' (an old attempt: ignored).
   */
  fail(index: number, attempt: number, error: WireError): 'retry' | 'fatal' | 'split' | 'skip' | 'stale' {
    const b = this.batches[index];
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
    b.notBefore = Date.now() + (this.spec.retryBaseMs ?? DEFAULT_RETRY_BASE_MS) * 2 ** (b.failures - 1);
    this.retryQueue.push(b);
    this.retryQueue.sort((x, y) => x.notBefore - y.notBefore);
    return 'retry';
  }

  itemsPerSec(): number {
    return this.clock.itemsPerSec();
  }

  /** Batches a worker may hold at once for this job (see `BatchClock.credit`). */
  credit(): number {
    return this.clock.credit();
  }

  /** Batches that failed for good, and batches waiting for a retry: without a scan of the table. */
  failedCount(): number {
    return this.failedBatches;
  }

  retryingCount(): number {
    return new Set(this.retryQueue.filter((b) => b.state === 'retrying')).size;
  }

  batchInfo(): BatchInfo[] {
    return this.batches.map((b) => ({ index: b.index, start: b.start, end: b.end, state: b.state === 'running' && !b.started ? 'queued' : b.state, attempt: b.current, ...(b.worker ? { worker: b.worker } : {}) }));
  }

  summary(): JobSummary {
    return {
      jobId: this.spec.jobId,
      pool: this.spec.pool,
      status: this.status,
      scriptPath: this.spec.scriptPath,
      createdAt: this.spec.createdAt,
      finishedAt: this.finishedAt,
      batchesTotal: this.batches.length,
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
