import type { BatchRecord } from './batch-table.js';

/**
 * A job's batches waiting to go out again, before any fresh one: retries (due at their
 * `notBefore`, in that order), batches given back unstarted, and the single-item batches of a
 * split. Entries whose batch has left 'pending'/'retrying' meanwhile are skipped when met.
 */
export class RetryQueue {
  private queue: BatchRecord[] = [];

  /** The first batch due at `now`, taken out of the queue. */
  next(now: number): BatchRecord | undefined {
    while (this.queue.length && !waiting(this.queue[0])) this.queue.shift();
    if (this.queue.length && this.queue[0].notBefore <= now) return this.queue.shift();
    return undefined;
  }

  /** First in line, due now, in the order given: a batch lost with its worker, or the singles of a split. */
  first(...batches: BatchRecord[]): void {
    for (const b of batches) b.notBefore = 0;
    this.queue.unshift(...batches);
  }

  /** Due now, but behind the batches already due (a batch given back unstarted waits behind a lost one). */
  behindDue(b: BatchRecord, now: number): void {
    b.notBefore = 0;
    let at = 0;
    while (at < this.queue.length && this.queue[at].notBefore <= now) at++;
    this.queue.splice(at, 0, b);
  }

  /** Due at `at` (a retry's backoff). */
  later(b: BatchRecord, at: number): void {
    b.notBefore = at;
    this.queue.push(b);
    this.queue.sort((x, y) => x.notBefore - y.notBefore);
  }

  /** Waiting batches due at `now` (all of them with no `now`) for which `counts` holds. */
  count(now = Infinity, counts: (b: BatchRecord) => boolean = () => true): number {
    let n = 0;
    for (const b of this.queue) if (waiting(b) && b.notBefore <= now && counts(b)) n++;
    return n;
  }

  /** When the earliest waiting retry becomes due, if any. */
  nextDueAt(): number | undefined {
    return this.queue[0]?.notBefore;
  }

  /** Batches waiting in state 'retrying' (failed, or given back unstarted), each once. */
  retrying(): number {
    return new Set(this.queue.filter((b) => b.state === 'retrying')).size;
  }
}

function waiting(b: BatchRecord): boolean {
  return b.state === 'pending' || b.state === 'retrying';
}
