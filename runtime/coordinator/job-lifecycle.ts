import { SkybatchError, WireError, errorMessage, toWireError } from '../../formats/common/errors.js';
import type { PoolConfig } from '../pool-config.js';
import type { JobEvent, JobRequest, JobSpec, JobSummary } from '../protocol.js';
import type { EventHub } from './event-hub.js';
import { admitJob, admitResume } from './job-admission.js';
import { JobRun } from './job-run.js';
import { Journal } from '../store/journal.js';
import { MergeAhead } from './merge-ahead.js';
import { poolDownError } from './pool-down.js';
import { runReduce } from './reducer.js';
import { restoreRuns } from './restore.js';
import type { WorkerEntry, WorkerTable } from './worker-table.js';

/** How long `pool down` lets a job that is merging its outputs finish (its CLI waits 15 s for the coordinator to stop). */
export const POOL_DOWN_MERGE_GRACE_MS = 8000;

/** What the coordinator lends to the job lifecycle: its pool, workers and event stream, and the scheduler's pump. */
export interface LifecyclePort {
  readonly pool: string;
  config(): PoolConfig;
  readonly workers: WorkerTable;
  readonly events: EventHub;
  emitWorker(w: WorkerEntry): void;
  /** Hands out what can run now (after a job was queued, or freed its workers). */
  pump(): void;
  /** Why no worker of the pool can run a job (setup failed on all of them); undefined while one can. */
  unrunnable(): SkybatchError | undefined;
  /** The coordinator's own log (coordinator.log). */
  log(line: string): void;
}

/**
 * The pool's jobs from submission to their end: admits submitted and resumed jobs into the
 * queue (oldest first), marks a job RUNNING when its first batch goes out, reduces a job
 * whose batches are all committed, and ends jobs that fail or are cancelled (their workers
 * are told and freed). It is the only place a job's status changes on a live coordinator.
 */
export class JobLifecycle {
  readonly jobs = new Map<string, JobRun>();
  /** Job ids in the order they run: oldest first. */
  readonly queue: string[] = [];
  /** Outputs merged while their jobs run (merge-ahead.ts), by job id: submitted jobs that qualify. */
  private readonly ahead = new Map<string, MergeAhead[]>();

  constructor(private readonly port: LifecyclePort) {}

  /** Picks up this pool's unfinished jobs after a restart (see `restoreRuns`). */
  restore(): void {
    for (const run of restoreRuns(this.port.pool, this.port.log, (run, journal) => this.watch(run, journal))) {
      this.jobs.set(run.spec.jobId, run);
      this.queue.push(run.spec.jobId);
      if (run.allDone) void this.finish(run);
    }
  }

  get(jobId: string | undefined): JobRun | undefined {
    return jobId === undefined ? undefined : this.jobs.get(jobId);
  }

  /** The job `jobId` of this pool, or SKYBATCH_E_JOB_NOT_FOUND. */
  known(jobId: string): JobRun {
    const run = this.jobs.get(jobId);
    if (!run) throw new SkybatchError('SKYBATCH_E_JOB_NOT_FOUND', `job ${jobId} is not a job of pool ${this.port.pool}`, { context: { jobId } });
    return run;
  }

  all(): JobRun[] {
    return [...this.jobs.values()];
  }

  submit(req: JobRequest, bundle: string | undefined): JobSpec {
    const spec = admitJob(req, bundle, this.port.pool, this.port.config(), () => this.port.unrunnable());
    const journal = new Journal(spec.jobId);
    const run = this.watch(new JobRun(spec, undefined, journal), journal);
    run.setStatus('PENDING');
    run.log(`submitted from ${spec.scriptPath}: ${spec.total} items in ${run.batchCount} batches of ${spec.batchSize}`);
    this.jobs.set(spec.jobId, run);
    this.queue.push(spec.jobId);
    const ahead = MergeAhead.forJob(spec);
    if (ahead.length) this.ahead.set(spec.jobId, ahead);
    this.emit({ kind: 'jobSubmitted', job: run.summary() });
    this.port.pump();
    return spec;
  }

