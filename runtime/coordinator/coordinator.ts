import { SkybatchError, WireError, toWireError } from '../../formats/errors.js';
import type { PoolConfig } from '../pool-config.js';
import { JobEvent, JobRequest, JobSpec, JobSummary, PoolSummary, WorkerMessage, WorkerSummary } from '../protocol.js';
import { BatchRecord, JobRun } from './job-run.js';
import { Journal } from '../store/job-store.js';
import { BatchOutcomes } from './batch-outcomes.js';
import { EventHub, Subscriber } from './event-hub.js';
import { admitJob, admitResume } from './job-admission.js';
import { poolDownError } from './pool-down.js';
import { describeRerun, noWorkerCanRun, sendWelcome, setupKey } from './pool-setup.js';
import { runReduce } from './reducer.js';
import { restoreRuns } from './restore.js';
import { nextRetryAt, overdueBatches, schedule, stalledWorkers } from './scheduler.js';
import { refuse, sendBundle } from './worker-replies.js';
import { WorkerEntry, WorkerLink, WorkerTable, holdsAttempt } from './worker-table.js';

/** How long `pool down` lets a job that is merging its outputs finish (its CLI waits 15 s for the coordinator to stop). */
const POOL_DOWN_MERGE_GRACE_MS = 8000;

/**
 * The pool's brain: keeps the job queue, hands batches to workers (push, with credit for
 * one running and one prefetched batch each), retries failures with backoff, re-dispatches
 * the batches of workers that vanish, and runs reduce when a job's last batch commits.
 * It is the only writer of job state.
 */
export class Coordinator {
  private readonly workers = new WorkerTable();
  private readonly jobs = new Map<string, JobRun>();
  private readonly queue: string[] = [];
  private readonly events = new EventHub();
  private retryTimer?: NodeJS.Timeout;
  private closed = false;
  private readonly sweeper = setInterval(() => this.sweepOverdue(), 1000);
  /** What the pool's backend sees of its workers, for `status` (set by whoever starts the backend). */
  backendView?: () => PoolSummary['backend'];
  private readonly outcomes = new BatchOutcomes({
    workers: this.workers,
    emit: (event) => this.emit(event),
    progress: (run) => this.events.scheduleProgress(run),
    finish: (run) => void this.finishJob(run),
    fail: (run, error) => this.failJob(run, error),
    retryLater: () => this.armRetryTimer(),
  });

  constructor(
    readonly pool: string,
    public config: PoolConfig,
    readonly url: () => string,
    private readonly pid = process.pid,
    /** The coordinator's own log (coordinator.log): jobs it could not restore, reports it refused. */
    private readonly log: (line: string) => void = () => {},
  ) {
    this.restoreJobs();
  }

  /** Picks up this pool's unfinished jobs after a restart (see `restoreRuns`). */
  private restoreJobs(): void {
    for (const run of restoreRuns(this.pool, this.log)) {
      this.jobs.set(run.spec.jobId, run);
      this.queue.push(run.spec.jobId);
      if (run.allDone) void this.finishJob(run);
    }
  }

  addWorker(link: WorkerLink, hello: Extract<WorkerMessage, { type: 'hello' }>): string {
    const w = this.workers.add(link, hello);
    sendWelcome(w, this.config);
    this.emitWorker(w);
    return w.id;
  }

  /**
   * `pool apply` on a running pool. A changed setup (or envs) is not left to workers that
   * join later: every worker runs it again as soon as it holds no batch, and takes no new
   * batch before that.
   */
  reconfigure(config: PoolConfig): void {
    const setupChanged = (config.setup ?? '') !== (this.config.setup ?? '');
    this.config = config;
    const stale = this.workers.all().filter((w) => w.state !== 'gone' && w.setupKey !== setupKey(config));
    if (stale.length) this.emit({ kind: 'log', stream: 'info', line: describeRerun(stale, setupChanged) });
    this.pump();
  }

  private readonly unrunnable = () => noWorkerCanRun(this.workers.all(), this.pool, this.config.pool.workers);

  /** Jobs waiting for a worker when the last one able to run them failed its setup fail too, with its error. */
  private failUnrunnableJobs(): void {
    const why = this.unrunnable();
    if (!why) return;
    for (const run of [...this.jobs.values()]) {
      if (!run.isFinished && !run.allDone) this.failJob(run, toWireError(why, { jobId: run.spec.jobId }));
    }
  }

