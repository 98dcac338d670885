import { SkybatchError, WireError, toWireError } from '../../formats/common/errors.js';
import type { JobEvent, WorkerMessage } from '../protocol.js';
import type { BatchRecord, JobRun } from './job-run.js';
import { refuse } from './worker-replies.js';
import { WorkerEntry, WorkerTable, holdsAttempt } from './worker-table.js';

/** The reports of a batch's run that a worker sends. */
export type BatchReport = Extract<WorkerMessage, { type: 'batchStarted' | 'batchDone' | 'batchReleased' | 'batchFailed' }>;

/** What the coordinator lends to the outcome handlers: they settle batches, it runs the jobs. */
export interface OutcomePort {
  readonly workers: WorkerTable;
  emit(event: JobEvent): void;
  /** Whether anyone takes the job's per-batch events (see `EventHub.wantsBatchEvents`). */
  wantsBatchEvents(jobId: string): boolean;
  /** A job's counts changed: a progress event is due. */
  progress(run: JobRun): void;
  /** A batch of the job was committed (its results are in their files). */
  committed(run: JobRun): void;
  /** Every batch of the job is settled: reduce it. */
  finish(run: JobRun): void;
  fail(run: JobRun, error: WireError): void;
  /** A batch waits for its retry: set the timer. */
  retryLater(): void;
  /** A worker may have room for more: schedule (once per turn of the event loop). */
  pumpSoon(): void;
  job(jobId: string): JobRun | undefined;
  /** The coordinator's own log, for refused reports. */
  log(line: string): void;
}

/**
 * What a batch's outcome does to its job and to the workers holding it: a commit (first
 * finisher of a straggler's copies wins, the loser is stopped), a failure (retry, split,
 * skip or fail the job), a batch given back, a worker lost, a batch past its timeout, a
 * stalled worker. The coordinator routes the reports here and decides what runs next.
 */
export class BatchOutcomes {
  constructor(private readonly port: OutcomePort) {}

  /** A worker's report on a batch: applied when `w` holds that attempt (see `holdsAttempt`), otherwise refused. */
  report(w: WorkerEntry, msg: BatchReport): void {
    const run = this.port.job(msg.jobId);
    if (!holdsAttempt(w, run, msg)) {
      refuse(w, this.port.log, `${msg.type} for job ${msg.jobId}, batch ${msg.index}, attempt ${msg.attempt}: worker ${w.name} does not hold that attempt (never leased to it, taken back, or the job ended)`);
      return;
    }
    if (msg.type === 'batchStarted') {
      const b = run.markStarted(msg.index, msg.attempt);
      if (b && this.port.wantsBatchEvents(msg.jobId)) this.port.emit({ kind: 'batch', jobId: msg.jobId, index: b.index, start: b.start, end: b.end, state: 'running', worker: w.name, attempt: msg.attempt });
      return;
    }
    // an agent leaves out the start of a batch done in the same tick: the commit is both
    if (msg.type === 'batchDone' && !run.batch(msg.index)?.started) run.markStarted(msg.index, msg.attempt);
    this.port.workers.unlease(w, msg.index);
    if (msg.type === 'batchReleased') {
      this.release(run, msg.index, msg.attempt, msg.prefetchError && { worker: w.name, error: msg.prefetchError });
    } else if (msg.type === 'batchFailed') {
      if (!run.isFinished) this.failed(run, msg.index, msg.attempt, { ...msg.error, context: { ...msg.error.context, worker: w.name } }, msg.input);
    } else {
      if (run.isFinished || !this.done(w, run, msg)) return;
      if (run.allDone) {
        this.port.finish(run);
        return;
      }
    }
    this.port.pumpSoon();
  }

