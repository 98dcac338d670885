import { SkybatchError } from './errors.js';
import { Item } from './input-reader.js';

/** Where a batch sits, for error messages. */
export interface BatchRef {
  jobId: string;
  startIdx: number;
  endIdx: number;
}

export function normalizeColumns(column: unknown, writer: string): string[] | undefined {
  if (column === undefined || column === null) return undefined;
  const cols = typeof column === 'string' ? [column] : column;
  if (!Array.isArray(cols) || cols.length === 0 || cols.some((c) => typeof c !== 'string' || c === '')) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${writer}: option 'column' must be a column name or a non-empty list of names, got ${JSON.stringify(column)}`, {
      context: { field: 'column' },
    });
  }
  return cols;
}

/** The value of `column` in result `i` of a batch; a missing column is an error naming the item. */
export function requireColumn(result: Item, column: string, i: number, at: BatchRef, writer: string): unknown {
  if (result === null || typeof result !== 'object') {
    throw new SkybatchError('SKYBATCH_E_SERIALIZE', `${writer}: result for item ${at.startIdx + i} is ${result === null ? 'null' : typeof result}, not an object (job ${at.jobId}, batch [${at.startIdx}, ${at.endIdx}])`, {
      context: { jobId: at.jobId, batch: [at.startIdx, at.endIdx] },
    });
  }
  if (!(column in result)) {
    const have = Object.keys(result).join(', ') || 'none';
    throw new SkybatchError(
      'SKYBATCH_E_MISSING_COLUMN',
      `${writer}: result for item ${at.startIdx + i} has no column '${column}' (it has: ${have}) (job ${at.jobId}, batch [${at.startIdx}, ${at.endIdx}])`,
      { context: { jobId: at.jobId, batch: [at.startIdx, at.endIdx], field: column } },
    );
  }
  return result[column];
}
