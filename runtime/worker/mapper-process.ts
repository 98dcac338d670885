/**
 * A job's mapper on one worker, in a process of its own (started by the agent, after the
 * job's `activateEnv` when given). It loads the bundle once, calls the mapper once per job,
 * feeds it batches through `load()`, and uploads each batch's results through every writer
 * in `saveResults()`. A batch that arrives while another runs is downloaded at once, so the
 * mapper never waits on storage between batches. When the agent asks it to stay (`end` with
 * `keep`), it then waits for the next job of the same bundle and environment (`idle`), which
 * runs in the module it already imported (mapper-supervisor.ts decides which jobs qualify).
 */
import { withAttempt } from '../../formats/attempts.js';
import { SkybatchError, WireError, toWireError } from '../../formats/common/errors.js';
import type { InputReader, Item } from '../../formats/input-reader.js';
import type { OutputWriter } from '../../formats/output-writer.js';
import { buildId } from '../build-id.js';
import { agentToMapper, checkFrame } from '../protocol-guards.js';
import type { BundleHeader } from '../bundle-header.js';
import { jobMapper, loadBundle, makeReader, makeWriters, writerScope } from '../bundle-loader.js';
import { type WriteScope, inWriteScope } from '../../formats/write-scope.js';
import { loadPackageApi } from '../package-api.js';
import { asPackageError } from '../host-packages.js';
import { FailedItem, isFailedItem, setMapperContext } from '../mapper-api.js';
import type { BatchAssignment, DeadLetter, JobSpec } from '../protocol.js';
import type { AgentToMapper, MapperToAgent } from './mapper-ipc.js';
import { batchedSender, eachMessage } from './ipc-batch.js';
import { previewValue } from './preview.js';
import { type BridgeBatch, pythonMapper } from './python-bridge.js';
import { type MapperBatch, isThenable, startDownload } from './mapper-batch.js';
import { DONE, type Step, stepIterator } from './step-iterator.js';
import { releaseYoungGeneration } from './young-generation.js';

const SAMPLE_SIZE = 5;

type Outcome = { items: number; sample?: unknown[]; deadLetters?: DeadLetter[] } | { error: unknown };

const SAVED = Promise.resolve();

/** A batch that ran this long is reported as it ends (see `finish`); 2 ms is far above a write's cost. */
const REPORT_AT_ONCE_MS = 2;

/** The bundle this process imported: a warm process runs later jobs of the same bundle in it. */
let loaded: { bundlePath: string; header: BundleHeader | undefined } | undefined;
/** The job this process runs now (one at a time; the agent starts the next only after `idle`). */
let job: JobRun | undefined;

const send = batchedSender<MapperToAgent>(
  (msg) => process.send?.(msg),
  () => {}, // the agent is gone: this process exits on 'disconnect'
);

/** Where the failed items are; a plain loop, as it runs over every result of every batch. */
function failedIndexes(results: unknown[]): number[] {
  const failed: number[] = [];
  for (let i = 0; i < results.length; i++) if (isFailedItem(results[i])) failed.push(i);
  return failed;
}

/** Splits results into runs of consecutive good items, with their global ranges. */
function goodRuns(results: unknown[], start: number): { start: number; end: number; results: unknown[] }[] {
  const runs: { start: number; end: number; results: unknown[] }[] = [];
  results.forEach((r, i) => {
    if (isFailedItem(r)) return;
    const last = runs[runs.length - 1];
    if (last && last.end === start + i - 1) {
      last.end++;
      last.results.push(r);
    } else runs.push({ start: start + i, end: start + i, results: [r] });
  });
  return runs;
}

/**
 * Everything of one job in this process: its reader and writers, its batches, and the
 * `load()` / `saveResults()` its mapper calls. A warm process runs several jobs one after
 * another, so none of this may outlive its job: a stale `load()` iterator kept by user code
 * still talks to its own (ended) job, never to the next one.
 */
class JobRun {
  private reader!: InputReader<object>;
  private writers!: OutputWriter<object>[];
  private readonly queue: MapperBatch[] = [];
  private ended = false;
  /** The agent asked this process to stay for a next job once this one returns cleanly. */
  keep = false;
  /** Each writer's write scope in this job, made once (see `writerScope`). */
  private scopes!: WriteScope[];
  private wake: (() => void) | undefined;
  private current: MapperBatch | undefined;
  /** The error the last failed batch was reported with: the mapper rethrowing it is not a second batch's failure. */
  private reported: unknown;
  /** A save that did not end in the call to saveResults(): load() waits for it. Settles without rejecting. */
  private pendingSave: Promise<void> | undefined;
  private batchesTaken = 0;
  private formatsReady!: () => void;
  private readonly ready = new Promise<void>((resolve) => (this.formatsReady = resolve));
  private formatsLoaded = false;

