import { SkybatchError } from './common/errors.js';
import { Item } from './input-reader.js';

/** Where a batch sits, for error messages. */
export interface BatchRef {
  jobId: string;
  startIdx: number;
  endIdx: number;
}

/**
 * The options argument of a built-in writer. The reference's positional habit,
 * `JsonWriter(path, 'output')` or `(path, ['prompt', 'score'])`, means `{ column: ... }`.
 * Anything else that is not an options object is refused, and so is an unknown key when
 * `strict` (a typo such as `columns` would otherwise write every column without a word).
 */
export function writerOptions<O extends object>(options: unknown, writer: string, keys: string[], strict: boolean): O {
  if (options === undefined || options === null) return {} as O;
  if (typeof options === 'string' || Array.isArray(options)) return { column: options } as O;
  if (typeof options !== 'object') {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${writer}: the second argument must be an options object { ${keys.join(', ')} } or a column name, got ${typeof options} ${String(options)}`, {
      context: { field: 'options' },
    });
  }
  const unknown = strict ? Object.keys(options).filter((k) => !keys.includes(k)) : [];
  if (unknown.length) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${writer}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; expected ${keys.join(', ')}`, {
      context: { field: unknown[0] },
    });
  }
  return options as O;
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
