/**
 * The options a job carries, checked by one schema wherever they enter: `Dataset.map`
 * (runtime/client/dataset.ts), the coordinator's check of a submitted or stored job
 * (runtime/protocol-guards.ts) and the notebook's run cell (extension/core/run-settings.ts).
 * Each place words the problem its own way (an exception, a refused request, a diagnostic
 * at a line), but the rules and the defaults are these.
 */
import { z } from 'zod';

/** A pool's name: also a folder name under `$SKYBATCH_HOME/pools/`. */
export const POOL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** A job's batch table lives in the coordinator's memory (and in every `batches` answer): this many at most. */
export const MAX_BATCHES = 1_000_000;
/** One batch is held in a mapper's memory, and a batch split under `onItemError: 'skip'` becomes this many batches. */
export const MAX_BATCH_SIZE = 1_000_000;
/** The longest wait before a retry (`retryBaseMs` doubled per failure), and the longest batch timeout. */
export const MAX_DELAY_MS = 24 * 60 * 60 * 1000;

export const DEFAULT_MAX_ATTEMPTS = 4;
export const DEFAULT_RETRY_BASE_MS = 1000;
export const DEFAULT_BATCH_TIMEOUT_MS = 30 * 60 * 1000;
export const DEFAULT_ON_ITEM_ERROR = 'fail';
/** The largest job `priority` (a weight when jobs share a pool's workers): enough to starve nothing by accident. */
export const MAX_PRIORITY = 1000;

const POSITIVE_INT = 'must be a positive integer';
const MS = 'must be a number of milliseconds';

export const poolName = z.string({ error: 'must be a pool name' }).regex(POOL_NAME_PATTERN, "must be a pool name: letters, digits, '_', '-' and '.', at most 63, starting with a letter or digit");

/** One schema per job option (all but `batchSize` optional; see `withDefaults`). */
export const jobOptionFields = {
  batchSize: z.number({ error: POSITIVE_INT }).int(POSITIVE_INT).min(1, POSITIVE_INT).max(MAX_BATCH_SIZE, `must be at most ${MAX_BATCH_SIZE}`),
  activateEnv: z.string({ error: 'must be a shell command string' }).optional(),
  maxAttempts: z.number({ error: POSITIVE_INT }).int(POSITIVE_INT).min(1, POSITIVE_INT).optional(),
  retryBaseMs: z.number({ error: MS }).min(0, 'must not be negative').max(MAX_DELAY_MS, `must be at most ${MAX_DELAY_MS} ms (24 h)`).optional(),
  batchTimeoutMs: z.number({ error: MS }).min(100, 'must be at least 100 ms').max(MAX_DELAY_MS, `must be at most ${MAX_DELAY_MS} ms (24 h)`).optional(),
  onItemError: z.enum(['fail', 'skip'], { error: "must be 'fail' or 'skip'" }).optional(),
  /** Its weight when several jobs share the pool's workers (default 1: equal shares). */
  priority: z.number({ error: `must be a number more than 0, at most ${MAX_PRIORITY}` }).positive(`must be more than 0`).max(MAX_PRIORITY, `must be at most ${MAX_PRIORITY}`).optional(),
};

export type JobOptionName = keyof typeof jobOptionFields;

/**
 * What one field's value says together with the others: a job of more than `MAX_BATCHES`
 * batches (when its `total` is known), a last retry more than 24 h away.
 */
export function checkJobLimits(j: { batchSize: unknown; total?: unknown; maxAttempts?: unknown; retryBaseMs?: unknown }, ctx: z.RefinementCtx): void {
  if (typeof j.total === 'number' && typeof j.batchSize === 'number' && j.batchSize >= 1) {
    const batches = Math.ceil(j.total / j.batchSize);
    if (batches > MAX_BATCHES) {
      ctx.addIssue({ code: 'custom', path: ['total'], message: `makes ${batches} batches of ${j.batchSize} items; at most ${MAX_BATCHES} batches fit in the coordinator: raise batchSize` });
    }
  }
  const attempts = typeof j.maxAttempts === 'number' ? j.maxAttempts : DEFAULT_MAX_ATTEMPTS;
  const base = typeof j.retryBaseMs === 'number' ? j.retryBaseMs : DEFAULT_RETRY_BASE_MS;
  if (attempts >= 2 && base * 2 ** (attempts - 2) > MAX_DELAY_MS) {
    ctx.addIssue({ code: 'custom', path: ['maxAttempts'], message: `with retryBaseMs ${base} makes the last retry wait more than 24 h (retryBaseMs × 2^(maxAttempts − 2)): lower one of them` });
  }
}

/** The options `Dataset.map` and the notebook's run cell take for a job (the run cell names `poolName` `pool`). */
export const jobOptions = z.object({ poolName, ...jobOptionFields }).superRefine(checkJobLimits);
export type JobOptions = z.output<typeof jobOptions>;

/** A problem with one option: which, what it must be, and the value given. */
export interface OptionProblem {
  field: string;
  message: string;
  got: unknown;
}

/** Every problem with `value`'s job options (fields not in the schema are left to the caller). */
export function jobOptionProblems(value: unknown): OptionProblem[] {
  const parsed = jobOptions.safeParse(value);
  if (parsed.success) return [];
  return parsed.error.issues.map((i) => ({ field: i.path.map(String).join('.') || 'options', message: i.message, got: valueAt(value, i.path) }));
}

/** The problem with one option's value alone, if any (the notebook checks each setting where it is written). */
export function fieldProblem(field: JobOptionName | 'poolName', value: unknown): string | undefined {
  const r = (field === 'poolName' ? poolName : jobOptionFields[field]).safeParse(value);
  return r.success ? undefined : r.error.issues[0].message;
}

/** The options a job runs with: the given ones, and the defaults for the rest. */
export function withDefaults<T extends { maxAttempts?: number; retryBaseMs?: number; batchTimeoutMs?: number; onItemError?: 'fail' | 'skip'; [other: string]: unknown }>(o: T) {
  return {
    ...o,
    maxAttempts: o.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    retryBaseMs: o.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
    batchTimeoutMs: o.batchTimeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS,
    onItemError: o.onItemError ?? DEFAULT_ON_ITEM_ERROR,
  };
}

function valueAt(value: unknown, path: PropertyKey[]): unknown {
  let v = value;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}
