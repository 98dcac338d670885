/**
 * One job's mapper on one worker, in a process of its own (started by the agent, after the
 * job's `activateEnv` when given). It loads the bundle once, calls the mapper once, feeds
 * it batches through `load()`, and uploads each batch's results through every writer in
 * `saveResults()`. A batch that arrives while another runs is downloaded at once, so the
 * mapper never waits on storage between batches.
 */
import { withAttempt } from '../../formats/attempts.js';
import { SkybatchError, isRetryable, toWireError } from '../../formats/common/errors.js';
import type { InputReader, Item } from '../../formats/input-reader.js';
import type { OutputWriter } from '../../formats/output-writer.js';
import { buildId } from '../build-id.js';
import { agentToMapper, checkFrame } from '../protocol-guards.js';
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
}

let spec: JobSpec;
let reader: InputReader<object>;
let writers: OutputWriter<object>[];
let cacheDir: string;
let dryRun = false;
const queue: Batch[] = [];
let ended = false;
let wake: (() => void) | undefined;
let current: Batch | undefined;
let pendingSave: Promise<void> = Promise.resolve();
let batchesTaken = 0;
let formatsReady: () => void;
const ready = new Promise<void>((resolve) => (formatsReady = resolve));

const send = batchedSender<MapperToAgent>(
  (msg) => process.send?.(msg),
  () => {}, // the agent is gone: this process exits on 'disconnect'
);

