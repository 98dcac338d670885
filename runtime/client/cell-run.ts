/**
 * One notebook cell's part of a job, run on its own (the VS Code extension's per-cell runs):
 * the generated script builds the cell's objects and calls `runCell`, which does the
 * cell's work without any pool and prints one `SKYBATCH_CELL {json}` line with the result,
 * or with the error (its stack names the script, which the extension maps back to cells).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkybatchError, toWireError, type WireError } from '../../formats/common/errors.js';
import type { InputReader } from '../../formats/input-reader.js';
import { assertSeparateOutputs } from '../../formats/output-claims.js';
import type { OutputWriter } from '../../formats/output-writer.js';
import { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from '../../formats/registries.js';
import { previewValue } from '../worker/preview.js';
import { prepareJob, spec, type MapOptions } from './dataset.js';
import { dryRunMapper } from './dry-run.js';
import { assertPackagesFound } from './package-check.js';

export const CELL_PREFIX = 'SKYBATCH_CELL ';

export type CellRunResult =
  | { kind: 'definitions' }
  | { kind: 'reader'; type: string; path: string; total: number; items: unknown[]; ms: number }
  | { kind: 'mapper'; total: number; start: number; end: number; results: unknown[]; ms: number }
  | { kind: 'writers'; writers: { type: string; className: string; path: string; where: string; exists: boolean; columns?: string[] }[] }
  | { kind: 'pack'; total: number; batches: number; packages: string[]; notes: string[] }
  | { kind: 'error'; error: WireError };

export interface CellRunParts {
  /** The generated script (`import.meta.url`): what a dry run bundles, as a submission does. */
  script: string;
  reader?: InputReader<object>;
  mapper?: unknown;
  writers?: OutputWriter<object> | OutputWriter<object>[];
  options?: Omit<MapOptions, 'output'>;
  /** Items a reader preview shows (default 10). */
  limit?: number;
}

/** Runs one cell's part; never throws: its outcome is the `SKYBATCH_CELL` line (and a non-zero exit code on error). */
export async function runCell(kind: Exclude<CellRunResult['kind'], 'error'>, parts: CellRunParts): Promise<void> {
  let out: CellRunResult;
  try {
    out = await work(kind, { ...parts, script: parts.script.startsWith('file:') ? fileURLToPath(parts.script) : parts.script });
  } catch (err) {
    out = { kind: 'error', error: toWireError(err) };
    process.exitCode = 1;
  }
  process.stdout.write(`${CELL_PREFIX}${JSON.stringify(out)}\n`);
}

async function work(kind: Exclude<CellRunResult['kind'], 'error'>, p: CellRunParts): Promise<CellRunResult> {
  if (kind === 'definitions') return { kind };
  if (kind === 'reader') return previewReader(need(p.reader, 'reader'), p.limit ?? 10);
  if (kind === 'writers') return checkWriters(need(p.writers, 'writers'));
  const o = need(p.options, 'run settings');
  if (kind === 'mapper') {
    const r = await dryRunMapper(need(p.reader, 'reader'), p.mapper, { script: p.script, batchSize: o.batchSize, external: o.external, onOutput: (line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(line + '\n') });
    return { kind, ...r };
  }
  const { job, bundle } = await prepareJob(need(p.reader, 'reader'), p.mapper, { ...o, output: need(p.writers, 'writers'), script: p.script });
  assertPackagesFound(bundle, p.script, o.external);
  const first = bundle.code.slice(0, bundle.code.indexOf('\n'));
  const packages = (JSON.parse(first.replace(/^\/\/ skybatch-bundle /, '') || '{}') as { packages?: string[] }).packages ?? [];
  return { kind, total: job.total, batches: Math.ceil(job.total / job.batchSize), packages, notes: bundle.notes };
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `this cell run needs the notebook's ${what} cell`);
  return v;
}

async function previewReader(reader: InputReader<object>, limit: number): Promise<CellRunResult> {
  const t0 = Date.now();
  const type = INPUT_READER_REGISTRY.nameOf(reader);
  const total = await reader.length();
  const n = Math.min(limit, total);
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-preview-'));
  try {
    const items = n > 0 ? await reader.downloadBatch(0, n - 1, cache) : [];
    return { kind: 'reader', type, path: reader.path, total, items: items.map((x) => previewValue(x)), ms: Date.now() - t0 };
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

function checkWriters(w: OutputWriter<object> | OutputWriter<object>[]): CellRunResult {
  const writers = Array.isArray(w) ? w : [w];
  if (!writers.length || writers.some((x) => !x || typeof (x as OutputWriter<object>).uploadBatch !== 'function')) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', 'the writers cell must be an OutputWriter or a non-empty list of them', { context: { field: 'output' } });
  }
  const specs = writers.map((x) => spec(x, OUTPUT_WRITER_REGISTRY.nameOf(x)));
  assertSeparateOutputs(writers.map((x, i) => ({ ...specs[i], label: `${x.constructor.name}(${x.path})` })));
  return {
    kind: 'writers',
    writers: writers.map((x, i) => {
      const cloud = /^[a-z][a-z0-9+.-]*:\/\//i.test(x.path) && !x.path.startsWith('file://');
      const where = cloud ? x.path : path.resolve(x.path.startsWith('file://') ? fileURLToPath(x.path) : x.path);
      const column = (x.options as { column?: unknown } | undefined)?.column;
      const columns = typeof column === 'string' ? [column] : Array.isArray(column) ? column.map(String) : undefined;
      return { type: specs[i].type, className: x.constructor.name, path: x.path, where, exists: !cloud && fs.existsSync(where), ...(columns ? { columns } : {}) };
    }),
  };
}
