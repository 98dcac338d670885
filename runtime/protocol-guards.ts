/**
 * The runtime side of protocol.ts: one zod schema per message, so every receiver
 * (coordinator, worker agent, mapper process, client) checks a frame before it acts on it,
 * instead of trusting `JSON.parse(...) as X`. Each schema is checked at compile time to
 * have exactly the keys and types of its protocol type, so the two cannot drift apart.
 */
import { z } from 'zod';
import { ErrorCode, SkybatchError } from '../formats/common/errors.js';
import { FORMAT_NAME_PATTERN } from '../formats/registry.js';
import { checkJobLimits, jobOptionFields, poolName } from './job-options.js';
import { BUNDLE_HASH_PATTERN, JOB_ID_PATTERN } from './store/pool-store.js';
import * as hot from './hot-frames.js';
import type * as P from './protocol.js';
import type { AgentToMapper, MapperToAgent } from './worker/mapper-ipc.js';

/** The largest frame a coordinator accepts: a job's bundle travels in its submit frame and may be several MB. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Same types and the same keys: a schema that forgets an optional field fails this too. */
type Exact<A, B> = Same<A, B> extends true ? Same<keyof A, keyof B> : false;
type AllTrue<T> = false extends T ? false : true;
/** Each member of union `B`, found in `A` by its discriminant `K`, is exact. */
type ExactMembers<A, B, K extends string> = Same<A, B> extends true ? AllTrue<B extends unknown ? Exact<Extract<A, { [P in K]: B[K & keyof B] }>, B> : never> : false;

/** Returns `schema` unchanged; fails to compile when its output type is not exactly `T`. */
const exact =
  <T>() =>
  <S extends z.ZodType>(schema: S, ..._mismatch: Exact<z.output<S>, T> extends true ? [] : ['the schema does not match its protocol type']) =>
    schema;
const exactUnion =
  <T, K extends string>(_key: K) =>
  <S extends z.ZodType>(schema: S, ..._mismatch: ExactMembers<z.output<S>, T, K> extends true ? [] : ['a member does not match its protocol type']) =>
    schema;

const count = z.number().int().min(0);
const jobId = z.string().regex(JOB_ID_PATTERN, 'must be decimal digits');
const bundleHash = z.string().regex(BUNDLE_HASH_PATTERN, 'must be 64 lowercase hex digits (a sha256)');
const range = z.tuple([z.number(), z.number()]);

const errorContext = exact<import('../formats/common/errors.js').ErrorContext>()(
  z.object({
    jobId: z.string().optional(),
    batch: range.optional(),
    worker: z.string().optional(),
    attempt: z.number().optional(),
    path: z.string().optional(),
    line: z.number().optional(),
    field: z.string().optional(),
  }),
);
export const wireError = exact<import('../formats/common/errors.js').WireError>()(
  z.object({ code: z.string(), message: z.string(), stack: z.string().optional(), retryable: z.boolean(), context: errorContext.optional() }),
);
const deadLetter = exact<P.DeadLetter>()(z.object({ index: count, input: z.unknown(), error: z.string(), code: z.string(), stack: z.string().optional() }));

const formatSpec = exact<P.FormatSpec>()(z.object({ type: z.string().regex(FORMAT_NAME_PATTERN, 'must be a registered format name'), path: z.string(), options: z.unknown(), builtin: z.boolean().optional(), noReduceStep: z.string().max(200).regex(/^[^\x00-\x1f\x7f]*$/, 'must be a class name').optional() }));
const readerSpec = exact<P.JobRequest['reader']>()(formatSpec.extend({ state: z.unknown().optional() }));

/** A Python mapper's file: travels in the job (a mapper file, not data). */
export const MAX_PYTHON_SOURCE_BYTES = 4 * 1024 * 1024;
const pythonMapper = exact<P.PythonMapperSpec>()(
  z.object({
    // workers store it under its own name: that name must be a file name
    file: z.string().regex(/(^|\/)(?!\.\.?$)[^/\\\0]+$/, 'must be the path of a file'),
    source: z.string().max(MAX_PYTHON_SOURCE_BYTES, `must be at most ${MAX_PYTHON_SOURCE_BYTES} characters`),
    function: z.string().regex(/^[\p{L}_][\p{L}\p{N}_]*$/u, 'must be a Python function name').optional(),
    interpreter: z.string().min(1, 'must name an interpreter').optional(),
  }),
);

