import { SkybatchError, isRetryable } from '../../formats/common/errors.js';
import type { InputReader, Item } from '../../formats/input-reader.js';

/** A batch in a mapper process, from the agent's hand-over to its report. */
export interface MapperBatch {
  index: number;
  start: number;
  end: number;
  attempt: number;
  wantSample: boolean;
  /** Its items, once downloaded. */
  items?: Item[];
  /** Why its download failed, once it did. */
  failure?: { error: unknown };
  /** While neither is known: settles (never rejects) once one is. */
  downloading?: Promise<void>;
  saved: boolean;
  finished: boolean;
  /** When load() handed it to the mapper. */
  yieldedAt?: number;
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | undefined)?.then === 'function';
}

/**
 * Starts batch `b`'s download; undefined when it ended in this call (a reader that
 * returns its items, not a promise of them).
 */
export function startDownload(reader: InputReader<object>, b: MapperBatch, ctx: { jobId: string; cacheDir: string }): Promise<void> | undefined {
  let out: Item[] | Promise<Item[]>;
  try {
    out = reader.downloadBatch(b.start, b.end, ctx.cacheDir);
  } catch (err) {
    b.failure = { error: readerError(reader, b, ctx.jobId, err) };
    return undefined;
  }
  if (!isThenable(out)) {
    downloaded(reader, b, ctx.jobId, out);
    return undefined;
  }
  return Promise.resolve(out).then(
    (items) => downloaded(reader, b, ctx.jobId, items),
    (err: unknown) => void (b.failure = { error: readerError(reader, b, ctx.jobId, err) }),
  );
}

function downloaded(reader: InputReader<object>, b: MapperBatch, jobId: string, items: Item[]): void {
  const want = b.end - b.start + 1;
  if (!Array.isArray(items) || items.length !== want) {
    const error = new SkybatchError('SKYBATCH_E_RESULT_COUNT', `${reader.constructor.name}.downloadBatch(${b.start}, ${b.end}) returned ${Array.isArray(items) ? items.length : typeof items} items, expected ${want}`, {
      context: { jobId, batch: [b.start, b.end] },
    });
    b.failure = { error };
  } else b.items = items;
}

/** Storage and format errors already say what failed; anything else is the reader's own failure, not the mapper's. A TypeError (a bug) is not retried; other errors are. */
function readerError(reader: InputReader<object>, b: MapperBatch, jobId: string, err: unknown): unknown {
  if (err instanceof SkybatchError) return err;
  const wrapped = new SkybatchError('SKYBATCH_E_READER', `${reader.constructor.name}.downloadBatch(${b.start}, ${b.end}) failed: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, {
    retryable: isRetryable(err),
    context: { jobId, batch: [b.start, b.end], attempt: b.attempt },
    cause: err,
  });
  // the reader's own frames, so the trace points into the user's code
  if (err instanceof Error && err.stack) wrapped.stack = `${wrapped.name}: ${wrapped.message}\n${err.stack.split('\n').filter((l) => /^\s+at /.test(l)).join('\n')}`;
  return wrapped;
}
