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
import { SkybatchError, isRetryable, toWireError } from '../../formats/common/errors.js';
import type { InputReader, Item } from '../../formats/input-reader.js';
import type { OutputWriter } from '../../formats/output-writer.js';
import { buildId } from '../build-id.js';
import { agentToMapper, checkFrame } from '../protocol-guards.js';
import type { BundleHeader } from '../bundle-header.js';
import { asWriter, jobMapper, loadBundle, makeReader, makeWriters } from '../bundle-loader.js';
import { loadPackageApi } from '../package-api.js';
import { asPackageError } from '../host-packages.js';
import { FailedItem, isFailedItem, setMapperContext } from '../mapper-api.js';
import type { DeadLetter, JobSpec } from '../protocol.js';
import type { AgentToMapper, MapperToAgent } from './mapper-ipc.js';
import { batchedSender, eachMessage } from './ipc-batch.js';
import { previewValue } from './preview.js';
import { type BridgeBatch, pythonMapper } from './python-bridge.js';

const SAMPLE_SIZE = 5;

interface Batch {
  index: number;
  start: number;
  end: number;
  attempt: number;
  wantSample: boolean;
  items: Promise<Item[]>;
  saved: boolean;
  finished: boolean;
  /** When load() handed it to the mapper. */
  yieldedAt?: number;
}

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
  private readonly queue: Batch[] = [];
  private ended = false;
  /** The agent asked this process to stay for a next job once this one returns cleanly. */
  keep = false;
  private wake: (() => void) | undefined;
  private current: Batch | undefined;
  private pendingSave: Promise<void> = Promise.resolve();
  private batchesTaken = 0;
  private formatsReady!: () => void;
  private readonly ready = new Promise<void>((resolve) => (this.formatsReady = resolve));

  constructor(
    readonly spec: JobSpec,
    private readonly cacheDir: string,
    private readonly dryRun: boolean,
  ) {}

  private ref(b: Batch): string {
    return `job ${this.spec.jobId}, batch [${b.start}, ${b.end}]`;
  }

  private async finish(b: Batch, outcome: { items: number; sample?: unknown[]; deadLetters?: DeadLetter[] } | { error: unknown }): Promise<void> {
    if (b.finished) return;
    b.finished = true;
    if ('error' in outcome) {
      const error = toWireError(outcome.error, { jobId: this.spec.jobId, batch: [b.start, b.end], attempt: b.attempt });
      // A single item's input travels with its failure: it may end in errors.jsonl.
      const input = b.start === b.end && this.spec.onItemError === 'skip' ? await b.items.catch(() => undefined) : undefined;
      send({ type: 'batchFailed', index: b.index, attempt: b.attempt, error, ...(input ? { input } : {}) });
    } else {
      send({ type: 'batchDone', index: b.index, attempt: b.attempt, ...outcome });
    }
    // The queue leaves at the tick's end, but a mapper's loop goes from saveResults straight
    // into its next batch without one: a synchronous batch (CPU-bound work) would hold this
    // report until it ends, and the coordinator would learn of each batch a batch late (its
    // clock, credit and tail balancing with it). A batch that took a while is reported at
    // once; fast ones still share a write.
    if (b.yieldedAt !== undefined && performance.now() - b.yieldedAt >= REPORT_AT_ONCE_MS) send.flush();
  }

  private async download(b: Omit<Batch, 'items'>): Promise<Item[]> {
    await this.ready;
    const reader = this.reader;
    let items: Item[];
    try {
      items = await reader.downloadBatch(b.start, b.end, this.cacheDir);
    } catch (err) {
      // Storage and format errors already say what failed; anything else is the reader's own
      // failure, not the mapper's. A TypeError (a bug) is not retried; other errors are.
      if (err instanceof SkybatchError) throw err;
      const wrapped = new SkybatchError('SKYBATCH_E_READER', `${reader.constructor.name}.downloadBatch(${b.start}, ${b.end}) failed: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, {
        retryable: isRetryable(err),
        context: { jobId: this.spec.jobId, batch: [b.start, b.end], attempt: b.attempt },
        cause: err,
      });
      // the reader's own frames, so the trace points into the user's code
      if (err instanceof Error && err.stack) wrapped.stack = `${wrapped.name}: ${wrapped.message}\n${err.stack.split('\n').filter((l) => /^\s+at /.test(l)).join('\n')}`;
      throw wrapped;
    }
    const want = b.end - b.start + 1;
    if (!Array.isArray(items) || items.length !== want) {
      throw new SkybatchError('SKYBATCH_E_RESULT_COUNT', `${reader.constructor.name}.downloadBatch(${b.start}, ${b.end}) returned ${Array.isArray(items) ? items.length : typeof items} items, expected ${want}`, {
        context: { jobId: this.spec.jobId, batch: [b.start, b.end] },
      });
    }
    return items;
  }

  /** A batch the agent handed over: its download starts at once (prefetch). */
  take(msg: Extract<AgentToMapper, { type: 'batch' }>): void {
    const b: Batch = { ...msg, saved: false, finished: false, items: Promise.resolve([]) };
    b.items = Promise.resolve().then(() => this.download(b));
    b.items.catch(() => {});
    this.queue.push(b);
    this.wake?.();
  }

  end(keep: boolean): void {
    this.ended = true;
    this.keep = keep;
    this.wake?.();
  }

  private async nextBatch(): Promise<Batch | undefined> {
    for (;;) {
      const b = this.queue.shift();
      if (b) return b;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private async *load(): AsyncGenerator<Item[]> {
    for (;;) {
      await this.pendingSave;
      const current = this.current;
      if (current && !current.finished) {
        const err = new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `${this.ref(current)}: the mapper asked for the next batch without calling saveResults() for this one`, {
          context: { jobId: this.spec.jobId, batch: [current.start, current.end] },
        });
        void this.finish(current, { error: err });
        throw err;
      }
      const b = await this.nextBatch();
      if (!b) return;
      let items: Item[];
      try {
        items = await b.items;
      } catch (err) {
        void this.finish(b, { error: err }); // e.g. a malformed line: this batch fails, the mapper goes on
        continue;
      }
      this.current = b;
      this.batchesTaken++;
      send({ type: 'batchStarted', index: b.index, attempt: b.attempt });
      b.yieldedAt = performance.now();
      yield items;
    }
  }

  private async saveResults(results: unknown[]): Promise<void> {
    const b = this.current;
    const spec = this.spec;
    if (!b || b.finished) {
      throw new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `job ${spec.jobId}: saveResults() was called ${b ? 'twice for one batch' : 'outside a batch'}; call it once for each batch load() yields`, {
        context: { jobId: spec.jobId },
      });
    }
    const save = (async () => {
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
      const items = await b.items;
      const runs = failed.length ? goodRuns(results, b.start) : [{ start: b.start, end: b.end, results }];
      await withAttempt({ jobId: spec.jobId, attempt: b.attempt }, () =>
        Promise.all(runs.flatMap((run) => this.writers.map((w) => asWriter(w, spec.jobId, () => w.uploadBatch(run.results as Item[], run.start, run.end, spec.jobId))))),
      );
      const deadLetters: DeadLetter[] = failed.map((i) => {
        const { error } = results[i] as FailedItem;
        return { index: b.start + i, input: items[i], error: error.message, code: 'SKYBATCH_E_ITEM_FAILED', stack: error.stack };
      });
      const sample = b.wantSample ? results.filter((r) => !isFailedItem(r)).slice(0, this.dryRun ? undefined : SAMPLE_SIZE).map((r) => previewValue(r)) : undefined;
      void this.finish(b, { items: want - failed.length, sample, ...(deadLetters.length ? { deadLetters } : {}) });
    })();
    this.pendingSave = save.catch(() => {});
    try {
      await save;
    } catch (err) {
      void this.finish(b, { error: err });
      throw err;
    }
  }

  /** The batch a Python mapper holds, as its bridge sees it (runtime/worker/python-bridge.ts). */
  private bridgeBatch(): BridgeBatch | undefined {
    const b = this.current;
    return b && !b.finished ? { start: b.start, end: b.end, fail: (err) => void this.finish(b, { error: err }) } : undefined;
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
      if (!loaded) loaded = { bundlePath, header: await loadBundle(bundlePath, await loadPackageApi()) };
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
      this.formatsReady();
      setMapperContext({ load: () => this.load(), saveResults: (r) => this.saveResults(r) });
      await fn();
    } catch (thrown) {
      const err = asPackageError(thrown);
      if (this.batchesTaken === 0 && !this.current) {
        send({ type: 'fatal', error: toWireError(err, { jobId: spec.jobId }) });
      } else {
        // The mapper died mid-job: the batch it held fails (and is retried elsewhere if it may be).
        const victim = this.current && !this.current.finished ? this.current : this.queue.shift();
        if (victim) void this.finish(victim, { error: err });
      }
      for (const b of this.queue) {
        b.finished = true;
        send({ type: 'batchReleased', index: b.index, attempt: b.attempt });
      }
      return { reusable: false, code: 1 };
    } finally {
      setMapperContext(undefined);
    }
    const leftover = [...(this.current && !this.current.finished ? [this.current] : []), ...this.queue];
    for (const b of leftover) {
      void this.finish(b, {
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
  } else if (msg.type === 'batch') {
    job?.take(msg);
  } else if (msg.type === 'end') {
    job?.end(msg.keep === true);
  } else if (msg.type === 'ping') {
    send({ type: 'pong' });
  }
}
process.on('disconnect', () => process.exit(0));