function ref(b: Batch): string {
  return `job ${spec.jobId}, batch [${b.start}, ${b.end}]`;
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

async function finish(b: Batch, outcome: { items: number; sample?: unknown[]; deadLetters?: DeadLetter[] } | { error: unknown }): Promise<void> {
  if (b.finished) return;
  b.finished = true;
  if ('error' in outcome) {
    const error = toWireError(outcome.error, { jobId: spec.jobId, batch: [b.start, b.end], attempt: b.attempt });
    // A single item's input travels with its failure: it may end in errors.jsonl.
    const input = b.start === b.end && spec.onItemError === 'skip' ? await b.items.catch(() => undefined) : undefined;
    send({ type: 'batchFailed', index: b.index, attempt: b.attempt, error, ...(input ? { input } : {}) });
  } else {
    send({ type: 'batchDone', index: b.index, attempt: b.attempt, ...outcome });
  }
}

async function download(b: Omit<Batch, 'items'>): Promise<Item[]> {
  await ready;
  let items: Item[];
  try {
    items = await reader.downloadBatch(b.start, b.end, cacheDir);
  } catch (err) {
    // Storage and format errors already say what failed; anything else is the reader's own
    // failure, not the mapper's. A TypeError (a bug) is not retried; other errors are.
    if (err instanceof SkybatchError) throw err;
    const wrapped = new SkybatchError('SKYBATCH_E_READER', `${reader.constructor.name}.downloadBatch(${b.start}, ${b.end}) failed: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, {
      retryable: isRetryable(err),
      context: { jobId: spec.jobId, batch: [b.start, b.end], attempt: b.attempt },
      cause: err,
    });
    // the reader's own frames, so the trace points into the user's code
    if (err instanceof Error && err.stack) wrapped.stack = `${wrapped.name}: ${wrapped.message}\n${err.stack.split('\n').filter((l) => /^\s+at /.test(l)).join('\n')}`;
    throw wrapped;
  }
  const want = b.end - b.start + 1;
  if (!Array.isArray(items) || items.length !== want) {
    throw new SkybatchError('SKYBATCH_E_RESULT_COUNT', `${reader.constructor.name}.downloadBatch(${b.start}, ${b.end}) returned ${Array.isArray(items) ? items.length : typeof items} items, expected ${want}`, {
      context: { jobId: spec.jobId, batch: [b.start, b.end] },
    });
  }
  return items;
}

async function nextBatch(): Promise<Batch | undefined> {
  for (;;) {
    const b = queue.shift();
    if (b) return b;
    if (ended) return undefined;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

async function* load(): AsyncGenerator<Item[]> {
  for (;;) {
    await pendingSave;
    if (current && !current.finished) {
      const b = current;
      const err = new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `${ref(b)}: the mapper asked for the next batch without calling saveResults() for this one`, {
        context: { jobId: spec.jobId, batch: [b.start, b.end] },
      });
      finish(b, { error: err });
      throw err;
    }
    const b = await nextBatch();
    if (!b) return;
    let items: Item[];
    try {
      items = await b.items;
    } catch (err) {
      finish(b, { error: err }); // e.g. a malformed line: this batch fails, the mapper goes on
      continue;
    }
    current = b;
    batchesTaken++;
    send({ type: 'batchStarted', index: b.index, attempt: b.attempt });
    yield items;
  }
}

async function saveResults(results: unknown[]): Promise<void> {
  const b = current;
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
        `${ref(b)}: saveResults() got ${Array.isArray(results) ? results.length : typeof results} results for ${want} input items; return one result per item, in order`,
        { context: { jobId: spec.jobId, batch: [b.start, b.end] } },
      );
    }
    b.saved = true;
    const failed = results.flatMap((r, i) => (isFailedItem(r) ? [i] : []));
    if (failed.length && spec.onItemError !== 'skip') {
      const { error } = results[failed[0]] as FailedItem;
      throw new SkybatchError('SKYBATCH_E_ITEM_FAILED', `${ref(b)}: item ${b.start + failed[0]} failed: ${error.message} (pass onItemError: 'skip' to skip failed items)`, {
        context: { jobId: spec.jobId, batch: [b.start, b.end] },
        cause: error,
      });
    }
    // With 'skip', each run of good items is written as its own range; failed items go to errors.jsonl.
    const items = await b.items;
    const runs = goodRuns(results, b.start);
    await withAttempt({ jobId: spec.jobId, attempt: b.attempt }, () =>
      Promise.all(runs.flatMap((run) => writers.map((w) => asWriter(w, spec.jobId, () => w.uploadBatch(run.results as Item[], run.start, run.end, spec.jobId))))),
    );
    const deadLetters: DeadLetter[] = failed.map((i) => {
      const { error } = results[i] as FailedItem;
      return { index: b.start + i, input: items[i], error: error.message, code: 'SKYBATCH_E_ITEM_FAILED', stack: error.stack };
    });
    const sample = b.wantSample ? results.filter((r) => !isFailedItem(r)).slice(0, dryRun ? undefined : SAMPLE_SIZE).map((r) => previewValue(r)) : undefined;
    finish(b, { items: want - failed.length, sample, ...(deadLetters.length ? { deadLetters } : {}) });
  })();
  pendingSave = save.catch(() => {});
  try {
    await save;
  } catch (err) {
    finish(b, { error: err });
    throw err;
  }
}

/** The batch a Python mapper holds, as its bridge sees it (runtime/worker/python-bridge.ts). */
function bridgeBatch(b: Batch | undefined): BridgeBatch | undefined {
  return b && !b.finished ? { start: b.start, end: b.end, fail: (err) => void finish(b, { error: err }) } : undefined;
}

async function start(msg: Extract<AgentToMapper, { type: 'start' }>): Promise<void> {
  spec = msg.spec;
  cacheDir = msg.cacheDir;
  dryRun = msg.dryRun === true;
  process.argv = spec.argv;
  try {
    if (process.env.SKYBATCH_AGENT_BUILD && process.env.SKYBATCH_AGENT_BUILD !== buildId()) {
      throw new SkybatchError('SKYBATCH_E_PROTOCOL', `skybatch on worker ${process.env.SKYBATCH_WORKER} was reinstalled or rebuilt after the worker started (${process.env.SKYBATCH_AGENT_BUILD} → ${buildId()}); restart the pool: skybatch pool down ${spec.pool} -y, then pool apply`);
    }
    const header = await loadBundle(msg.bundlePath, await loadPackageApi());
    const python = spec.python;
    const fn = python ? pythonMapper({ ...spec, python }, { cacheDir, current: () => bridgeBatch(current) }) : jobMapper(spec, header);
    if (!fn) {
      const at = header?.mapper?.site[0] ? ` (created at ${header.mapper.site[0]} on the client)` : '';
      throw new SkybatchError('SKYBATCH_E_MAPPER_NOT_FOUND', `mapper ${spec.mapperId}${at} was not created when the job's script loaded on worker ${process.env.SKYBATCH_WORKER}; create mappers at the top level of the script`, {
        context: { jobId: spec.jobId },
      });
    }
    reader = makeReader(spec.reader);
    writers = dryRun ? [] : makeWriters(spec.writers);
    formatsReady();
    setMapperContext({ load, saveResults });
    await fn();
  } catch (thrown) {
    const err = asPackageError(thrown);
    if (batchesTaken === 0 && !current) {
      send({ type: 'fatal', error: toWireError(err, { jobId: spec.jobId }) });
    } else {
      // The mapper died mid-job: the batch it held fails (and is retried elsewhere if it may be).
      const victim = current && !current.finished ? current : queue.shift();
      if (victim) finish(victim, { error: err });
    }
    for (const b of queue) {
      b.finished = true;
      send({ type: 'batchReleased', index: b.index, attempt: b.attempt });
    }
    setTimeout(() => process.exit(1), 50);
    return;
  }
  const leftover = [...(current && !current.finished ? [current] : []), ...queue];
  for (const b of leftover) {
    finish(b, {
      error: new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `${ref(b)}: the mapper returned before load() was exhausted; loop over every batch it yields`, {
        context: { jobId: spec.jobId, batch: [b.start, b.end] },
      }),
    });
  }
  setTimeout(() => process.exit(0), 10);
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
    const b: Batch = { ...msg, saved: false, finished: false, items: Promise.resolve([]) };
    b.items = Promise.resolve().then(() => download(b));
    b.items.catch(() => {});
    queue.push(b);
    wake?.();
  } else if (msg.type === 'end') {
    ended = true;
    wake?.();
  }
}
process.on('disconnect', () => process.exit(0));
