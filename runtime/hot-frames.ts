/**
 * Hand checks of the frames sent once per batch (assignments and the started/done reports,
 * alone or several to a frame). zod checked every frame at about 5 µs each, a sixth of the
 * coordinator's time at 200 workers and as much in each worker agent and mapper process.
 *
 * Each check accepts only what its zod schema (protocol-guards.ts) accepts and returns the
 * value zod would (the known fields only), or undefined: the frame then goes through zod,
 * which refuses it with the usual message naming the field, or takes a rarer shape (a
 * report with dead letters) that these checks leave to it.
 */
import { JOB_ID_PATTERN } from './store/pool-store.js';

export type HotCheck = (o: Record<string, unknown>) => object | undefined;
/** Checks by the frame's `type`. */
export type HotChecks = Readonly<Record<string, HotCheck>>;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isJobId = (v: unknown): v is string => typeof v === 'string' && JOB_ID_PATTERN.test(v);

function started(o: Record<string, unknown>): { type: 'batchStarted'; index: number; attempt: number } | undefined {
  const { index, attempt } = o;
  return isCount(index) && isCount(attempt) ? { type: 'batchStarted', index, attempt } : undefined;
}

function done(o: Record<string, unknown>): { type: 'batchDone'; index: number; attempt: number; items: number; sample?: unknown[] } | undefined {
  const { index, attempt, items, sample } = o;
  if (!isCount(index) || !isCount(attempt) || !isCount(items) || o.deadLetters !== undefined) return undefined;
  if (sample === undefined) return { type: 'batchDone', index, attempt, items };
  return Array.isArray(sample) ? { type: 'batchDone', index, attempt, items, sample: [...sample] } : undefined;
}

function assignment(o: Record<string, unknown>): { index: number; start: number; end: number; attempt: number; wantSample: boolean } | undefined {
  const { index, start, end, attempt, wantSample } = o;
  return isCount(index) && isCount(start) && isCount(end) && isCount(attempt) && typeof wantSample === 'boolean' ? { index, start, end, attempt, wantSample } : undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `check` of each element of a non-empty array, or undefined if any fails. */
function each<T>(list: unknown, check: (o: Record<string, unknown>) => T | undefined): T[] | undefined {
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const out: T[] = [];
  for (const v of list) {
    const c = isObject(v) ? check(v) : undefined;
    if (c === undefined) return undefined;
    out.push(c);
  }
  return out;
}

const withJob =
  <T extends object>(check: (o: Record<string, unknown>) => T | undefined): HotCheck =>
  (o) => {
    const c = isJobId(o.jobId) ? check(o) : undefined;
    return c && { ...c, jobId: o.jobId };
  };

function report(o: Record<string, unknown>): object | undefined {
  return o.type === 'batchStarted' ? started(o) : o.type === 'batchDone' ? done(o) : undefined;
}

/** Worker → coordinator. */
export const fromWorker: HotChecks = {
  batchStarted: withJob(started),
  batchDone: withJob(done),
  batchReports: (o) => {
    const reports = isJobId(o.jobId) ? each(o.reports, report) : undefined;
    return reports && { type: 'batchReports', jobId: o.jobId, reports };
  },
};

/** Coordinator → worker. */
export const toWorker: HotChecks = {
  batch: withJob((o) => {
    const a = assignment(o);
    return a && { type: 'batch', ...a };
  }),
  batches: (o) => {
    const batches = isJobId(o.jobId) ? each(o.batches, assignment) : undefined;
    return batches && { type: 'batches', jobId: o.jobId, batches };
  },
};

/** Worker agent → its mapper process. */
export const toMapper: HotChecks = {
  batches: (o) => {
    const batches = each(o.batches, assignment);
    return batches && { type: 'batches', batches };
  },
};

/** Mapper process → its worker agent. */
export const fromMapper: HotChecks = { batchStarted: started, batchDone: done };