const jobRequestFields = {
  bundleHash,
  mapperId: z.string().min(1, 'must name the mapper'),
  scriptPath: z.string(),
  reader: readerSpec,
  writers: z.array(formatSpec).min(1, 'must list at least one writer'),
  ...jobOptionFields,
  total: z.number().int('must be a whole number').min(0, 'must not be negative').max(Number.MAX_SAFE_INTEGER, 'is too large'),
  env: z.record(z.string(), z.string()),
  argv: z.array(z.string()),
  cwd: z.string(),
  python: pythonMapper.optional(),
};

export const jobRequest = exact<P.JobRequest>()(z.object(jobRequestFields).superRefine(checkJobLimits));
export const jobSpec = exact<P.JobSpec>()(
  z.object({ ...jobRequestFields, jobId, pool: poolName, createdAt: z.string(), packages: z.object({ hash: bundleHash }).optional() }).superRefine(checkJobLimits),
);

const jobStatus = z.enum(['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']);
const batchState = z.enum(['pending', 'queued', 'running', 'retrying', 'done', 'failed', 'split', 'skipped']);
const workerState = z.enum(['starting', 'setup', 'idle', 'busy', 'failed', 'gone']);

const jobSummary = exact<P.JobSummary>()(
  z.object({
    jobId: z.string(),
    pool: z.string(),
    status: jobStatus,
    scriptPath: z.string(),
    createdAt: z.string(),
    finishedAt: z.string().optional(),
    batchesTotal: count,
    batchesDone: count,
    itemsTotal: count,
    itemsDone: count,
    itemsFailed: count.optional(),
    retries: count,
    outputs: z.array(z.string()),
    error: wireError.optional(),
  }),
);
const batchInfo = exact<P.BatchInfo>()(z.object({ index: count, start: count, end: count, state: batchState, attempt: count, worker: z.string().optional() }));
const workerResources = exact<P.WorkerResources>()(
  z.object({
    gpus: z.array(z.object({ index: count, name: z.string() })).optional(),
    cpus: z.string().optional(),
    memoryMb: z.number().optional(),
    notes: z.array(z.string()).optional(),
  }),
);
const workerSummary = exact<P.WorkerSummary>()(
  z.object({
    workerId: z.string(),
    name: z.string(),
    host: z.string(),
    state: workerState,
    jobId: z.string().optional(),
    batches: z.array(range),
    resources: workerResources.optional(),
    error: z.string().optional(),
  }),
);
const backendWorker = exact<P.BackendWorkerSummary>()(
  z.object({
    name: z.string(),
    host: z.string(),
    state: z.enum(['pending', 'starting', 'running', 'gone']),
    reason: z.string().optional(),
    since: z.string(),
    failures: count,
  }),
);
const poolSummary = exact<P.PoolSummary>()(
  z.object({
    pool: z.string(),
    url: z.string(),
    pid: z.number(),
    workersWanted: z.number(),
    workers: z.array(workerSummary),
    jobs: z.array(jobSummary),
    backend: z.object({ kind: z.string(), workers: z.array(backendWorker) }).optional(),
    autoscale: z.object({ min: z.number(), max: z.number(), wanted: z.number(), reason: z.string() }).optional(),
  }),
);

const jobEvent = exactUnion<P.JobEvent, 'kind'>('kind')(
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('jobSubmitted'), job: jobSummary }),
    z.object({
      kind: z.literal('progress'),
      jobId: z.string(),
      batchesDone: z.number(),
      batchesTotal: z.number(),
      itemsDone: z.number(),
      itemsTotal: z.number(),
      failed: z.number(),
      retrying: z.number(),
      itemsPerSec: z.number(),
    }),
    z.object({
      kind: z.literal('batch'),
      jobId: z.string(),
      index: count,
      start: count,
      end: count,
      state: batchState,
      worker: z.string().optional(),
      attempt: count,
      error: wireError.optional(),
    }),
    z.object({ kind: z.literal('worker'), worker: workerSummary }),
    z.object({ kind: z.literal('sample'), jobId: z.string(), start: count, results: z.array(z.unknown()) }),
    z.object({ kind: z.literal('log'), jobId: z.string().optional(), worker: z.string().optional(), stream: z.enum(['stdout', 'stderr', 'info']), line: z.string() }),
    z.object({ kind: z.literal('jobFinished'), job: jobSummary, recoverCommand: z.string().optional() }),
  ]),
);

