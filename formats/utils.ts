import { SkybatchError } from './common/errors.js';
import { Item } from './input-reader.js';
import type { MergeReport } from './attempts.js';
import { jobTmpDir } from './batch-files.js';
import { mergeBatches } from './batch-merge.js';
import { joinPath, parentPath, schemeOf } from './common/paths.js';
import { removeStalePartials } from './storage/local.js';
import { storageFor } from './storage-for.js';

export { getBatchPath, jobTmpDir, listBatchFiles, parseBatchPath } from './batch-files.js';

/**
 * Storage helpers for writers (`sky.utils`), mirroring the reference API. Every function
 * accepts `s3://`, `gs://`, `file://` and local paths.
 */

export async function uploadBytesToCloud(data: Uint8Array | string, path: string): Promise<void> {
  await (await storageFor(path)).put(path, data);
}

export async function downloadBytesFromCloud(path: string): Promise<Buffer> {
  return (await storageFor(path)).get(path);
}

/** Serialises items as JSON lines; an unserialisable item is an error naming its position. */
export function toJsonl(items: readonly unknown[], where: string): string {
  let out = '';
  for (let i = 0; i < items.length; i++) {
    let line: string | undefined;
    try {
      line = JSON.stringify(items[i]);
    } catch (err) {
      throw new SkybatchError('SKYBATCH_E_SERIALIZE', `${where}: item ${i} cannot be written as JSON: ${(err as Error).message}`, { cause: err });
    }
    if (line === undefined) {
      throw new SkybatchError('SKYBATCH_E_SERIALIZE', `${where}: item ${i} cannot be written as JSON (it is ${typeof items[i]})`);
    }
    out += line + '\n';
  }
  return out;
}

/**
 * `toJsonl` as bytes. A list of objects (the rows writers write) is serialised by one
 * `JSON.stringify` of the whole list, whose commas between the items become newlines: about
 * 40 % less CPU than a call per item. Anything else, and a list that cannot be serialised
 * (whose error names the item), goes through `toJsonl`.
 */
export function toJsonlBytes(items: readonly unknown[], where: string): Buffer {
  if (items.length > 0 && items.every(isRowObject)) {
    let json: string | undefined;
    try {
      json = JSON.stringify(items);
    } catch {
      // toJsonl names the item
    }
    if (json !== undefined) return linesOf(json);
  }
  return Buffer.from(toJsonl(items, where));
}

/** Written alone, as in a list, the same: an object or array with no `toJSON` of its own (one returning undefined is a line alone, `null` in a list). */
const isRowObject = (v: unknown) => typeof v === 'object' && v !== null && typeof (v as { toJSON?: unknown }).toJSON !== 'function';

/**
 * The bytes of `[a,b,c]`, JSON.stringify's output for a list of objects or arrays, made
 * `a\nb\nc\n` in place: the commas outside every item (depth 0, outside strings) become
 * newlines. JSON.stringify escapes `"` and `\\` in strings and writes no raw newline.
 */
function linesOf(json: string): Buffer {
  const buf = Buffer.from(json, 'utf8');
  const last = buf.length - 1;
  let depth = 0;
  for (let i = 1; i < last; i++) {
    const c = buf[i];
    if (c === 0x22) {
      for (i++; buf[i] !== 0x22; i++) if (buf[i] === 0x5c) i++; // a string, to its closing quote
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c && depth === 0) buf[i] = 0x0a;
  }
  buf[last] = 0x0a;
  return buf.subarray(1);
}

export async function saveJsonlToCloud(items: readonly unknown[], path: string): Promise<void> {
  await uploadBytesToCloud(toJsonlBytes(items, path), path);
}

/**
 * Parses a JSONL file; a malformed line is an error naming the file and line. Like
 * `JsonReader`, it skips a UTF-8 byte order mark at the start and lines of only whitespace.
 */
export async function loadJsonlFromCloud(path: string): Promise<Item[]> {
  const text = (await downloadBytesFromCloud(path)).toString('utf8').replace(/^\uFEFF/, '');
  const out: Item[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^[ \t\r]*$/.test(line)) continue;
    try {
      out.push(JSON.parse(line) as Item);
    } catch (err) {
      throw new SkybatchError('SKYBATCH_E_MALFORMED_JSONL', `${path} line ${i + 1}: ${(err as Error).message}`, {
        context: { path, line: i + 1 },
        cause: err,
      });
    }
  }
  return out;
}

/** Where a job's skipped items go (`onItemError: 'skip'`): `errors.jsonl` next to its first output. */
export function errorsPath(outputPath: string): string {
  return joinPath(parentPath(outputPath), 'errors.jsonl');
}

/**
 * Streams every batch file, in index order, into `outputPath`; memory stays flat
 * whatever the output's size. The output appears whole or not at all, and is never
 * replaced by the merge of zero batch files (see `mergeBatches`).
 *
 * Context: inside the reduce step (or `skybatch recover`) only the winning attempt of each
 * committed batch is merged, and a committed batch without files is an error; the winners are
 * read from the caller's async context (`withWinners`). Called by hand, it merges what it finds.
 */
export async function concatenateBatchesToOutput(outputPath: string, jobId: string | number): Promise<MergeReport> {
  return mergeBatches(outputPath, outputPath, jobId);
}

async function deleteUnder(prefix: string): Promise<void> {
  const storage = await storageFor(prefix);
  const paths: string[] = [];
  for await (const o of storage.list(prefix)) paths.push(o.path);
  await storage.delete(paths);
}

export async function deleteBatchFiles(outputPath: string, jobId: string | number): Promise<void> {
  const dir = jobTmpDir(outputPath, jobId);
  await deleteUnder(dir + '/batch_');
  // a local upload cut short (its worker or coordinator killed mid-write) leaves a `.partial`, which listings leave out
  if (schemeOf(dir) === 'file') await removeStalePartials(dir + '/');
}

/** Input batch files a reader cached for the job live under `{tmp}/inputs/`. */
export function inputBatchDir(outputPath: string, jobId: string | number): string {
  return joinPath(jobTmpDir(outputPath, jobId), 'inputs') + '/';
}

export async function deleteInputBatchFiles(outputPath: string, jobId: string | number): Promise<void> {
  await deleteUnder(inputBatchDir(outputPath, jobId));
}