  /**
   * Continues a failed or cancelled job: committed batches stay, the rest run again. With
   * `req` (a client's `resumeFrom`), the job runs the new script and mapper; its input,
   * batch size and outputs must be the same, or the batches would not line up.
   */
  resume(jobId: string, req?: JobRequest, bundle?: string): JobSummary {
    const live = this.jobs.get(jobId);
    if (live && !live.isFinished) throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `job ${jobId} is still ${live.status}; nothing to resume`, { context: { jobId } });
    const { spec, replay, rerun } = admitResume(jobId, this.port.pool, this.port.config(), () => this.port.unrunnable(), req, bundle);
    const journal = new Journal(jobId, replay);
    const run = this.watch(new JobRun(spec, replay, journal), journal);
    run.setStatus('PENDING');
    if (rerun) run.log(`a recover merged ${rerun} finished batch(es) into the outputs and removed their files: they run again, so that the job's own merge has every batch`);
    run.log(`resumed: ${run.batchesDone}/${run.batchCount} batches already committed`);
    this.jobs.set(jobId, run);
    this.queue.push(jobId);
    if (run.allDone) void this.finish(run);
    else this.port.pump();
    return run.summary();
  }

  /** Its first batch goes out: a PENDING job is RUNNING (said once, as a jobSubmitted event with the new status). */
  started(run: JobRun): void {
    if (run.status !== 'PENDING') return;
    run.setStatus('RUNNING');
    this.emit({ kind: 'jobSubmitted', job: run.summary() });
  }

  cancel(jobId: string): void {
    const run = this.known(jobId);
    if (run.isFinished) return;
    const err = new SkybatchError('SKYBATCH_E_CANCELLED', `job ${jobId} was cancelled; finished batches are kept: recover them with \`skybatch recover ${jobId}\``, { context: { jobId } });
    this.end(run, 'CANCELLED', toWireError(err));
  }

  /**
   * `pool down` (the coordinator hands out nothing more by now): jobs still running end
   * CANCELLED, saying how to go on, instead of being resumed without a word by the next
   * `pool apply`. A job whose batches are all done is merging its outputs: it gets
   * `mergeGraceMs` to finish, then it is cancelled too (its recovery command finishes the merge).
   */
  async cancelForPoolDown(mergeGraceMs = POOL_DOWN_MERGE_GRACE_MS): Promise<void> {
    const cancelAll = (merging: boolean) => {
      for (const run of this.all()) {
        if (run.isFinished || run.allDone !== merging) continue;
        this.end(run, 'CANCELLED', poolDownError(run.spec.jobId, this.port.pool, run.batchesDone, run.batchCount));
      }
    };
    cancelAll(false);
    const deadline = Date.now() + mergeGraceMs;
    while (Date.now() < deadline && this.all().some((r) => !r.isFinished)) await new Promise((r) => setTimeout(r, 100));
    cancelAll(true);
  }

  /** Jobs waiting for a worker when the last one able to run them failed its setup fail too, with its error. */
  failUnrunnable(): void {
    const why = this.port.unrunnable();
    if (!why) return;
    for (const run of this.all()) {
      if (!run.isFinished && !run.allDone) this.fail(run, toWireError(why, { jobId: run.spec.jobId }));
    }
  }

  fail(run: JobRun, error: WireError): void {
    const id = run.spec.jobId;
    const message = `job ${id} failed: ${error.message}\nFinished batches are kept (${run.batchesDone}/${run.batchCount}); recover them with: skybatch recover ${id}`;
    this.end(run, 'FAILED', { ...error, message, context: { ...error.context, jobId: id } });
  }

  /** A batch of `run` was committed: its outputs' merge may go on. */
  committed(run: JobRun): void {
    for (const a of this.ahead.get(run.spec.jobId) ?? []) a.committed(run);
  }

  /** Every batch is committed: frees its workers, reduces its outputs in a reduce process, and ends it SUCCEEDED (or FAILED with the reduce's error). */
  async finish(run: JobRun): Promise<void> {
    this.releaseWorkers(run, 'done');
    run.log('all batches committed; reducing outputs');
    this.emit({ kind: 'log', jobId: run.spec.jobId, stream: 'info', line: 'all batches done; merging outputs' });
    const ahead = this.ahead.get(run.spec.jobId);
    try {
      const mergedAhead = ahead && ((source: string, target: string) => (source === target ? ahead.find((a) => a.output === source)?.handOver() : undefined));
      await runReduce(run.spec.jobId, (line) => run.log(`[reduce] ${line}`), { inCoordinator: run.spec, mergedAhead });
    } catch (err) {
      // the reduce step's own errors name what failed; anything else is still the reduce's, not the mapper's
      const why = err instanceof SkybatchError ? err : new SkybatchError('SKYBATCH_E_REDUCE', `job ${run.spec.jobId}: the reduce step failed: ${errorMessage(err)}`, { cause: err });
      if (!run.isFinished) this.fail(run, toWireError(why, { jobId: run.spec.jobId }));
      return;
    } finally {
      this.dropAhead(run);
    }
    // Cancelled (pool down) while it merged: that end stands.
    if (run.isFinished) return;
    run.setStatus('SUCCEEDED');
    this.port.events.flushProgress(run);
    this.emit({ kind: 'jobFinished', job: run.summary() });
    this.dequeue(run);
  }

  /**
   * A job whose journal cannot be written any more (a full disk) fails with why, naming the
   * file: going on would commit batches no restart or recover knows of. The pool goes on;
   * once there is room, `jobs resume` runs what the journal does not say is done.
   */
  private watch(run: JobRun, journal: Journal): JobRun {
    journal.onBroken = (err) => {
      this.port.log(`job ${run.spec.jobId}: ${err.message}`);
      if (!run.isFinished) this.fail(run, toWireError(err, { jobId: run.spec.jobId }));
    };
    return run;
  }

  /** Stops merging `run`'s outputs ahead and removes what was merged unless it became an output. */
  private dropAhead(run: JobRun): void {
    for (const a of this.ahead.get(run.spec.jobId) ?? []) a.discard();
    this.ahead.delete(run.spec.jobId);
  }

  private end(run: JobRun, status: 'FAILED' | 'CANCELLED', error: WireError): void {
    run.log(`${status}: ${error.message}`);
    if (!run.allDone) this.dropAhead(run); // else its reduce step is running, and drops it when done
    run.setStatus(status, error);
    run.abandonRunning();
    this.releaseWorkers(run, status === 'FAILED' ? 'failed' : 'cancelled');
    this.emit({ kind: 'jobFinished', job: run.summary(), recoverCommand: `skybatch recover ${run.spec.jobId}` });
    this.dequeue(run);
  }

  private releaseWorkers(run: JobRun, reason: 'done' | 'cancelled' | 'failed'): void {
    for (const w of this.port.workers.all()) {
      if (w.jobId !== run.spec.jobId) continue;
      w.link.send({ type: 'endJob', jobId: run.spec.jobId, reason });
      this.port.workers.endJob(w);
      this.port.emitWorker(w);
    }
  }

  private dequeue(run: JobRun): void {
    const i = this.queue.indexOf(run.spec.jobId);
    if (i >= 0) this.queue.splice(i, 1);
    this.port.events.flushProgress(run);
    this.port.pump();
  }

  private emit(event: JobEvent): void {
    this.port.events.emit(event);
  }
}