const reqId = count;
const eventDetail = z.enum(['all', 'progress']).optional();
const clientHello = z.object({ type: z.literal('hello'), protocolVersion: z.number(), role: z.literal('client') });
export const clientMessage = exactUnion<P.ClientMessage, 'type'>('type')(
  z.discriminatedUnion('type', [
    clientHello,
    z.object({ type: z.literal('submit'), reqId, job: jobRequest, bundle: z.string().optional(), events: eventDetail }),
    z.object({ type: z.literal('resume'), reqId, jobId, job: jobRequest.optional(), bundle: z.string().optional(), events: eventDetail }),
    z.object({ type: z.literal('subscribe'), reqId, jobId: jobId.optional(), events: eventDetail }),
    z.object({ type: z.literal('cancel'), reqId, jobId }),
    z.object({ type: z.literal('status'), reqId }),
    z.object({ type: z.literal('batches'), reqId, jobId }),
    z.object({ type: z.literal('hasBundle'), reqId, hash: bundleHash }),
    z.object({ type: z.literal('scale'), reqId, workers: z.number().int('must be a whole number').min(1, 'must be at least 1').max(1024, 'must be at most 1024') }),
    z.object({ type: z.literal('shutdown'), reqId }),
  ]),
);

const batchRef = { jobId, index: count, attempt: count };
const workerHello = exact<Extract<P.WorkerMessage, { type: 'hello' }>>()(
  z.object({
    type: z.literal('hello'),
    protocolVersion: z.number(),
    role: z.literal('worker'),
    name: z.string().min(1).max(256),
    host: z.string().max(256),
    pid: z.number().int(),
    resources: workerResources.optional(),
    launch: z.string().max(256).optional(),
    batchFrames: z.boolean().optional(),
  }),
);
const batchReportItem = exactUnion<P.BatchReportItem, 'type'>('type')(
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('batchStarted'), index: count, attempt: count }),
    z.object({ type: z.literal('batchDone'), index: count, attempt: count, items: count, sample: z.array(z.unknown()).optional(), deadLetters: z.array(deadLetter).optional() }),
    z.object({ type: z.literal('batchReleased'), index: count, attempt: count, prefetchError: wireError.optional() }),
    z.object({ type: z.literal('batchFailed'), index: count, attempt: count, error: wireError, input: z.array(z.unknown()).optional() }),
  ]),
);
const batchAssignment = exact<P.BatchAssignment>()(z.object({ index: count, start: count, end: count, attempt: count, wantSample: z.boolean() }));
export const workerMessage = exactUnion<P.WorkerMessage, 'type'>('type')(
  z.discriminatedUnion('type', [
    workerHello,
    z.object({ type: z.literal('setupLog'), stream: z.enum(['stdout', 'stderr']), line: z.string() }),
    z.object({ type: z.literal('ready') }),
    z.object({ type: z.literal('setupFailed'), error: wireError }),
    z.object({ type: z.literal('getBundle'), hash: bundleHash }),
    z.object({ type: z.literal('getPackages'), hash: bundleHash }),
    z.object({ type: z.literal('batchStarted'), ...batchRef }),
    z.object({ type: z.literal('batchDone'), ...batchRef, items: count, sample: z.array(z.unknown()).optional(), deadLetters: z.array(deadLetter).optional() }),
    z.object({ type: z.literal('batchReleased'), ...batchRef, prefetchError: wireError.optional() }),
    z.object({ type: z.literal('batchFailed'), ...batchRef, error: wireError, input: z.array(z.unknown()).optional() }),
    z.object({ type: z.literal('batchReports'), jobId, reports: z.array(batchReportItem).min(1, 'must list at least one report') }),
    z.object({ type: z.literal('jobFatal'), jobId, error: wireError }),
    z.object({ type: z.literal('log'), jobId: jobId.optional(), stream: z.enum(['stdout', 'stderr']), line: z.string() }),
  ]),
);

/** The first frame of any connection: a worker's or a client's hello. */
export const hello = z.discriminatedUnion('role', [workerHello, clientHello]);

