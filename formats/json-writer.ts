import { BatchRef, normalizeColumns, requireColumn, writerOptions } from './columns.js';
import { SkybatchError } from './common/errors.js';
import { Item } from './input-reader.js';
import { OutputWriter } from './output-writer.js';
import { mergeBatches } from './batch-merge.js';
import { deleteBatchFiles, deleteInputBatchFiles, getBatchPath, toJsonlBytes, uploadBytesToCloud } from './utils.js';

export interface JsonWriterOptions {
  /** Keep only these keys of each result (like SQL SELECT). Default: every key. */
  column?: string | string[];
}

/**
 * JSONL output in input order. Each batch goes to a temp file under
 * `.sky_batch_tmp/{jobId}/`; `reduceResults` streams them, in index order, into the output.
 * A job id may be given as a number (`reduceResults(42)`) as well as a string.
 */
export class JsonWriter extends OutputWriter<JsonWriterOptions> {
  private readonly columns: string[] | undefined;

  /** `options` may also be the column itself, as in the reference: `new JsonWriter(path, 'output')`. */
  constructor(path: string, options: JsonWriterOptions | string | string[] = {}) {
    super(path, writerOptions<JsonWriterOptions>(options, `JsonWriter(${path})`, ['column'], new.target === JsonWriter));
    this.columns = normalizeColumns(this.options.column, `JsonWriter(${this.path})`);
  }

  async uploadBatch(results: Item[], startIdx: number, endIdx: number, jobId: string): Promise<string> {
    const at: BatchRef = { jobId, startIdx, endIdx };
    const rows = this.columns ? results.map((r, i) => this.select(r, i, at)) : results;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as Item;
      for (const key in row) {
        if (row[key] instanceof Uint8Array) {
          throw new SkybatchError(
            'SKYBATCH_E_SERIALIZE',
            `JsonWriter(${this.path}): column '${key}' of item ${startIdx + i} holds binary data, which JSON cannot hold; pick columns with { column: [...] } (job ${jobId}, batch [${startIdx}, ${endIdx}])`,
            { context: { jobId, batch: [startIdx, endIdx], field: key } },
          );
        }
      }
    }
    const path = getBatchPath(this.path, startIdx, endIdx, jobId);
    let body: Buffer;
    try {
      body = toJsonlBytes(rows, `JsonWriter(${this.path})`);
    } catch (err) {
      const e = err as SkybatchError;
      throw new SkybatchError(e.code, `${e.message} (job ${jobId}, batch [${startIdx}, ${endIdx}])`, { context: { jobId, batch: [startIdx, endIdx] }, cause: err });
    }
    await uploadBytesToCloud(body, path);
    return path;
  }

  private select(result: Item, i: number, at: BatchRef): Item {
    const out: Item = {};
    for (const c of this.columns!) out[c] = requireColumn(result, c, i, at, `JsonWriter(${this.path})`);
    return out;
  }

  /** Merges the batch files into the output; with none (already merged and cleaned up), leaves the output as it is. */
  override async reduceResults(jobId: string | number): Promise<void> {
    await mergeBatches(this.path, this.path, jobId, { checkRows: true });
  }

  override async cleanup(jobId: string | number): Promise<void> {
    await deleteBatchFiles(this.path, jobId);
    await deleteInputBatchFiles(this.path, jobId);
  }
}
