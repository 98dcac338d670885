import { SkybatchError } from './errors.js';
import { Item } from './input-reader.js';
import { currentAttempt, currentWinners, isWinningFile } from './attempts.js';
import { baseName, joinPath, parentPath } from './paths.js';
import { storageFor } from './storage/factory.js';

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

/** `.sky_batch_tmp/{jobId}/{output name}` next to the output: this writer's temp folder for a job. */
export function jobTmpDir(outputPath: string, jobId: string): string {
  return joinPath(parentPath(outputPath), '.sky_batch_tmp', jobId, baseName(outputPath));
}

const BATCH_RE = /\/batch_(\d+)_(\d+)(?:\.a(\d+))?\.jsonl$/;

/**
 * The temp file for one batch's results: sortable, unique per batch range, job and, on a
 * worker, attempt (so a late duplicate attempt never overwrites the one that won).
 */
export function getBatchPath(outputPath: string, startIdx: number, endIdx: number, jobId: string): string {
  const pad = (n: number) => String(n).padStart(12, '0');
  const attempt = currentAttempt(jobId);
  return joinPath(jobTmpDir(outputPath, jobId), `batch_${pad(startIdx)}_${pad(endIdx)}${attempt === undefined ? '' : `.a${attempt}`}.jsonl`);
}

/** The batch range a batch file holds, or undefined when `path` is not a batch file. */
export function parseBatchPath(path: string): [number, number] | undefined {
  const m = BATCH_RE.exec(path);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * A job's batch files, sorted by start index, one per range: the attempt the job's journal
 * names as the winner (in the coordinator's reduce step and `skybatch recover`), else, when
 * called by hand, the highest attempt found.
 */
export async function listBatchFiles(outputPath: string, jobId: string): Promise<string[]> {
  return (await listBatchObjects(outputPath, jobId)).map((o) => o.path);
}

async function listBatchObjects(outputPath: string, jobId: string): Promise<{ path: string; size: number }[]> {
  const dir = jobTmpDir(outputPath, jobId) + '/';
  const winners = currentWinners(jobId);
  const best = new Map<string, { path: string; size: number; start: number; attempt: number }>();
  for await (const o of (await storageFor(dir)).list(dir + 'batch_')) {
    const m = BATCH_RE.exec(o.path);
    if (!m) continue;
    const start = Number(m[1]);
    const end = Number(m[2]);
    const key = `${start}_${end}`;
    const attempt = m[3] === undefined ? -1 : Number(m[3]);
    if (winners && !isWinningFile(winners, start, end, attempt)) continue; // unfinished range, or a losing attempt
    const prev = best.get(key);
    if (!prev || attempt > prev.attempt) best.set(key, { path: o.path, size: o.size, start, attempt });
  }
  return [...best.values()].sort((a, b) => a.start - b.start);
}

/**
 * Streams every batch file, in index order, into `outputPath`; memory stays flat
 * whatever the output's size. The output appears whole or not at all.
 */
export async function concatenateBatchesToOutput(outputPath: string, jobId: string): Promise<void> {
  const files = await listBatchObjects(outputPath, jobId);
  const storage = await storageFor(outputPath);
  const source = await storageFor(jobTmpDir(outputPath, jobId));
  async function* chunks(): AsyncIterable<Uint8Array> {
    for (const f of files) {
      let last = 0x0a;
      // one request for a small batch file; a stream for a big one, so memory stays flat
      const parts: Iterable<Uint8Array> | AsyncIterable<Uint8Array> = f.size <= 8 * 1024 * 1024 ? [await source.get(f.path)] : await source.readStream(f.path);
      for await (const c of parts) {
        const buf = c as Buffer;
        if (buf.length) last = buf[buf.length - 1];
        yield buf;
      }
      if (last !== 0x0a) yield Buffer.from('\n');
    }
  }
  await storage.put(outputPath, chunks());
}

async function deleteUnder(prefix: string): Promise<void> {
  const storage = await storageFor(prefix);
  const paths: string[] = [];
  for await (const o of storage.list(prefix)) paths.push(o.path);
  await storage.delete(paths);
}

export async function deleteBatchFiles(outputPath: string, jobId: string): Promise<void> {
  await deleteUnder(jobTmpDir(outputPath, jobId) + '/batch_');
}

/** Input batch files a reader cached for the job live under `{tmp}/inputs/`. */
export function inputBatchDir(outputPath: string, jobId: string): string {
  return joinPath(jobTmpDir(outputPath, jobId), 'inputs') + '/';
}

export async function deleteInputBatchFiles(outputPath: string, jobId: string): Promise<void> {
  await deleteUnder(inputBatchDir(outputPath, jobId));
}
