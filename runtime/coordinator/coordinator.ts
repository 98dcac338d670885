import { PoolConfig, minWorkers } from '../pool-config.js';
import type { JobEvent, JobRequest, JobSpec, JobSummary, PoolSummary, WorkerMessage, WorkerSummary } from '../protocol.js';
import type { BatchRecord, JobRun } from './job-run.js';
import type { PoolLoad } from '../backends/autoscaler.js';
import { BatchOutcomes } from './batch-outcomes.js';
import { EventHub, Subscriber } from './event-hub.js';
import { JobLifecycle, POOL_DOWN_MERGE_GRACE_MS } from './job-lifecycle.js';
import { describeRerun, noWorkerCanRun, sendWelcome, setupKey } from './pool-setup.js';
import { nextRetryAt, overdueBatches, poolLoad, schedule, stalledWorkers } from './scheduler.js';
import type { JobPackages } from './job-packages.js';
import { refuse, sendBundle } from './worker-replies.js';
import { WorkerEntry, WorkerLink, WorkerTable } from './worker-table.js';

/**
 * The pool's brain, as a router: takes workers' reports and clients' requests, applies the
 * scheduler's decisions (push, with credit for one running and one prefetched batch per
 * worker) and owns the timers that wake it (overdue sweep, retry backoff). What a batch's
 * report does is batch-outcomes.ts's; a job's way from submission to its end is
 * job-lifecycle.ts's; a worker's state changes are worker-table.ts's.
 */
export class Coordinator {
  private readonly workers = new WorkerTable();
  private readonly events = new EventHub();
  private readonly jobs: JobLifecycle;
  private retryTimer?: NodeJS.Timeout;
  private pumpQueued = false;
  private closed = false;
  private readonly sweeper = setInterval(() => this.sweepOverdue(), 1000);
  /** What the pool's backend sees of its workers, for `status` (set by whoever starts the backend). */
  backendView?: () => PoolSummary['backend'];
  /** Set when the workers run on other machines: the jobs' packages travel to their hosts. */
  packages?: JobPackages;
  /** An autoscaled pool's size and why (set by whoever runs its autoscaler). */
  autoscaleView?: () => PoolSummary['autoscale'];
  private readonly outcomes = new BatchOutcomes({
    workers: this.workers,
    emit: (event) => this.emit(event),
    wantsBatchEvents: (jobId) => this.events.wantsBatchEvents(jobId),
    progress: (run) => this.events.scheduleProgress(run),
    committed: (run) => this.jobs.committed(run),
    finish: (run) => void this.jobs.finish(run),
    fail: (run, error) => this.jobs.fail(run, error),
    retryLater: () => this.armRetryTimer(),
    pumpSoon: () => this.pumpSoon(),
    job: (jobId) => this.jobs.get(jobId),
    log: (line) => this.log(line),
  });

  constructor(
    readonly pool: string,
    public config: PoolConfig,
    readonly url: () => string,
    private readonly pid = process.pid,
    /** The coordinator's own log (coordinator.log): jobs it could not restore, reports it refused. */
    private readonly log: (line: string) => void = () => {},
  ) {
    this.jobs = new JobLifecycle({
      pool: this.pool,
      config: () => this.config,
      workers: this.workers,
      events: this.events,
      emitWorker: (w) => this.emitWorker(w),
      pump: () => this.pump(),
      unrunnable: () => noWorkerCanRun(this.workers.all(), this.pool, minWorkers(this.config)),
      log: (line) => this.log(line),
    });
    this.jobs.restore();
  }

