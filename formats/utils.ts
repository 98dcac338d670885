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

export async function saveJsonlToCloud(items: readonly unknown[], path: string): Promise<void> {
  await uploadBytesToCloud(toJsonl(items, path), path);
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