  /** A commit from `w` (already no longer holding the batch). Returns false for a stale attempt, whose result is ignored. */
  done(w: WorkerEntry, run: JobRun, msg: Extract<WorkerMessage, { type: 'batchDone' }>): boolean {
    // the live record, taken before the commit settles it (a settled batch has none to look up)
    const b = run.batch(msg.index);
    const won = run.commit(msg.index, msg.attempt, w.name, msg.items);
    // a worker that commits is not stalled, even if no start of what it still holds reached us
    this.port.workers.notWaiting(w);
    if (!won || !b) return false;
    // The losing copy of a straggler is stopped: its mapper may be hung, and the batches
    // queued behind it would wait for it.
    const loser = this.port.workers.byName(won.loser);
    if (loser && won.loserAttempt !== undefined) {
      run.log(`batch [${b.start}, ${b.end}]: the copy on ${w.name} finished first; stopping the one on ${loser.name} (attempt ${won.loserAttempt})`);
      this.port.workers.unlease(loser, msg.index);
      loser.link.send({ type: 'abortBatch', jobId: run.spec.jobId, index: msg.index, attempt: won.loserAttempt });
      this.reclaimQueued(loser, run);
    }
    if (msg.deadLetters?.length) {
      run.addDeadLetters(msg.deadLetters);
      run.log(`${msg.deadLetters.length} item(s) skipped into errors.jsonl: ${msg.deadLetters.map((d) => `item ${d.index}: ${d.error}`).join('; ')}`);
    }
    if (this.port.wantsBatchEvents(run.spec.jobId)) this.port.emit({ kind: 'batch', jobId: run.spec.jobId, index: b.index, start: b.start, end: b.end, state: 'done', worker: w.name, attempt: msg.attempt });
    if (msg.sample) this.port.emit({ kind: 'sample', jobId: run.spec.jobId, start: b.start, results: msg.sample });
    this.port.progress(run);
    this.port.committed(run);
    return true;
  }

  /** A failed attempt: retried (after a backoff, or with `atOnce` first in line now), split, skipped, or the job fails. */
  failed(run: JobRun, index: number, attempt: number, error: WireError, input?: unknown[], atOnce = false): void {
    const b = run.batch(index)!;
    const outcome = run.fail(index, attempt, error, atOnce);
    if (outcome === 'stale') return;
    run.log(`batch [${b.start}, ${b.end}] attempt ${attempt} failed: ${error.message}`);
    const state = outcome === 'retry' ? 'retrying' : outcome === 'split' ? 'split' : outcome === 'skip' ? 'skipped' : 'failed';
    this.port.emit({ kind: 'batch', jobId: run.spec.jobId, index, start: b.start, end: b.end, state, attempt, error });
    this.port.progress(run);
    if (outcome === 'split') {
      const singles = run.split(index);
      run.log(`batch [${b.start}, ${b.end}] split into ${singles.length} single-item batches (onItemError: skip)`);
      for (const s of singles) this.port.emit({ kind: 'batch', jobId: run.spec.jobId, index: s.index, start: s.start, end: s.end, state: 'pending', attempt: 0 });
    } else if (outcome === 'skip') {
      run.skip(index, { index: b.start, input: input?.[0] ?? null, error: error.message, code: error.code, stack: error.stack });
      run.log(`item ${b.start} skipped into errors.jsonl: ${error.message}`);
      if (run.allDone) this.port.finish(run);
    } else if (outcome === 'fatal') {
      const final =
        error.retryable && b.failures >= run.maxAttempts
          ? { ...error, code: 'SKYBATCH_E_BATCH_FAILED', message: `batch [${b.start}, ${b.end}] failed ${b.failures} times; last error: ${error.message}` }
          : error;
      this.port.fail(run, final);
    } else {
      this.port.retryLater();
    }
  }

  /**
   * Puts back an attempt that never started: not a failure of the batch, even when its
   * download, started ahead on `prefetch.worker`, had failed (the job log says so; the batch's
   * next attempt downloads it again, and fails there if the input is really broken).
   */
  release(run: JobRun, index: number, attempt: number, prefetch?: { worker: string; error: WireError }): void {
    if (!run.release(index, attempt)) return;
    const b = run.batch(index)!;
    if (prefetch) run.log(`batch [${b.start}, ${b.end}] attempt ${attempt} given back by ${prefetch.worker}; its download, started ahead, had failed: ${prefetch.error.message}`);
    this.port.emit({ kind: 'batch', jobId: run.spec.jobId, index, start: b.start, end: b.end, state: 'pending', attempt });
  }