  constructor(
    readonly spec: JobSpec,
    private readonly cacheDir: string,
    private readonly dryRun: boolean,
  ) {}

  private ref(b: MapperBatch): string {
    return `job ${this.spec.jobId}, batch [${b.start}, ${b.end}]`;
  }

  /** `err` as sent to the agent, naming the job, batch `b` and its attempt. */
  private wireError(b: MapperBatch, err: unknown): WireError {
    return toWireError(err, { jobId: this.spec.jobId, batch: [b.start, b.end], attempt: b.attempt });
  }

  /**
   * Reports batch `b` once. Synchronous (a promise per batch is a visible share of a no-op
   * batch's cost), except a single item's failure under 'skip', which waits for its input.
   */
  private finish(b: MapperBatch, outcome: Outcome): void {
    if (b.finished) return;
    b.finished = true;
    if (!('error' in outcome)) {
      this.report(b, { type: 'batchDone', index: b.index, attempt: b.attempt, ...outcome });
      return;
    }
    this.reported = outcome.error;
    const error = this.wireError(b, outcome.error);
    const failed = () => this.report(b, { type: 'batchFailed', index: b.index, attempt: b.attempt, error, ...(b.items ? { input: b.items } : {}) });
    // A single item's input travels with its failure: it may end in errors.jsonl.
    if (b.start === b.end && this.spec.onItemError === 'skip') {
      if (b.downloading && !b.items && !b.failure) void b.downloading.then(failed);
      else failed();
    } else {
      this.report(b, { type: 'batchFailed', index: b.index, attempt: b.attempt, error });
    }
  }

  private report(b: MapperBatch, msg: MapperToAgent): void {
    send(msg);
    // The queue leaves at the tick's end, but a mapper's loop goes from saveResults straight
    // into its next batch without one: a synchronous batch (CPU-bound work) would hold this
    // report until it ends, and the coordinator would learn of each batch a batch late (its
    // clock, credit and tail balancing with it). A batch that took a while is reported at
    // once; fast ones still share a write.
    if (b.yieldedAt !== undefined && performance.now() - b.yieldedAt >= REPORT_AT_ONCE_MS) send.flush();
  }

  private download(b: MapperBatch): Promise<void> | undefined {
    return startDownload(this.reader, b, { jobId: this.spec.jobId, cacheDir: this.cacheDir });
  }

  /** A batch the agent handed over: its download starts at once (prefetch). */
  take(msg: BatchAssignment): void {
    const b: MapperBatch = { index: msg.index, start: msg.start, end: msg.end, attempt: msg.attempt, wantSample: msg.wantSample, saved: false, finished: false };
    b.downloading = this.formatsLoaded ? this.download(b) : this.ready.then(() => this.download(b));
    this.queue.push(b);
    this.wake?.();
  }

  /** Drops a batch `load()` has not yielded yet and gives it back; one it has is left to run. */
  release(index: number, attempt: number): void {
    const at = this.queue.findIndex((b) => b.index === index && b.attempt === attempt);
    if (at < 0) return;
    this.giveBack(this.queue.splice(at, 1)[0]);
  }

  /** Gives `b` back unstarted, with the failure of its download if that was known already (the job log shows it). */
  private giveBack(b: MapperBatch): void {
    b.finished = true;
    const prefetchError = b.failure && this.wireError(b, b.failure.error);
    send({ type: 'batchReleased', index: b.index, attempt: b.attempt, ...(prefetchError ? { prefetchError } : {}) });
  }

  end(keep: boolean): void {
    this.ended = true;
    this.keep = keep;
    this.wake?.();
  }

  private load(): AsyncIterableIterator<Item[]> {
    return stepIterator(() => this.advance());
  }

