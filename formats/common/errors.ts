/**
 * Every error a user can see carries a stable `code` (listed in docs/errors.md), the ids
 * that locate it, and whether retrying can help. Retry decisions read `retryable`, never
 * the message text.
 */
export type ErrorCode =
  | 'SKYBATCH_E_RESULT_COUNT'
  | 'SKYBATCH_E_SAVE_RESULTS'
  | 'SKYBATCH_E_MALFORMED_JSONL'
  | 'SKYBATCH_E_EMPTY_INPUT'
  | 'SKYBATCH_E_MISSING_COLUMN'
  | 'SKYBATCH_E_SERIALIZE'
  | 'SKYBATCH_E_BAD_IMAGE'
  | 'SKYBATCH_E_BAD_OPTION'
  | 'SKYBATCH_E_BAD_PATH'
  | 'SKYBATCH_E_UNREGISTERED_FORMAT'
  | 'SKYBATCH_E_POOL_CONFIG'
  | 'SKYBATCH_E_POOL_NOT_FOUND'
  | 'SKYBATCH_E_POOL_BUSY'
  | 'SKYBATCH_E_JOB_NOT_FOUND'
  | 'SKYBATCH_E_SETUP_FAILED'
  | 'SKYBATCH_E_SCRIPT_LOAD'
  | 'SKYBATCH_E_MAPPER_NOT_FOUND'
  | 'SKYBATCH_E_PACKAGE_MISSING'
  | 'SKYBATCH_E_PACKAGE_PLATFORM'
  | 'SKYBATCH_E_CANNOT_TRAVEL'
  | 'SKYBATCH_E_MAPPER'
  | 'SKYBATCH_E_PYTHON'
  | 'SKYBATCH_E_READER'
  | 'SKYBATCH_E_MEMORY_LIMIT'
  | 'SKYBATCH_E_BATCH_FAILED'
  | 'SKYBATCH_E_WORKER_LOST'
  | 'SKYBATCH_E_BATCH_TIMEOUT'
  | 'SKYBATCH_E_ITEM_FAILED'
  | 'SKYBATCH_E_CANCELLED'
  | 'SKYBATCH_E_REDUCE'
  | 'SKYBATCH_E_INCOMPLETE'
  | 'SKYBATCH_E_OUTPUT_CONFLICT'
  | 'SKYBATCH_E_AUTH'
  | 'SKYBATCH_E_PROTOCOL'
  | 'SKYBATCH_E_BAD_FRAME'
  | 'SKYBATCH_E_NOT_LEASED'
  | 'SKYBATCH_E_INTERNAL'
  | 'SKYBATCH_E_RESTORE'
  | 'SKYBATCH_E_NOT_FOUND'
  | 'SKYBATCH_E_NO_BUCKET'
  | 'SKYBATCH_E_ACCESS_DENIED'
  | 'SKYBATCH_E_BAD_CREDENTIALS'
  | 'SKYBATCH_E_STORAGE'
  | 'SKYBATCH_E_PATH_NOT_SHARED'
  | 'SKYBATCH_E_HOST_UNREACHABLE'
  | 'SKYBATCH_E_FENCED';

/** Where an error happened; every field optional, all of them printed when present. */
export interface ErrorContext {
  jobId?: string;
  batch?: [number, number];
  worker?: string;
  attempt?: number;
  path?: string;
  line?: number;
  field?: string;
}

/** The plain-JSON form of an error that crosses a process boundary. */
export interface WireError {
  code: ErrorCode | string;
  message: string;
  stack?: string;
  retryable: boolean;
  context?: ErrorContext;
}

export class SkybatchError extends Error {
  override readonly name = 'SkybatchError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly context: ErrorContext;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { retryable?: boolean; context?: ErrorContext; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.context = opts.context ?? {};
  }
}

/** Retry only what is marked retryable; programmer errors and unknown codes are not retried. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof SkybatchError) return err.retryable;
  if (err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError || err instanceof RangeError) {
    return false;
  }
  // A plain Error thrown by user code (a flaky download, a CUDA hiccup) may pass on retry.
  return true;
}

export function toWireError(err: unknown, extra: ErrorContext = {}): WireError {
  if (err instanceof SkybatchError) {
    return { code: err.code, message: err.message, stack: err.stack, retryable: err.retryable, context: { ...err.context, ...extra } };
  }
  if (err instanceof Error) {
    return { code: 'SKYBATCH_E_MAPPER', message: `${err.name}: ${err.message}`, stack: err.stack, retryable: isRetryable(err), context: extra };
  }
  return { code: 'SKYBATCH_E_MAPPER', message: `non-Error value thrown: ${String(err)}`, retryable: true, context: extra };
}

export function fromWireError(w: WireError): SkybatchError {
  const e = new SkybatchError(w.code as ErrorCode, w.message, { retryable: w.retryable, context: w.context });
  if (w.stack) e.stack = w.stack;
  return e;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