  /**
   * Gives back the batches a worker holds but has not started: they would wait behind a
   * mapper that is hung or being stopped. Not a failure of those batches.
   */
  reclaimQueued(w: WorkerEntry, run: JobRun): void {
    for (const index of [...w.leased]) {
      const held = run.heldBy(index, w.name);
      if (held?.started) continue;
      this.port.workers.unlease(w, index);
      if (!held) continue;
      const b = run.batch(index)!;
      run.log(`batch [${b.start}, ${b.end}] (attempt ${held.attempt}) was waiting on ${w.name} behind a mapper that is being stopped; given back`);
      this.release(run, index, held.attempt);
    }
  }

  /**
   * A worker's connection closed or stopped answering: started batches fail (retryable),
   * prefetched ones go back. Neither waits for a retry's backoff: a batch lost with its
   * worker did not fail on its own, and a frozen worker has already cost the heartbeat's
   * seconds. Started ones go to the front of the line (they were handed out earliest), so the
   * next worker with room runs them before anything else, and a worker holding its credit is
   * asked to give back a batch it has not started to make that room (`askBacks`).
   */
  workerLost(w: WorkerEntry, run: JobRun, why: string): void {
    const held = [...w.leased].flatMap((index) => {
      const mine = run.heldBy(index, w.name); // its own lease or the straggler copy it ran
      return mine ? [{ index, ...mine }] : [];
    });
    // a failed one goes in front of those before it (the last one failed goes out first); one
    // released goes behind every batch due (the first one released goes out first)
    for (const { index, attempt } of held.filter((h) => h.started).reverse()) {
      const b = run.batch(index)!;
      const err = new SkybatchError('SKYBATCH_E_WORKER_LOST', `job ${run.spec.jobId}: worker ${w.name} was lost (${why}) while holding batch [${b.start}, ${b.end}]`, {
        retryable: true,
        context: { jobId: run.spec.jobId, batch: [b.start, b.end], worker: w.name, attempt },
      });
      this.failed(run, index, attempt, toWireError(err), undefined, true);
    }
    for (const { index, attempt } of held.filter((h) => !h.started)) this.release(run, index, attempt); // only prefetched: not its fault
  }

  /** A started batch ran past the job's batch timeout: taken away from its (probably hung) mapper, and retried. */
  timedOut(run: JobRun, b: BatchRecord, attempt: number): void {
    const w = this.port.workers.byName(b.worker);
    const err = new SkybatchError('SKYBATCH_E_BATCH_TIMEOUT', `job ${run.spec.jobId}: batch [${b.start}, ${b.end}] ran longer than ${run.batchTimeoutMs} ms on worker ${b.worker} (attempt ${attempt})`, {
      retryable: true,
      context: { jobId: run.spec.jobId, batch: [b.start, b.end], worker: b.worker, attempt },
    });
    if (w) {
      this.port.workers.unlease(w, b.index);
      w.link.send({ type: 'abortBatch', jobId: run.spec.jobId, index: b.index, attempt });
    }
    this.failed(run, b.index, attempt, toWireError(err));
    if (w) this.reclaimQueued(w, run);
  }

  /** A worker whose mapper takes none of the batches it holds: they go back, and its mapper is restarted. */
  stalled(w: WorkerEntry, run: JobRun, held: { index: number; attempt: number }[]): void {
    const first = run.batch(held[0].index)!;
    run.log(`${w.name} did not start batch [${first.start}, ${first.end}] within ${run.batchTimeoutMs} ms (batchTimeoutMs) while running no other batch: its mapper looks hung; restarting it, its ${held.length} batch(es) given back`);
    for (const h of held) w.link.send({ type: 'abortBatch', jobId: run.spec.jobId, index: h.index, attempt: h.attempt });
    this.reclaimQueued(w, run);
  }
}