  onWorkerMessage(id: string, msg: WorkerMessage): void {
    const w = this.workers.get(id);
    if (!w) return;
    switch (msg.type) {
      case 'setupLog':
        this.emit({ kind: 'log', worker: w.name, stream: msg.stream, line: `setup: ${msg.line}` });
        break;
      case 'ready':
        this.workers.setupDone(w);
        this.emitWorker(w);
        this.pump();
        break;
      case 'setupFailed':
        this.workers.setupFailed(w, msg.error.message);
        this.emitWorker(w);
        this.emit({ kind: 'log', worker: w.name, stream: 'stderr', line: msg.error.message });
        this.failUnrunnableJobs();
        break;
      case 'getBundle':
        sendBundle(w, msg.hash, this.log);
        break;
      case 'batchStarted': {
        const b = this.heldBy(w, msg)?.markStarted(msg.index, msg.attempt);
        if (b) this.emit({ kind: 'batch', jobId: msg.jobId, index: b.index, start: b.start, end: b.end, state: 'running', worker: w.name, attempt: msg.attempt });
        break;
      }
      case 'batchDone':
        if (this.heldBy(w, msg)) this.onBatchDone(w, msg);
        break;
      case 'batchReleased': {
        const run = this.heldBy(w, msg);
        if (!run) break;
        this.workers.unlease(w, msg.index);
        this.outcomes.release(run, msg.index, msg.attempt);
        this.pump();
        break;
      }
      case 'batchFailed':
        if (this.heldBy(w, msg)) this.onBatchFailed(w, msg);
        break;
      case 'jobFatal': {
        const run = this.jobs.get(msg.jobId);
        if (w.jobId !== msg.jobId || !run) refuse(w, this.log, `jobFatal for job ${msg.jobId}: worker ${w.name} is not running that job`);
        else if (!run.isFinished) this.failJob(run, { ...msg.error, context: { ...msg.error.context, worker: w.name } });
        break;
      }
      case 'log': {
        const run = msg.jobId ? this.jobs.get(msg.jobId) : undefined;
        run?.log(`[${w.name}] ${msg.line}`);
        this.emit({ kind: 'log', jobId: msg.jobId, worker: w.name, stream: msg.stream, line: msg.line });
        break;
      }
    }
  }

  /** The job of a batch report when `w` holds that attempt (see `holdsAttempt`); otherwise the report is refused. */
  private heldBy(w: WorkerEntry, msg: { type: string; jobId: string; index: number; attempt: number }): JobRun | undefined {
    const run = this.jobs.get(msg.jobId);
    if (holdsAttempt(w, run, msg)) return run;
    refuse(w, this.log, `${msg.type} for job ${msg.jobId}, batch ${msg.index}, attempt ${msg.attempt}: worker ${w.name} does not hold that attempt (never leased to it, taken back, or the job ended)`);
    return undefined;
  }

  /** A worker's connection closed or stopped answering: its batches go back to the queue. */
  removeWorker(id: string, why: string): void {
    const w = this.workers.remove(id);
    if (!w) return;
    const run = w.jobId ? this.jobs.get(w.jobId) : undefined;
    if (run) this.outcomes.workerLost(w, run, why);
    this.workers.gone(w);
    this.emitWorker(w);
    this.failUnrunnableJobs();
    this.pump();
  }

  private onBatchDone(w: WorkerEntry, msg: Extract<WorkerMessage, { type: 'batchDone' }>): void {
    this.workers.unlease(w, msg.index);
    const run = this.jobs.get(msg.jobId);
    if (!run || run.isFinished || !this.outcomes.done(w, run, msg)) return;
    if (run.allDone) void this.finishJob(run);
    else this.pump();
  }

  private onBatchFailed(w: WorkerEntry, msg: Extract<WorkerMessage, { type: 'batchFailed' }>): void {
    this.workers.unlease(w, msg.index);
    const run = this.jobs.get(msg.jobId);
    if (run && !run.isFinished) this.outcomes.failed(run, msg.index, msg.attempt, { ...msg.error, context: { ...msg.error.context, worker: w.name } }, msg.input);
    this.pump();
  }

