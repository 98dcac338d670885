import { normalizePath } from './common/paths.js';

/** One input or output row. */
export type Item = Record<string, unknown>;

/**
 * Base class of every input format. Subclasses implement `length()` and
 * `downloadBatch(startIdx, endIdx, cacheDir)` (both ends inclusive).
 *
 * `path` is made absolute at construction, so a relative local path means the directory
 * the user's script ran in, on every process of the job.
 */
export abstract class InputReader<Opts extends object = Record<string, unknown>> {
  readonly path: string;
  readonly options: Opts;

  constructor(path: string, options?: Opts) {
    this.path = normalizePath(path);
    this.options = (options ?? {}) as Opts;
  }

  /** Number of items; indices `0 .. length-1` form the job's global index space. */
  abstract length(): number | Promise<number>;

  /** Items `startIdx..endIdx` (inclusive), one object per index, in order. */
  abstract downloadBatch(startIdx: number, endIdx: number, cacheDir: string): Item[] | Promise<Item[]>;

  /**
   * State computed once per job by `length()` on the submitting client (an offset index,
   * say) that every worker's copy of the reader receives through `importJobState`.
   * Must be JSON-serialisable. `batchSize` is the job's, when known: the state may keep only
   * what batches of that size need. Default: none.
   */
  exportJobState(_batchSize?: number): unknown {
    return undefined;
  }

  importJobState(_state: unknown): void {}
}