export const coordinatorToWorker = exactUnion<P.CoordinatorToWorker, 'type'>('type')(
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('welcome'), workerId: z.string(), setup: z.string().optional(), envs: z.record(z.string(), z.string()), setupTimeoutMs: z.number().positive().optional() }),
    z.object({ type: z.literal('job'), spec: jobSpec }),
    z.object({ type: z.literal('bundle'), hash: bundleHash, code: z.string() }),
    z.object({ type: z.literal('bundleUnavailable'), hash: z.string(), error: wireError }),
    z.object({ type: z.literal('packages'), hash: bundleHash, error: wireError.optional() }),
    z.object({ type: z.literal('batch'), jobId, index: count, start: count, end: count, attempt: count, wantSample: z.boolean() }),
    z.object({ type: z.literal('batches'), jobId, batches: z.array(batchAssignment).min(1, 'must list at least one batch') }),
    z.object({ type: z.literal('endJob'), jobId, reason: z.enum(['done', 'cancelled', 'failed']) }),
    z.object({ type: z.literal('abortBatch'), ...batchRef }),
    z.object({ type: z.literal('releaseBatch'), ...batchRef }),
    z.object({ type: z.literal('shutdown') }),
    z.object({ type: z.literal('error'), error: wireError }),
  ]),
);

const replyOk = exact<Extract<P.CoordinatorToClient, { ok: true }>>()(z.object({ type: z.literal('reply'), reqId, ok: z.literal(true), result: z.unknown().optional() }));
const replyFailed = exact<Extract<P.CoordinatorToClient, { ok: false }>>()(z.object({ type: z.literal('reply'), reqId, ok: z.literal(false), error: wireError }));
export const coordinatorToClient = exact<P.CoordinatorToClient>()(
  z.union([replyOk, replyFailed, z.object({ type: z.literal('event'), event: jobEvent }), z.object({ type: z.literal('error'), error: wireError })]),
);

/** What a successful reply to each request carries: the client checks it against the request it made. */
export const replies: { [K in keyof P.ClientReplies]: z.ZodType<P.ClientReplies[K]> } = {
  submit: z.object({ jobId }),
  resume: z.object({ jobId }),
  subscribe: z.union([jobSummary, poolSummary]).optional(),
  cancel: jobSummary,
  status: poolSummary,
  batches: z.array(batchInfo),
  hasBundle: z.object({ has: z.boolean() }),
  scale: poolSummary,
  shutdown: z.object({ ok: z.literal(true) }),
};

export const agentToMapper = exactUnion<AgentToMapper, 'type'>('type')(
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('start'), spec: jobSpec, bundlePath: z.string(), cacheDir: z.string(), dryRun: z.boolean().optional() }),
    z.object({ type: z.literal('batches'), batches: z.array(batchAssignment).min(1, 'must list at least one batch') }),
    z.object({ type: z.literal('end'), keep: z.boolean().optional() }),
    z.object({ type: z.literal('release'), index: count, attempt: count }),
    z.object({ type: z.literal('ping') }),
  ]),
);

export const mapperToAgent = exactUnion<MapperToAgent, 'type'>('type')(
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('batchStarted'), index: count, attempt: count }),
    z.object({ type: z.literal('batchDone'), index: count, attempt: count, items: count, sample: z.array(z.unknown()).optional(), deadLetters: z.array(deadLetter).optional() }),
    z.object({ type: z.literal('batchReleased'), index: count, attempt: count, prefetchError: wireError.optional() }),
    z.object({ type: z.literal('batchFailed'), index: count, attempt: count, error: wireError, input: z.array(z.unknown()).optional() }),
    z.object({ type: z.literal('fatal'), error: wireError }),
    z.object({ type: z.literal('idle') }),
    z.object({ type: z.literal('pong') }),
  ]),
);

/** The per-batch frames of each schema, checked by hand first (runtime/hot-frames.ts). */
const FAST_CHECKS = new Map<z.ZodType, hot.HotChecks>([
  [workerMessage, hot.fromWorker],
  [coordinatorToWorker, hot.toWorker],
  [agentToMapper, hot.toMapper],
  [mapperToAgent, hot.fromMapper],
]);