  /** What `load()`'s next step yields: at once when the next batch is here, else once it is. */
  private advance(): Step<Item[]> {
    for (;;) {
      if (this.pendingSave) return this.pendingSave.then(() => this.advance());
      const current = this.current;
      if (current && !current.finished) {
        const err = new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `${this.ref(current)}: the mapper asked for the next batch without calling saveResults() for this one`, {
          context: { jobId: this.spec.jobId, batch: [current.start, current.end] },
        });
        this.finish(current, { error: err });
        throw err;
      }
      // It stays queued until handed over, so a mapper that dies meanwhile reports it.
      const b = this.queue[0];
      if (!b) {
        if (this.ended) return DONE;
        return new Promise<void>((resolve) => (this.wake = resolve)).then(() => this.advance());
      }
      if (b.failure) {
        this.queue.shift();
        this.finish(b, { error: b.failure.error }); // e.g. a malformed line: this batch fails, the mapper goes on
        continue;
      }
      if (!b.items) return (b.downloading ?? Promise.resolve()).then(() => this.advance());
      this.queue.shift();
      this.current = b;
      this.batchesTaken++;
      send({ type: 'batchStarted', index: b.index, attempt: b.attempt });
      b.yieldedAt = performance.now();
      return { done: false, value: b.items };
    }
  }

  /**
   * Writes the current batch's results through every writer. A save whose writers all
   * returned at once (no promise) ends in this call and returns a settled promise; the rest
   * run on, and the next `load()` step waits for them.
   */
  private saveResults(results: unknown[]): Promise<void> {
    const b = this.current;
    const spec = this.spec;
    if (!b || b.finished) {
      return Promise.reject(
        new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `job ${spec.jobId}: saveResults() was called ${b ? 'twice for one batch' : 'outside a batch'}; call it once for each batch load() yields`, {
          context: { jobId: spec.jobId },
        }),
      );
    }
    let uploading: Promise<void> | undefined;
    try {
      uploading = this.upload(b, results);
    } catch (err) {
      this.finish(b, { error: err });
      return Promise.reject(err);
    }
    if (!uploading) return SAVED;
    const save = uploading.catch((err: unknown) => {
      this.finish(b, { error: err });
      throw err;
    });
    const settled = save.then(
      () => {},
      () => {},
    );
    this.pendingSave = settled;
    void settled.then(() => {
      if (this.pendingSave === settled) this.pendingSave = undefined;
    });
    return save;
  }

  /** Checks `results`, hands them to the writers and reports the batch; a promise while a writer's upload runs on. */
  private upload(b: MapperBatch, results: unknown[]): Promise<void> | undefined {
    const spec = this.spec;
    const want = b.end - b.start + 1;
    if (!Array.isArray(results) || results.length !== want) {
      throw new SkybatchError(
        'SKYBATCH_E_RESULT_COUNT',
        `${this.ref(b)}: saveResults() got ${Array.isArray(results) ? results.length : typeof results} results for ${want} input items; return one result per item, in order`,
        { context: { jobId: spec.jobId, batch: [b.start, b.end] } },
      );
    }
    b.saved = true;
    const failed = failedIndexes(results);
    if (failed.length && spec.onItemError !== 'skip') {
      const { error } = results[failed[0]] as FailedItem;
      throw new SkybatchError('SKYBATCH_E_ITEM_FAILED', `${this.ref(b)}: item ${b.start + failed[0]} failed: ${error.message} (pass onItemError: 'skip' to skip failed items)`, {
        context: { jobId: spec.jobId, batch: [b.start, b.end] },
        cause: error,
      });
    }
    // With 'skip', each run of good items is written as its own range; failed items go to errors.jsonl.
    const runs = failed.length ? goodRuns(results, b.start) : [{ start: b.start, end: b.end, results }];
    const waits = withAttempt({ jobId: spec.jobId, attempt: b.attempt }, () => {
      let out: unknown[] | undefined;
      for (const run of runs) {
        for (let i = 0; i < this.writers.length; i++) {
          const w = this.writers[i];
          const r = inWriteScope(this.scopes[i], () => w.uploadBatch(run.results as Item[], run.start, run.end, spec.jobId));
          if (isThenable(r)) (out ??= []).push(r);
        }
      }
      return out && Promise.all(out);
    });
    if (waits) return waits.then(() => this.saved(b, results, failed));
    this.saved(b, results, failed);
    return undefined;
  }

  private saved(b: MapperBatch, results: unknown[], failed: number[]): void {
    const items = b.items ?? [];
    const deadLetters: DeadLetter[] = failed.map((i) => {
      const { error } = results[i] as FailedItem;
      return { index: b.start + i, input: items[i], error: error.message, code: 'SKYBATCH_E_ITEM_FAILED', stack: error.stack };
    });
    const sample = b.wantSample ? results.filter((r) => !isFailedItem(r)).slice(0, this.dryRun ? undefined : SAMPLE_SIZE).map((r) => previewValue(r)) : undefined;
    this.finish(b, { items: results.length - failed.length, sample, ...(deadLetters.length ? { deadLetters } : {}) });
  }

  /** The batch a Python mapper holds, as its bridge sees it (runtime/worker/python-bridge.ts). */
  private bridgeBatch(): BridgeBatch | undefined {
    const b = this.current;
    return b && !b.finished ? { start: b.start, end: b.end, fail: (err) => this.finish(b, { error: err }) } : undefined;
  }

  /** Runs the job's mapper to its end. Resolves true when this process may take a next job, false when it must exit (with that code). */
  async run(bundlePath: string): Promise<{ reusable: boolean; code: number }> {
    const spec = this.spec;
    process.argv = spec.argv;
    process.env.SKYBATCH_JOB_ID = spec.jobId;
    try {
      if (process.env.SKYBATCH_AGENT_BUILD && process.env.SKYBATCH_AGENT_BUILD !== buildId()) {
        throw new SkybatchError('SKYBATCH_E_PROTOCOL', `skybatch on worker ${process.env.SKYBATCH_WORKER} was reinstalled or rebuilt after the worker started (${process.env.SKYBATCH_AGENT_BUILD} → ${buildId()}); restart the pool: skybatch pool down ${spec.pool} -y, then pool apply`);
      }
      // A module is imported once per process: a warm process's next job of the same bundle
      // finds its mapper (and the module state it built) where the first job left it.
      if (loaded && loaded.bundlePath !== bundlePath) throw new SkybatchError('SKYBATCH_E_PROTOCOL', `job ${spec.jobId} was handed to a mapper process that loaded another bundle`);
      if (!loaded) {
        try {
          loaded = { bundlePath, header: await loadBundle(bundlePath, await loadPackageApi()) };
        } finally {
          releaseYoungGeneration();
        }
      }
      const header = loaded.header;
      const python = spec.python;
      const fn = python ? pythonMapper({ ...spec, python }, { cacheDir: this.cacheDir, current: () => this.bridgeBatch() }) : jobMapper(spec, header);
      if (!fn) {
        const at = header?.mapper?.site[0] ? ` (created at ${header.mapper.site[0]} on the client)` : '';
        throw new SkybatchError('SKYBATCH_E_MAPPER_NOT_FOUND', `mapper ${spec.mapperId}${at} was not created when the job's script loaded on worker ${process.env.SKYBATCH_WORKER}; create mappers at the top level of the script`, {
          context: { jobId: spec.jobId },
        });
      }
      this.reader = makeReader(spec.reader);
      this.writers = this.dryRun ? [] : makeWriters(spec.writers);
      this.scopes = this.writers.map((w) => writerScope(w, spec.jobId));
      this.formatsLoaded = true;
      this.formatsReady();
      setMapperContext({ load: () => this.load(), saveResults: (r) => this.saveResults(r) });
      await fn();
    } catch (thrown) {
      const err = asPackageError(thrown);
      if (this.batchesTaken === 0 && !this.current) {
        send({ type: 'fatal', error: toWireError(err, { jobId: spec.jobId }) });
      } else {
        // The mapper died mid-job: the batch it held fails (and is retried elsewhere if it may be).
        // An error a batch already failed with (saveResults' rejection, rethrown) is charged to
        // that batch only: the next one, never started, is given back, not failed with it.
        const victim = this.current && !this.current.finished ? this.current : thrown === this.reported ? undefined : this.queue.shift();
        if (victim) this.finish(victim, { error: err });
      }
      for (const b of this.queue) this.giveBack(b);
      return { reusable: false, code: 1 };
    } finally {
      setMapperContext(undefined);
    }
    const leftover = [...(this.current && !this.current.finished ? [this.current] : []), ...this.queue];
    for (const b of leftover) {
      this.finish(b, {
        error: new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `${this.ref(b)}: the mapper returned before load() was exhausted; loop over every batch it yields`, {
          context: { jobId: spec.jobId, batch: [b.start, b.end] },
        }),
      });
    }
    // Only a mapper that returned after the agent's `end` and left nothing behind is reused.
    return { reusable: this.ended && this.keep && leftover.length === 0 && !spec.python, code: 0 };
  }
}

async function start(msg: Extract<AgentToMapper, { type: 'start' }>): Promise<void> {
  const run = new JobRun(msg.spec, msg.cacheDir, msg.dryRun === true);
  job = run;
  const { reusable, code } = await run.run(msg.bundlePath);
  if (reusable) {
    job = undefined;
    send({ type: 'idle' });
    return;
  }
  setTimeout(() => process.exit(code), code ? 50 : 10);
}

process.on('message', (raw: unknown) => eachMessage(raw, onMessage));

function onMessage(raw: unknown): void {
  const checked = checkFrame(agentToMapper, raw, 'the worker agent');
  if (!checked.ok) {
    send({ type: 'fatal', error: toWireError(checked.error) });
    return;
  }
  const msg = checked.msg;
  if (msg.type === 'start') {
    void start(msg);
  } else if (msg.type === 'batches') {
    if (job) for (const b of msg.batches) job.take(b);
  } else if (msg.type === 'end') {
    job?.end(msg.keep === true);
  } else if (msg.type === 'release') {
    job?.release(msg.index, msg.attempt);
  } else if (msg.type === 'ping') {
    send({ type: 'pong' });
  }
}
process.on('disconnect', () => process.exit(0));
