import { Item } from './input-reader.js';
import { normalizePath } from './common/paths.js';

/**
 * Base class of every output format. `uploadBatch` runs on workers after each batch;
 * `reduceResults` then `cleanup` run once on the coordinator after the last batch (and by
 * `skybatch recover` for a failed job). Both default to no-ops, for writers that write
 * every item straight to its final place.
 */
export abstract class OutputWriter<Opts extends object = Record<string, unknown>> {
  readonly path: string;
  readonly options: Opts;

  constructor(path: string, options?: Opts) {
    this.path = normalizePath(path);
    this.options = (options ?? {}) as Opts;
  }

  /** Stores one batch's results (one per input item, in order); returns the path written. */
  abstract uploadBatch(results: Item[], startIdx: number, endIdx: number, jobId: string): string | Promise<string>;

  /**
   * Merges per-batch output into the final output; must stream, never hold all rows. May run
   * more than once for a job (a crash, a second `recover`): with no batch files left it must
   * leave an existing output as it is. The reduce step passes the job id as a string.
   */
  reduceResults(_jobId: string | number): void | Promise<void> {}

  /** Deletes temporary files written by `uploadBatch`. Safe to run again. */
  cleanup(_jobId: string | number): void | Promise<void> {}
}