/**
 * A checked frame, or why it was refused. `strike`: the frame is malformed (a broken or
 * hostile peer; a receiver closes a connection after a few); a well-formed request with a bad
 * value (`batchSize: 0`, a job id that is not one) is only refused, as a user's mistake.
 */
export type Checked<T> = { ok: true; msg: T } | { ok: false; error: SkybatchError; reqId?: number; strike: boolean };

/** Fields of a request that carry a user's values: a bad one is `SKYBATCH_E_BAD_OPTION`, naming the field. */
const USER_FIELDS = new Set(['job', 'jobId', 'workers']);

/**
 * Checks one frame (text or an already-parsed IPC message) against `schema`: JSON, an object,
 * a known `type`, then every field. `from` names the sender in messages.
 */
export function checkFrame<S extends z.ZodType<{ type: string }>>(schema: S, data: unknown, from: string): Checked<z.output<S>> {
  let value = data;
  if (typeof data === 'string') {
    try {
      value = JSON.parse(data);
    } catch {
      return refuse('SKYBATCH_E_BAD_FRAME', `${from} sent a frame that is not JSON: ${preview(data)}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return refuse('SKYBATCH_E_BAD_FRAME', `${from} sent ${preview(value)}, not a message object`);
  }
  const obj = value as Record<string, unknown>;
  const fast = FAST_CHECKS.get(schema)?.[obj.type as string]?.(obj);
  if (fast !== undefined) return { ok: true, msg: fast as z.output<S> };
  const reqId = typeof obj.reqId === 'number' && Number.isInteger(obj.reqId) && obj.reqId >= 0 ? obj.reqId : undefined;
  const types = typesOf(schema);
  if (typeof obj.type !== 'string' || (types && !types.includes(obj.type))) {
    return refuse('SKYBATCH_E_BAD_FRAME', `${from} sent a message of unknown type ${preview(obj.type)}; expected one of: ${types?.join(', ')}`, reqId);
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, msg: parsed.data };
  const issue = parsed.error.issues[0];
  const got = preview(at(value, issue.path));
  if (USER_FIELDS.has(String(issue.path[0]))) {
    const field = (issue.path[0] === 'job' ? issue.path.slice(1) : issue.path).join('.');
    return refuse('SKYBATCH_E_BAD_OPTION', `${obj.type} refused: ${field} ${issue.message}, got ${got}`, reqId, field);
  }
  return refuse('SKYBATCH_E_BAD_FRAME', `${from} sent a bad '${obj.type}' message: ${issue.path.join('.') || 'message'}: ${issue.message}, got ${got}`, reqId);
}

/**
 * A job spec read back from disk, checked like a submitted job: a spec that cannot be run
 * (edited by hand, from a bug, or from a client that bypassed the checks) is refused by name.
 */
export function checkJobSpec(value: unknown, jobIdOnDisk: string): P.JobSpec {
  const parsed = jobSpec.safeParse(value);
  if (parsed.success) {
    if (parsed.data.jobId === jobIdOnDisk) return parsed.data;
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `the job.json of job ${jobIdOnDisk} names job ${parsed.data.jobId}`, { context: { jobId: jobIdOnDisk, field: 'jobId' } });
  }
  const issue = parsed.error.issues[0];
  const field = issue.path.join('.');
  throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `the job.json of job ${jobIdOnDisk} is invalid: ${field || 'spec'} ${issue.message}, got ${preview(at(value, issue.path))}`, {
    context: { jobId: jobIdOnDisk, field },
  });
}

function refuse(code: ErrorCode, message: string, reqId?: number, field?: string): Checked<never> {
  return { ok: false, error: new SkybatchError(code, message, field ? { context: { field } } : {}), reqId, strike: code === 'SKYBATCH_E_BAD_FRAME' };
}

const knownTypes = new WeakMap<z.ZodType, string[] | undefined>();
function typesOf(schema: z.ZodType): string[] | undefined {
  if (knownTypes.has(schema)) return knownTypes.get(schema);
  const types = schema instanceof z.ZodDiscriminatedUnion ? [...new Set((schema.options as z.ZodObject[]).map((o) => String((o.shape.type as z.ZodLiteral).value)))] : undefined;
  knownTypes.set(schema, types);
  return types;
}

function at(value: unknown, path: PropertyKey[]): unknown {
  let v = value;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** A short rendering of a refused value for a message: never the whole of a multi-MB frame. */
function preview(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