  addWorker(link: WorkerLink, hello: Extract<WorkerMessage, { type: 'hello' }>): string {
    const w = this.workers.add(link, hello);
    sendWelcome(this.workers, w, this.config);
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
        this.jobs.failUnrunnable();
        break;
      case 'getBundle':
        sendBundle(w, msg.hash, this.log);
        break;
      case 'getPackages':
        if (this.packages) this.packages.send(w, msg.hash);
        else w.link.send({ type: 'packages', hash: msg.hash, error: { code: 'SKYBATCH_E_NOT_FOUND', message: `pool ${this.pool} does not ship packages: its workers run on this machine`, retryable: false } });
        break;
      case 'batchStarted':
      case 'batchDone':
      case 'batchReleased':
      case 'batchFailed':
        this.outcomes.report(w, msg);
        break;
      case 'jobFatal': {
        const run = this.jobs.get(msg.jobId);
        if (w.jobId !== msg.jobId || !run) refuse(w, this.log, `jobFatal for job ${msg.jobId}: worker ${w.name} is not running that job`);
        else if (!run.isFinished) this.jobs.fail(run, { ...msg.error, context: { ...msg.error.context, worker: w.name } });
        break;
      }
      case 'log': {
        this.jobs.get(msg.jobId)?.log(`[${w.name}] ${msg.line}`);
        this.emit({ kind: 'log', jobId: msg.jobId, worker: w.name, stream: msg.stream, line: msg.line });
        break;
      }
    }
  }

  /** A worker's connection closed or stopped answering: its batches go back to the queue. */
  removeWorker(id: string, why: string): void {
    const w = this.workers.remove(id);
    if (!w) return;
    const run = this.jobs.get(w.jobId);
    if (run) this.outcomes.workerLost(w, run, why);
    this.workers.gone(w);
    this.emitWorker(w);
    this.jobs.failUnrunnable();
    this.pump();
  }

  submit(req: JobRequest, bundle: string | undefined): JobSpec {
    return this.jobs.submit(req, bundle);
  }

  /** See `JobLifecycle.resume`. */
  resume(jobId: string, req?: JobRequest, bundle?: string): JobSummary {
    return this.jobs.resume(jobId, req, bundle);
  }

  /** `pool down`: nothing more is handed out, and its jobs end (see `JobLifecycle.cancelForPoolDown`). */
  async cancelForPoolDown(mergeGraceMs = POOL_DOWN_MERGE_GRACE_MS): Promise<void> {
    this.closed = true;
    await this.jobs.cancelForPoolDown(mergeGraceMs);
  }

  cancel(jobId: string): void {
    this.jobs.cancel(jobId);
  }

  /** Per-batch reports pump once per turn of the event loop, not once each: a pump looks at every worker. */
  pumpSoon(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Applies the scheduler's decisions (see `schedule`) and sets the retry timer it asks for. */
  pump(): void {
    if (this.closed) return;
    // on a pool of other machines, a job's batches wait for its packages to be packed
    const packages = this.packages;
    const queue = packages ? this.jobs.queue.filter((id) => packages.ready(this.jobs.jobs.get(id)!.spec)) : this.jobs.queue;
    const plan = schedule({ queue, jobs: this.jobs.jobs, workers: this.workers.all(), setupKey: setupKey(this.config), now: Date.now() });
    for (const d of plan.decisions) {
      if (d.kind === 'rerunSetup') {
        this.workers.rerunSetup(d.worker);
        sendWelcome(this.workers, d.worker, this.config);
        this.emitWorker(d.worker);
      } else if (d.kind === 'giveBack') {
        d.worker.link.send({ type: 'releaseBatch', jobId: d.run.spec.jobId, index: d.batch.index, attempt: d.attempt });
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
    if (newJob) w.link.send({ type: 'job', spec: this.packages?.specFor(run.spec) ?? run.spec });
    this.jobs.started(run);
    const wantSample = run.samplesWanted > 0;
    if (wantSample) run.samplesWanted--;
    w.link.send({ type: 'batch', jobId: run.spec.jobId, index: b.index, start: b.start, end: b.end, attempt, wantSample });
    if (becameBusy) this.emitWorker(w);
    if (this.events.wantsBatchEvents(run.spec.jobId)) this.emit({ kind: 'batch', jobId: run.spec.jobId, index: b.index, start: b.start, end: b.end, state: 'queued', worker: w.name, attempt });
  }

  /** Takes batches that ran past their timeout away from their (probably hung) mapper, and those of stalled workers. */
  private sweepOverdue(): void {
    const now = Date.now();
    for (const { run, batch, attempt } of overdueBatches(this.jobs.all(), now)) this.outcomes.timedOut(run, batch, attempt);
    for (const { worker, run, held } of stalledWorkers(this.workers, this.jobs.jobs, now)) this.outcomes.stalled(worker, run, held);
    this.pump();
  }

  private armRetryTimer(): void {
    this.setRetryTimer(nextRetryAt(this.jobs.all()));
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

  holds(name: string): boolean {
    return this.workers.all().some((w) => w.name === name && w.leased.size > 0);
  }

  /** What there is to do, for the autoscaler (see `poolLoad`). */
  load(): PoolLoad {
    return poolLoad(this.jobs.all(), this.workers.all());
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
    return this.workers.summary(w, this.jobs.get(w.jobId));
  }

  status(): PoolSummary {
    return {
      pool: this.pool,
      url: this.url(),
      pid: this.pid,
      workersWanted: this.autoscaleView?.()?.wanted ?? this.config.pool.workers,
      workers: this.workers.all().map((w) => this.workerSummary(w)),
      jobs: this.jobs.all().map((r) => r.summary()),
      ...(this.backendView ? { backend: this.backendView() } : {}),
      ...(this.autoscaleView?.() ? { autoscale: this.autoscaleView()! } : {}),
    };
  }

  batchInfo(jobId: string) {
    return this.jobs.known(jobId).batchInfo();
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
