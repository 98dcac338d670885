import * as fs from 'node:fs';
import { MergeReport, Winner, WinnerScope, currentReduce, winnerOf } from './attempts.js';
import { BatchObject, jobKey, jobTmpDir, listBatchObjects, uncoveredWinners } from './batch-files.js';
import { SkybatchError } from './common/errors.js';
import { baseName, normalizePath, schemeOf } from './common/paths.js';
import { LocalPieces, writeLocalWhole } from './local-concat.js';
import { storageFor } from './storage-for.js';

/** Batch files up to this size are read in one request; bigger ones are streamed. */
const SMALL_FILE = 8 * 1024 * 1024;

export function describeRanges(ranges: { start: number; end: number }[], max = 20): string {
  const shown = ranges.slice(0, max).map((r) => `[${r.start}, ${r.end}]`);
  return shown.join(', ') + (ranges.length > max ? ` and ${ranges.length - max} more` : '');
}

/** A committed batch has no (or not all of its) result files: publishing now would lose rows. */
export function incompleteError(jobId: string, where: string, missing: Winner[], why = 'have no result files'): SkybatchError {
  return new SkybatchError(
    'SKYBATCH_E_INCOMPLETE',
    `job ${jobId}: ${missing.length} committed batch(es) ${why} in ${where}: ${describeRanges(missing)}; the output was left untouched`,
    { context: { jobId, path: where, batch: [missing[0].start, missing[0].end] } },
  );
}

/**
 * Batch files merged ahead, while their job ran (runtime/coordinator/merge-ahead.ts), into the
 * local file `tmp`: in order from its start, each took its `size` bytes and a newline when it
 * did not end with one (`bytes` in all), and holds `lines` rows. `ino` and `ctimeMs` are the
 * file's as it was read: any write to it since changes its ctime.
 */
export interface MergedAhead {
  tmp: string;
  files: { path: string; size: number; bytes: number; lines: number; ino: number; ctimeMs: number }[];
}

export function countLines(buf: Uint8Array): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) n++;
  return n;
}

/**
 * Streams the batch files under `source`'s temp folder, in index order, into `target`:
 * memory stays flat whatever the output's size, and the output appears whole or not at all
 * (written aside and renamed; a multipart or resumable upload completed at the end).
 *
 * Never replaces an output with the merge of zero batch files: with none found (a second
 * `recover`, or `reduceResults` after `cleanup`) the output is left as it is and the report
 * says so. Inside the reduce step, every committed batch must have its files first (else
 * `SKYBATCH_E_INCOMPLETE`, output untouched) and, with `checkRows`, exactly its rows.
 *
 * `scope` (the winners, whether they are the whole job, who hears of each merge) defaults to
 * the caller's reduce step, read from its async context (`withWinners`); writers call this
 * from `reduceResults`, whose signature is the reference's.
 */
export async function mergeBatches(
  source: string,
  target: string,
  jobId: string | number,
  opts: { checkRows?: boolean } = {},
  scope: WinnerScope | undefined = currentReduce(jobId),
): Promise<MergeReport> {
  const id = jobKey(jobId);
  const winners = scope?.winners;
  const files = await listBatchObjects(source, id, winners);
  const done = (r: MergeReport): MergeReport => {
    scope?.onMerge?.(r);
    return r;
  };
  if (winners) {
    // A recover with no files for any committed batch: a reduce already happened (by hand, or an earlier recover).
    if (files.length === 0 && !scope.complete) return done({ output: target, files: 0, rows: 0, written: false });
    const missing = uncoveredWinners(winners, files);
    if (missing.length) throw incompleteError(id, jobTmpDir(source, id), missing);
  } else if (files.length === 0) {
    console.warn(`${target}: job ${id} has no batch files under ${jobTmpDir(source, id)}/: nothing to merge, output left as is`);
    return done({ output: target, files: 0, rows: 0, written: false });
  }
  let rows = 0;
  let failure: SkybatchError | undefined;
  const sourceStorage = await storageFor(jobTmpDir(source, id));
  const local = schemeOf(source) === 'file';
  const localTarget = schemeOf(target) === 'file';
  const ahead = local && localTarget ? scope?.mergedAhead?.(source, target) : undefined;
  const kept = ahead ? keepAhead(ahead, files) : 0;
  // a local target is written piece by piece before the next is read: one buffer serves all
  const localPieces = new LocalPieces(localTarget);
  async function* chunks(): AsyncIterable<Uint8Array> {
    const perWinner = new Map<number, number>();
    for (let i = 0; i < files.length; i++) {
      const f: BatchObject = files[i];
      let last = 0x0a;
      let lines = i < kept ? ahead!.files[i].lines : 0;
      const parts: Iterable<Uint8Array> | AsyncIterable<Uint8Array> =
        i < kept ? []
        : local ? localPieces.read(f.path, f.size)
        : f.size <= SMALL_FILE ? [await sourceStorage.get(f.path)]
        : await sourceStorage.readStream(f.path);
      for await (const c of parts) {
        const buf = c as Buffer;
        if (!buf.length) continue;
        last = buf[buf.length - 1];
        lines += countLines(buf);
        yield buf;
      }
      if (last !== 0x0a) {
        lines++;
        yield Buffer.from('\n');
      }
      rows += lines;
      if (!opts.checkRows || !winners) continue;
      const w = winnerOf(winners, f.start, f.end);
      perWinner.set(w, (perWinner.get(w) ?? 0) + lines);
      const next = files[i + 1];
      if (next && winnerOf(winners, next.start, next.end) === w) continue;
      const want = winners[w].rows;
      if (want !== undefined && perWinner.get(w) !== want) {
        failure = incompleteError(id, jobTmpDir(source, id), [winners[w]], `hold ${perWinner.get(w)} rows where ${want} were expected`);
        throw failure; // aborts the write: the output is not replaced
      }
    }
  }
  try {
    if (localTarget) await writeLocalWhole(target, chunks(), kept ? ahead!.tmp : undefined);
    else await (await storageFor(target)).put(target, chunks());
  } catch (err) {
    throw failure ?? err;
  }
  return done({ output: target, files: files.length, rows, written: true, ...(ahead ? { mergedAhead: kept } : {}) });
}

/**
 * How many of `files` (the winners' files, as they are now) the merge takes from `ahead`:
 * the longest run from the first that `ahead` holds unchanged (same name, inode, size and
 * ctime). `ahead.tmp` is cut to those; nothing is kept when that fails (the merge then writes
 * a temp file of its own).
 */
function keepAhead(ahead: MergedAhead, files: BatchObject[]): number {
  let kept = 0;
  let bytes = 0;
  try {
    for (; kept < ahead.files.length && kept < files.length; kept++) {
      const a = ahead.files[kept];
      if (baseName(a.path) !== baseName(files[kept].path)) break;
      const now = fs.statSync(normalizePath(files[kept].path));
      if (now.ino !== a.ino || now.size !== a.size || now.ctimeMs !== a.ctimeMs) break;
      bytes += a.bytes;
    }
    if (kept > 0) fs.truncateSync(normalizePath(ahead.tmp), bytes);
    return kept;
  } catch {
    return 0; // a file or the temp file gone
  }
}
