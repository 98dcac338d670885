import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkybatchError, WireError } from '../../formats/common/errors.js';
import type { InputReader } from '../../formats/input-reader.js';
import { assertSeparateOutputs } from '../../formats/output-claims.js';
import { OutputWriter } from '../../formats/output-writer.js';
import { BUILTIN_FORMATS } from '../../formats/builtins.js';
import { JsonReader } from '../../formats/json-reader.js';
import { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from '../../formats/registries.js';
import { errorsPath } from '../../formats/utils.js';
import { formatEventLine } from '../job-events.js';
import { jobOptionProblems } from '../job-options.js';
import { isHost, mapperInfo, signalMapReached } from '../mapper-api.js';
import type { EventDetail, FormatSpec, JobEvent, JobRequest, JobStatus, JobSummary } from '../protocol.js';
import { isPythonFunction, pythonMapperInfo } from '../python-mapper.js';
import { bundleScript, type Bundle } from './bundle.js';
import { CoordinatorClient } from './connection.js';
import { cachedIndex } from './jsonl-index-cache.js';
import { followJob } from './job-follower.js';
import { ProgressView } from './progress.js';

/** Options of `Dataset.map`. */
export interface MapOptions {
  /** The pool to run on (created with `skybatch pool apply`). */
  poolName: string;
  /** Items per batch: 1 to 1,000,000, and a job has at most 1,000,000 batches (the coordinator refuses more). */
  batchSize: number;
  /** One writer or several; each selects the columns it needs from the same results. */
  output: OutputWriter<object> | OutputWriter<object>[];
  /** Shell commands run before each worker starts the mapper, e.g. `source .venv/bin/activate`. */
  activateEnv?: string;
  /** Default `true`: resolve when the job ends, showing progress. `false`: resolve once submitted. */
  stream?: boolean;
  /** The script to bundle for workers. Default: the script being run (`process.argv[1]`). */
  script?: string;
  /**
   * Packages are never bundled: workers import them from the script's project, as the
   * script does (then from their own folder). Names listed here also stay external when
   * they resolve to your own source (a workspace link, a tsconfig path), which is bundled otherwise.
   */
  external?: string[];
  /** Attempts per batch before the job fails. Default 4 (3 retries). */
  maxAttempts?: number;
  /** First retry delay in ms, doubling each attempt. Default 1000. */
  retryBaseMs?: number;
  /**
   * A batch running longer than this (ms) is taken from its worker and retried. Default 30 min.
   * It also bounds how long a worker may hold batches without starting one (which includes
   * the mapper's one-time setup before its first batch): past that its mapper counts as hung
   * and is restarted, and those batches go elsewhere without counting as failures.
   */
  batchTimeoutMs?: number;
  /**
   * 'fail' (default): an item that fails (an error, or `sky.failItem()` in its place) fails
   * the job once its batch's retries are spent. 'skip': such items go to `errors.jsonl`
   * next to the output (index, input, error, stack) and the job goes on; a batch that keeps
   * failing is retried item by item, so one poison row costs one row.
   */
  onItemError?: 'fail' | 'skip';
  /**
   * This job's weight when several jobs run on the pool at once. Running jobs share the
   * workers in proportion to their priorities: default 1 (equal shares); 2 gets twice the
   * workers of a job with 1. A number more than 0, at most 1000.
   */
  priority?: number;
  /**
   * Continue this failed or cancelled job instead of starting a new one: only the batches
   * that did not finish run, with this call's mapper. Input, batch size and outputs must match.
   */
  resumeFrom?: string;
  /** Where progress goes: `true` (default) a terminal bar, `false` nothing, or your own listener. */
  progress?: boolean | ((event: JobEvent) => void);
}

// Variables that describe the submitting machine or session, not the user's settings.
const LOCAL_ENV = /^(PATH|HOME|USER|LOGNAME|SHELL|PWD|OLDPWD|TMPDIR|TMP|TEMP|SHLVL|_|TERM|TERM_.*|COLORTERM|DISPLAY|WAYLAND_.*|SSH_.*|XDG_.*|NODE_OPTIONS|NODE_CHANNEL_.*|NODE_UNIQUE_ID|npm_.*|INIT_CWD|SKYBATCH_(HOME|TOKEN|COORDINATOR_URL|CA|EVENTS|JOB_ID|WORKER|AGENT_BUILD|SERVERS_DIR|TEST_.*)|VSCODE_.*|ELECTRON_.*|HOSTNAME|MAIL|LS_COLORS)$/;

/** A submitted job. */
export class Job {
  status: JobStatus;
  summary?: JobSummary;

  constructor(
    readonly jobId: string,
    readonly poolName: string,
    status: JobStatus = 'PENDING',
  ) {
    this.status = status;
  }

  /** Cancels the job; the pool keeps running and finished batches are kept. */
  async cancel(): Promise<void> {
    const client = await CoordinatorClient.forPool(this.poolName);
    try {
      await client.request({ type: 'cancel', jobId: this.jobId });
    } finally {
      client.close();
    }
  }
}

/** The failure of a job, carrying its id, code and the command that recovers partial results. */
export class JobFailedError extends SkybatchError {
  declare readonly job: Job;

  constructor(job: Job, wire: WireError) {
    super((wire.code as SkybatchError['code']) ?? 'SKYBATCH_E_BATCH_FAILED', wire.message, { context: { ...wire.context, jobId: job.jobId } });
    // not enumerable: an uncaught failure prints the message and stack, not the whole summary
    Object.defineProperty(this, 'job', { value: job, enumerable: false });
    if (wire.stack) this.stack = `${this.name} [${wire.code}]: ${wire.message}\n--- where it was thrown:\n${wire.stack}`;
  }
}

/** A dataset: an input reader to map functions over. */
export class Dataset {
  constructor(readonly reader: InputReader<object>) {}

  /**
   * Runs `mapper` (a `remoteFunction`, or a Python mapper from `pythonFunction`) over every
   * item on the pool's workers and writes the results through `output`. Workers run only
   * the mapper, the job's custom formats and the declarations they use; should a `map()` call run on a worker all the same (a mapper created inside
   * the function that submits), it never resolves there: no job is ever resubmitted.
   */
  async map(mapper: unknown, options: MapOptions): Promise<Job> {
    if (isHost()) {
      signalMapReached();
      return new Promise<Job>(() => {});
    }
    const { job, bundle } = await prepareJob(this.reader, mapper, options);
    const client = await CoordinatorClient.forPool(options.poolName);
    try {
      const { has } = await client.request({ type: 'hasBundle', hash: bundle.hash });
      const stream = options.stream ?? true;
      const buffered: JobEvent[] = [];
      const off = client.onEvent((e) => buffered.push(e));
      const code = has ? undefined : bundle.code;
      const events = eventsFor(options.progress);
      const { jobId } = await client.request(
        options.resumeFrom ? { type: 'resume', jobId: String(options.resumeFrom), job, bundle: code, events } : { type: 'submit', job, bundle: code, events },
      );
      off();
      const result = new Job(jobId, options.poolName);
      if (!stream) return result;
      const view = options.progress === false ? undefined : typeof options.progress === 'function' ? options.progress : defaultView(jobId);
      await follow(client, result, buffered, view);
      return result;
    } finally {
      client.close();
    }
  }
}

/**
 * Whether `w` runs OutputWriter's own no-op `reduceResults` and `cleanup`: no object on its
 * prototype chain below OutputWriter.prototype (the instance included: a field holding a
 * function) defines either.
 */
function hasNoReduceStep(w: OutputWriter<object>): boolean {
  for (let o: object | null = w; o !== OutputWriter.prototype; o = Object.getPrototypeOf(o)) {
    if (o === null || Object.hasOwn(o, 'reduceResults') || Object.hasOwn(o, 'cleanup')) return false;
  }
  return true;
}

/**
 * Everything `map()` does before it talks to a pool: checks the options and outputs,
 * bundles what workers run of the script and reads the input's length. The notebook runs
 * this alone ("can this job be packed?") before it starts a pool.
 */
export async function prepareJob(reader: InputReader<object>, mapper: unknown, options: MapOptions): Promise<{ job: JobRequest; bundle: Bundle; script: string }> {
  const py = isPythonFunction(mapper) ? pythonMapperInfo(mapper) : undefined;
  const ts = py ? undefined : mapperInfo(mapper);
  const { id: mapperId, definedIn } = py ?? ts!;
  validate(options);
  const writers = Array.isArray(options.output) ? options.output : [options.output];
  // `builtin`: the coordinator may reduce it in its own process (no user code in its class);
  // `noReduceStep`: a user's class whose reduce step is OutputWriter's no-ops, reduced there too
  const writerSpecs = writers.map((w) => ({
    ...spec(w, OUTPUT_WRITER_REGISTRY.nameOf(w)),
    ...(BUILTIN_FORMATS.has(w.constructor) ? { builtin: true } : hasNoReduceStep(w) ? { noReduceStep: w.constructor.name } : {}),
  }));
  assertSeparateOutputs(
    writers.map((w, i) => ({ ...writerSpecs[i], label: `${w.constructor.name}(${w.path})` })),
    { errorsFile: options.onItemError === 'skip' ? errorsPath(writers[0].path) : undefined },
  );
  const script = path.resolve(options.script ?? scriptOf(definedIn));
  const readerType = INPUT_READER_REGISTRY.nameOf(reader);
  const formats = [
    { kind: 'reader' as const, type: readerType, builtin: BUILTIN_FORMATS.has(INPUT_READER_REGISTRY.get(readerType)) },
    ...writers.map((w) => {
      const type = OUTPUT_WRITER_REGISTRY.nameOf(w);
      return { kind: 'writer' as const, type, builtin: BUILTIN_FORMATS.has(OUTPUT_WRITER_REGISTRY.get(type)) };
    }),
  ];
  // A Python mapper is not in the script: of it, workers run only the job's custom formats.
  const root = ts && { mapper: { name: mapperId.replace(/#\d+$/, ''), site: ts.site, ordinal: ts.ordinal } };
  const bundling = bundleScript({ entry: script, ...root, formats, external: options.external });
  // A plain JsonReader over a local file it indexed before takes that index from the cache.
  const counting = reader instanceof JsonReader && reader.constructor === JsonReader ? cachedIndex(reader.path).then((index) => (reader.importJobState(index), reader.length())) : reader.length();
  const [bundle, total] = await Promise.all([bundling, counting]);
  for (const note of bundle.notes) process.stderr.write(`skybatch: ${note}\n`);
  if (!Number.isInteger(total) || total < 0) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${reader.constructor.name}.length() returned ${total}; expected a non-negative integer`);
  }
  if (total === 0) {
    throw new SkybatchError('SKYBATCH_E_EMPTY_INPUT', `the input ${reader.path || reader.constructor.name} has no items: nothing to map`, { context: { path: reader.path } });
  }
  const job: JobRequest = {
    bundleHash: bundle.hash,
    mapperId,
    scriptPath: script,
    reader: { ...spec(reader, INPUT_READER_REGISTRY.nameOf(reader)), state: reader.exportJobState(options.batchSize) },
    writers: writerSpecs,
    batchSize: options.batchSize,
    total,
    env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !LOCAL_ENV.test(e[0]))),
    argv: process.argv,
    cwd: process.cwd(),
    activateEnv: options.activateEnv,
    maxAttempts: options.maxAttempts,
    retryBaseMs: options.retryBaseMs,
    batchTimeoutMs: options.batchTimeoutMs,
    onItemError: options.onItemError,
    ...(options.priority !== undefined ? { priority: options.priority } : {}),
    ...(py ? { python: py.python } : {}),
  };
  return { job, bundle, script };
}

/**
 * Waits for a job's end, feeding its events to a view, across lost connections and
 * coordinator restarts (see followJob); throws `JobFailedError` unless it succeeded.
 */
export async function follow(client: CoordinatorClient | undefined, job: Job, early: JobEvent[], view?: ProgressView | ((e: JobEvent) => void)): Promise<void> {
  const show = (e: JobEvent) => (typeof view === 'function' ? view(e) : view?.handle(e));
  let final: JobSummary;
  try {
    final = await followJob(job.jobId, { poolName: job.poolName, client, early, show, events: typeof view === 'function' ? 'all' : 'progress' });
  } finally {
    if (view instanceof ProgressView) view.stop();
  }
  job.status = final.status;
  job.summary = final;
  if (final.status !== 'SUCCEEDED') {
    throw new JobFailedError(job, final.error ?? { code: 'SKYBATCH_E_BATCH_FAILED', message: `job ${job.jobId} ${final.status}`, retryable: false });
  }
}

/**
 * The terminal progress bar, or, with `SKYBATCH_EVENTS=jsonl` (set by tools that drive a
 * script, like the VS Code extension), every event as one `SKYBATCH_EVENT {json}` line on stdout.
 */
export function defaultView(jobId: string): ProgressView | ((e: JobEvent) => void) {
  if (process.env.SKYBATCH_EVENTS === 'jsonl') return (e) => process.stdout.write(`${formatEventLine(e)}\n`);
  return new ProgressView(jobId);
}

/** The events a `progress` option needs: a function or the jsonl stream gets all, the progress bar (or nothing) only progress. */
export function eventsFor(progress: MapOptions['progress']): EventDetail {
  return typeof progress === 'function' || (progress !== false && process.env.SKYBATCH_EVENTS === 'jsonl') ? 'all' : 'progress';
}

export function spec(f: InputReader<object> | OutputWriter<object>, type: string): FormatSpec {
  let options: unknown;
  try {
    options = JSON.parse(JSON.stringify(f.options ?? {}));
  } catch (err) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${f.constructor.name}(${f.path}): options must be plain JSON to reach the workers: ${(err as Error).message}`);
  }
  return { type, path: f.path, options };
}

function scriptOf(definedIn: string | undefined): string {
  const main = process.argv[1];
  if (main && /\.[cm]?[jt]sx?$/.test(main) && fs.existsSync(main)) return main;
  if (definedIn) return definedIn;
  throw new SkybatchError('SKYBATCH_E_BAD_OPTION', 'cannot tell which script defines the mapper: pass { script: "path/to/script.ts" } to map()', { context: { field: 'script' } });
}

function validate(o: MapOptions): void {
  const bad = (field: string, want: string, got: unknown) =>
    new SkybatchError('SKYBATCH_E_BAD_OPTION', `map(): option '${field}' must be ${want}, got ${JSON.stringify(got)}`, { context: { field } });
  if (!o || typeof o !== 'object') throw bad('options', 'an object', o);
  const [p] = jobOptionProblems(o);
  if (p) throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `map(): option '${p.field}' ${p.message}, got ${JSON.stringify(p.got)}`, { context: { field: p.field } });
  const outs = Array.isArray(o.output) ? o.output : [o.output];
  if (!outs.length || outs.some((w) => !w || typeof (w as OutputWriter<object>).uploadBatch !== 'function')) throw bad('output', 'an OutputWriter or a non-empty list of them', typeof o.output);
}
