import type { BatchClock } from './batch-clock.js';
import type { BatchRecord, BatchTable } from './batch-table.js';
import type { RetryQueue } from './retry-queue.js';

/** A batch is a straggler once it has run this many times the median batch (and 2 s). */
const STRAGGLER_FACTOR = 3;
const STRAGGLER_MIN_MS = 2000;
/** The longest a search that found no straggler is trusted (the median, hence the limit, moves). */
const STRAGGLER_RECHECK_MS = 500;
/**
 * Batches queued on a worker are asked back (`askBack`) only when the job's median batch takes
 * at least this long: shorter ones are done before a give-back's round trip would be.
 */
const GIVE_BACK_MIN_MS = 10;

/** What rebalancing reads of its job besides the batch table, the clock and the retry queue (`JobRun`). */
export interface JobCursor {
  /** The leased batches still running (a batch that left 'running' is not among them). */
  stillRunning(): Iterable<BatchRecord>;
  /** About how many batches wait to be handed out, retries due by `now` included (`JobRun.backlog`). */
  backlog(now: number): number;
}

/**
 * Work of one job moved between workers where it would wait: near the end of a job, a copy
 * of a straggler for a worker with nothing left to do (`straggler`, then `JobRun.leaseBackup`);
 * batches queued unstarted on a worker asked back (`queuedOn`, `askBack`), for an idle worker in
 * the job's tail (`inTail`), for a failed batch that no worker has room for
 * (`retriesWaiting`), or from a worker fair share moves to another job (`longBatches`). The
 * scheduler decides who is asked; this class says what may be.
 */
export class Rebalance {
  private noStragglerBefore = 0;
  /** Batches asked back and the attempt asked for: until given back or started, what `retriesWaiting` subtracts. */
  private readonly askedBack = new Map<BatchRecord, number>();

  constructor(
    private readonly job: JobCursor,
    private readonly table: BatchTable,
    private readonly clock: BatchClock,
    private readonly retryQueue: RetryQueue,
  ) {}

  /**
   * Near the end of a job (nothing left to hand out), the batch that has run longest past
   * `STRAGGLER_FACTOR` times the median batch, if it has no backup yet and is not `worker`'s.
   * A search that finds none says when the first could appear, and until then (at most
   * `STRAGGLER_RECHECK_MS`) none is searched for: at the tail of a job every commit asks,
   * for every idle worker, and each search looks at every batch in flight.
   */
  straggler(now: number, worker: string): BatchRecord | undefined {
    if (now < this.noStragglerBefore) return undefined;
    if (this.job.backlog(Infinity) > 0) return undefined;
    const limit = Math.max(STRAGGLER_MIN_MS, STRAGGLER_FACTOR * this.clock.median);
    let pick: BatchRecord | undefined;
    let due = now + STRAGGLER_RECHECK_MS;
    for (const b of this.job.stillRunning()) {
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

  /**
   * The batches `holder` has queued that its mapper has not started, latest first, that may be
   * asked back: none asked back before in its life (two workers could otherwise pass a batch
   * to and fro), none with a straggler's copy.
   */
  queuedOn(holder: string, leased: Iterable<number>): BatchRecord[] {
    const queued: BatchRecord[] = [];
    for (const i of leased) {
      const b = this.table.liveRecord(i);
      if (b?.state === 'running' && b.worker === holder && !b.started && !b.backup && !b.askedBack) queued.push(b);
    }
    return queued.sort((a, b) => b.index - a.index);
  }

  /**
   * Its holder is asked to give `b` back: it answers `batchReleased` (then `release`), or
   * starts it meanwhile and runs it as usual.
   */
  askBack(b: BatchRecord): void {
    b.askedBack = true;
    this.askedBack.set(b, b.current);
  }

  /**
   * Batches that failed (a batch lost with its worker is one), are due now, and are still
   * waiting after the hand-out: no worker serving the job had room. Less the batches asked back
   * for them and not given back yet. None when batches are too short to be worth asking back.
   */
  retriesWaiting(now: number): number {
    if (!this.worthAskingBack) return 0;
    let n = this.retryQueue.count(now, (b) => b.failures > 0 && !b.askedBack);
    for (const [b, attempt] of this.askedBack) {
      if (b.state === 'running' && b.current === attempt && !b.started) n--;
      else this.askedBack.delete(b);
    }
    return Math.max(0, n);
  }

  /**
   * Nothing is left to hand out, and batches are known to be long enough to be worth asking
   * back (a job too short to time its batches has no tail worth a round trip).
   */
  inTail(now: number): boolean {
    return this.longBatches && this.job.backlog(now) === 0;
  }

  /** The job's median batch is known to be long enough for a give-back's round trip. */
  get longBatches(): boolean {
    return this.clock.median >= GIVE_BACK_MIN_MS;
  }

  /** The job's median batch is long enough for a give-back's round trip, or none has been timed yet (a worker lost early). */
  private get worthAskingBack(): boolean {
    return this.longBatches || !this.clock.timed;
  }
}