  submit(req: JobRequest, bundle: string | undefined): JobSpec {
    const spec = admitJob(req, bundle, this.pool, this.config, this.unrunnable);
    const run = new JobRun(spec, undefined, new Journal(spec.jobId));
    run.setStatus('PENDING');
    run.log(`submitted from ${spec.scriptPath}: ${spec.total} items in ${run.batches.length} batches of ${spec.batchSize}`);
    this.jobs.set(spec.jobId, run);
    this.queue.push(spec.jobId);
    this.emit({ kind: 'jobSubmitted', job: run.summary() });
    this.pump();
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
    const { spec, replay } = admitResume(jobId, this.pool, this.config, this.unrunnable, req, bundle);
    const run = new JobRun(spec, replay, new Journal(jobId));
    run.setStatus('PENDING');
    run.log(`resumed: ${run.batchesDone}/${run.batches.length} batches already committed`);
    this.jobs.set(jobId, run);
    this.queue.push(jobId);
    if (run.allDone) void this.finishJob(run);
    else this.pump();
    return run.summary();
  }

  /**
   * `pool down`: jobs still running end CANCELLED, saying how to go on, instead of being
   * resumed without a word by the next `pool apply`. A job whose batches are all done is
   * merging its outputs: it gets `mergeGraceMs` to finish, then it is cancelled too (its
   * recovery command finishes the merge).
   */
  async cancelForPoolDown(mergeGraceMs = POOL_DOWN_MERGE_GRACE_MS): Promise<void> {
    this.closed = true; // nothing more is handed out
    const cancelAll = (merging: boolean) => {
      for (const run of [...this.jobs.values()]) {
        if (run.isFinished || run.allDone !== merging) continue;
        this.endJob(run, 'CANCELLED', poolDownError(run.spec.jobId, this.pool, run.batchesDone, run.batches.length));
      }
    };
    cancelAll(false);
    const deadline = Date.now() + mergeGraceMs;
    while (Date.now() < deadline && [...this.jobs.values()].some((r) => !r.isFinished)) await new Promise((r) => setTimeout(r, 100));
    cancelAll(true);
  }

  cancel(jobId: string): void {
    const run = this.jobs.get(jobId);
    if (!run) throw new SkybatchError('SKYBATCH_E_JOB_NOT_FOUND', `job ${jobId} is not a job of pool ${this.pool}`, { context: { jobId } });
    if (run.isFinished) return;
    const err = new SkybatchError('SKYBATCH_E_CANCELLED', `job ${jobId} was cancelled; finished batches are kept: recover them with \`skybatch recover ${jobId}\``, { context: { jobId } });
    this.endJob(run, 'CANCELLED', toWireError(err));
  }

  private failJob(run: JobRun, error: WireError): void {
    const id = run.spec.jobId;
    const message = `job ${id} failed: ${error.message}\nFinished batches are kept (${run.batchesDone}/${run.batches.length}); recover them with: skybatch recover ${id}`;
    this.endJob(run, 'FAILED', { ...error, message, context: { ...error.context, jobId: id } });
  }

  private endJob(run: JobRun, status: 'FAILED' | 'CANCELLED', error: WireError): void {
    run.log(`${status}: ${error.message}`);
    run.setStatus(status, error);
    run.abandonRunning();
    this.releaseWorkers(run, status === 'FAILED' ? 'failed' : 'cancelled');
    this.emit({ kind: 'jobFinished', job: run.summary(), recoverCommand: `skybatch recover ${run.spec.jobId}` });
    this.dequeue(run);
  }

  private async finishJob(run: JobRun): Promise<void> {
    this.releaseWorkers(run, 'done');
    run.log('all batches committed; reducing outputs');
    this.emit({ kind: 'log', jobId: run.spec.jobId, stream: 'info', line: 'all batches done; merging outputs' });
    try {
      await runReduce(run.spec.jobId, (line) => run.log(`[reduce] ${line}`));
    } catch (err) {
      if (!run.isFinished) this.failJob(run, toWireError(err, { jobId: run.spec.jobId }));
      return;
    }
    if (run.isFinished) return;
    run.setStatus('SUCCEEDED');
    this.events.flushProgress(run);
    this.emit({ kind: 'jobFinished', job: run.summary() });
    this.dequeue(run);
  }

  private releaseWorkers(run: JobRun, reason: 'done' | 'cancelled' | 'failed'): void {
    for (const w of this.workers.all()) {
      if (w.jobId !== run.spec.jobId) continue;
      w.link.send({ type: 'endJob', jobId: run.spec.jobId, reason });
      this.workers.endJob(w);
      this.emitWorker(w);
    }
  }

  private dequeue(run: JobRun): void {
    const i = this.queue.indexOf(run.spec.jobId);
    if (i >= 0) this.queue.splice(i, 1);
    this.events.flushProgress(run);
    this.pump();
  }

