import { Winner, currentAttempt, currentWinners, isWinningFile, winnerOf } from './attempts.js';
import { baseName, joinPath, parentPath } from './common/paths.js';
import { storageFor } from './storage-for.js';

// Where a writer stages a job's batches: `.sky_batch_tmp/{jobId}/{output name}/batch_S_E[.aN].jsonl`
// next to its output. The workers (writing) and the reduce step (reading) share this layout.

/** A job id as it appears in paths; a number (`reduceResults(42)`) means the same as its string. */
export function jobKey(jobId: string | number): string {
  return String(jobId);
}

/** `.sky_batch_tmp/{jobId}/{output name}` next to the output: this writer's temp folder for a job. */
export function jobTmpDir(outputPath: string, jobId: string | number): string {
  return joinPath(parentPath(outputPath), '.sky_batch_tmp', jobKey(jobId), baseName(outputPath));
}

const BATCH_RE = /\/batch_(\d+)_(\d+)(?:\.a(\d+))?\.jsonl$/;

/**
 * The temp file for one batch's results: sortable, unique per batch range, job and, on a
 * worker, attempt (so a late duplicate attempt never overwrites the one that won).
 *
 * Context: the attempt is read from the caller's async context (`withAttempt`, which the
 * mapper process puts around `saveResults` → `uploadBatch`); the signature is the
 * reference's, so it cannot take it as an argument. Called outside one, the name has no attempt.
 */
export function getBatchPath(outputPath: string, startIdx: number, endIdx: number, jobId: string | number): string {
  return batchFilePath(outputPath, startIdx, endIdx, jobId, currentAttempt(jobId));
}

/** The temp file attempt `attempt` of batch `[startIdx, endIdx]` writes (what `getBatchPath` names inside that attempt). */
export function batchFilePath(outputPath: string, startIdx: number, endIdx: number, jobId: string | number, attempt: number | undefined): string {
  const pad = (n: number) => String(n).padStart(12, '0');
  return joinPath(jobTmpDir(outputPath, jobId), `batch_${pad(startIdx)}_${pad(endIdx)}${attempt === undefined ? '' : `.a${attempt}`}.jsonl`);
}

/** The batch range a batch file holds, or undefined when `path` is not a batch file. */
export function parseBatchPath(path: string): [number, number] | undefined {
  const m = BATCH_RE.exec(path);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** One batch file found in a writer's temp folder. */
export interface BatchObject {
  path: string;
  size: number;
  start: number;
  end: number;
  /** -1 when written outside a worker (no attempt in its name). */
  attempt: number;
}

/**
 * A job's batch files, sorted by start index, one per range: the attempt the job's journal
 * names as the winner (in the coordinator's reduce step and `skybatch recover`), else, when
 * called by hand, the highest attempt found.
 *
 * Context: the winners are read from the caller's async context (`withWinners`, set by the
 * reduce step around `reduceResults`); the signature is the reference's.
 */
export async function listBatchFiles(outputPath: string, jobId: string | number): Promise<string[]> {
  return (await listBatchObjects(outputPath, jobId)).map((o) => o.path);
}

/** `listBatchFiles` with sizes and ranges; `winners` defaults to those of the caller's reduce step (`withWinners`), none outside one. */
export async function listBatchObjects(outputPath: string, jobId: string | number, winners = currentWinners(jobId)): Promise<BatchObject[]> {
  const dir = jobTmpDir(outputPath, jobId) + '/';
  const best = new Map<string, BatchObject>();
  for await (const o of (await storageFor(dir)).list(dir + 'batch_')) {
    const m = BATCH_RE.exec(o.path);
    if (!m) continue;
    const start = Number(m[1]);
    const end = Number(m[2]);
    const key = `${start}_${end}`;
    const attempt = m[3] === undefined ? -1 : Number(m[3]);
    if (winners && !isWinningFile(winners, start, end, attempt)) continue; // unfinished range, or a losing attempt
    const prev = best.get(key);
    if (!prev || attempt > prev.attempt) best.set(key, { path: o.path, size: o.size, start, end, attempt });
  }
  return [...best.values()].sort((a, b) => a.start - b.start);
}

/**
 * The winners whose files do not hold all their rows: a batch with items skipped writes one
 * file per run of good items, so the files of a winner must cover `rows` items in all.
 * `files` are the winners' files (from `listBatchObjects` with these winners).
 */
export function uncoveredWinners(winners: Winner[], files: BatchObject[]): Winner[] {
  const covered = new Array<number>(winners.length).fill(0);
  for (const f of files) {
    const w = winnerOf(winners, f.start, f.end);
    if (w >= 0) covered[w] += f.end - f.start + 1;
  }
  return winners.filter((w, i) => w.rows !== undefined && covered[i] !== w.rows);
}