  /** Applies the scheduler's decisions (see `schedule`) and sets the retry timer it asks for. */
  pump(): void {
    if (this.closed) return;
    const plan = schedule({ queue: this.queue, jobs: this.jobs, workers: this.workers.all(), setupKey: setupKey(this.config), now: Date.now() });
    for (const d of plan.decisions) {
      if (d.kind === 'rerunSetup') {
        this.workers.rerunSetup(d.worker);
        sendWelcome(d.worker, this.config);
        this.emitWorker(d.worker);
      } else if (d.kind === 'assign') {
        const b = d.batch;
        if (d.backup) d.run.log(`batch [${b.start}, ${b.end}] is straggling on ${b.worker}; running a copy on ${d.worker.name}, first to finish wins`);
        this.assign(d.run, d.worker, b, d.attempt);
      } else if (this.workers.idleIfEmpty(d.worker)) {
        this.emitWorker(d.worker);
      }
    }
    if (plan.wakeAt !== undefined) this.setRetryTimer(plan.wakeAt ?? undefined);
  }

  private assign(run: JobRun, w: WorkerEntry, b: BatchRecord, attempt: number): void {
    const { newJob, becameBusy } = this.workers.assign(w, run.spec.jobId, b.index);
    if (newJob) w.link.send({ type: 'job', spec: run.spec });
    if (run.status === 'PENDING') {
      run.setStatus('RUNNING');
      this.emit({ kind: 'jobSubmitted', job: run.summary() });
    }
    const wantSample = run.samplesWanted > 0;
    if (wantSample) run.samplesWanted--;
    w.link.send({ type: 'batch', jobId: run.spec.jobId, index: b.index, start: b.start, end: b.end, attempt, wantSample });
    if (becameBusy) this.emitWorker(w);
    this.emit({ kind: 'batch', jobId: run.spec.jobId, index: b.index, start: b.start, end: b.end, state: 'queued', worker: w.name, attempt });
  }

  /** Takes batches that ran past their timeout away from their (probably hung) mapper, and those of stalled workers. */
  private sweepOverdue(): void {
    const now = Date.now();
    for (const { run, batch, attempt } of overdueBatches(this.jobs.values(), now)) this.outcomes.timedOut(run, batch, attempt);
    for (const { worker, run, held } of stalledWorkers(this.workers.all(), this.jobs, now)) this.outcomes.stalled(worker, run, held);
    this.pump();
  }

  private armRetryTimer(): void {
    this.setRetryTimer(nextRetryAt(this.jobs.values()));
  }

  private setRetryTimer(due: number | undefined): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (due !== undefined) this.retryTimer = setTimeout(() => this.pump(), Math.max(0, due - Date.now()) + 5);
  }

  /** The pool is shrinking: `name` gets no more batches. True when no worker of that name holds one now. */
  drain(name: string): boolean {
    return this.workers.drain(name);
  }

  undrain(name: string): void {
    this.workers.undrain(name);
  }

  subscribe(s: Subscriber): () => void {
    return this.events.subscribe(s);
  }

  private emit(event: JobEvent): void {
    this.events.emit(event);
  }

  private emitWorker(w: WorkerEntry): void {
    this.emit({ kind: 'worker', worker: this.workerSummary(w) });
  }

  private workerSummary(w: WorkerEntry): WorkerSummary {
    return this.workers.summary(w, w.jobId ? this.jobs.get(w.jobId) : undefined);
  }

  status(): PoolSummary {
    return {
      pool: this.pool,
      url: this.url(),
      pid: this.pid,
      workersWanted: this.config.pool.workers,
      workers: this.workers.all().map((w) => this.workerSummary(w)),
      jobs: [...this.jobs.values()].map((r) => r.summary()),
      ...(this.backendView ? { backend: this.backendView() } : {}),
    };
  }

  batchInfo(jobId: string) {
    const run = this.jobs.get(jobId);
    if (!run) throw new SkybatchError('SKYBATCH_E_JOB_NOT_FOUND', `job ${jobId} is not a job of pool ${this.pool}`, { context: { jobId } });
    return run.batchInfo();
  }

  jobSummary(jobId: string) {
    return this.jobs.get(jobId)?.summary();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.events.close();
    for (const w of this.workers.all()) {
      w.link.send({ type: 'shutdown' });
      w.link.close();
    }
  }
}
