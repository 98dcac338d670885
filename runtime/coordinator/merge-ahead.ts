import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { batchFilePath, jobTmpDir } from '../../formats/batch-files.js';
import { type MergedAhead, countLines } from '../../formats/batch-merge.js';
import { joinPath, normalizePath, schemeOf } from '../../formats/common/paths.js';
import { LocalPieces, writeFully } from '../../formats/local-concat.js';
import type { JobSpec } from '../protocol.js';
import type { JobRun } from './job-run.js';

/**
 * Above this many batches a job reduces in a reduce process, not in the coordinator
 * (builtin-reduce.ts): the reduce lists every batch file and keeps one record per file
 * (hundreds of MB for a million files), which must not land in the coordinator's heap; next
 * to merging that many files, a process start is nothing.
 */
export const IN_PROCESS_MAX_BATCHES = 10_000;

/** A path the coordinator may write itself: a local one, absolute (a relative one means the job's folder). */
export function isLocalAbsolute(p: string): boolean {
  return schemeOf(p) === 'file' && (p.startsWith('file://') || path.isAbsolute(p));
}

/** At most this much is merged per turn of the event loop. */
const TURN_BYTES = 8 * 1024 * 1024;

/** Room merging ahead leaves on the output's file system beyond what the rest of the job needs. */
const SPARE_BYTES = 16 * 1024 * 1024;

/**
 * Merges a job's output while the job runs. When the job ends, its reduce step concatenates
 * every batch file into the output (batch-merge.ts): 24 MB for the 1M-row bench job, about a
 * tenth of its time, all of it after the last batch. Here each batch file is appended to a
 * temp file as soon as it and every batch before it are committed, so the reduce step finds
 * most of the output written and appends only the rest (`MergedAhead`). It checks what it
 * takes (the winners' files, unchanged since they were read) and cuts the temp file back to
 * what still holds; what is not taken is merged as before, so anything unusual (a split batch, items
 * skipped into several files, a file gone, a full disk) only ends the merging ahead.
 *
 * It never takes room the job's batches need: it goes on only while the file system keeps
 * room for the rest of the job (its batch files, and as much again for their merge, at the
 * size of those so far) and 16 MB more, and otherwise removes its temp file, so a job whose
 * output folder is too small still computes every batch and fails in its reduce step, where
 * `recover` takes over once there is room, as without it.
 *
 * Only for jobs the coordinator reduces itself whose writers are all the built-in
 * JsonWriter on local paths: their merge is a byte concatenation in this process already,
 * and the temp file sits in the writer's temp folder, on the output's file system, so the
 * reduce step renames it into place; the job's cleanup removes it if the coordinator dies
 * first (its name starts with `batch_`, is no batch file's, and does not end in `.partial`,
 * which storage listings leave out).
 */
export class MergeAhead {
  private readonly tmp: string;
  private files: MergedAhead['files'] = [];
  /** Bytes in the temp file. */
  private merged = 0;
  private fd: number | undefined;
  /** The next batch to append (an index of the job before splits). */
  private next = 0;
  private stopped = false;
  private scheduled = false;
  private readonly pieces = new LocalPieces(true);

  private constructor(
    private readonly jobId: string,
    /** The writer's output: the merge's source (its temp folder) and target. */
    readonly output: string,
    private readonly batches: number,
  ) {
    this.tmp = joinPath(jobTmpDir(output, jobId), `batch_merge-ahead.${randomBytes(4).toString('hex')}.part`);
  }

  /** One per writer of `spec`, or none when the job does not qualify (see the class). */
  static forJob(spec: JobSpec): MergeAhead[] {
    const batches = spec.total > 0 ? Math.ceil(spec.total / spec.batchSize) : 0;
    if (batches === 0 || batches > IN_PROCESS_MAX_BATCHES) return [];
    if (!spec.writers.every((w) => w.builtin === true && w.type === 'json' && isLocalAbsolute(w.path))) return [];
    return spec.writers.map((w) => new MergeAhead(spec.jobId, w.path, batches));
  }

  /** A batch of `run` was committed: appends what is now committed in order, on a later turn. */
  committed(run: JobRun): void {
    if (this.stopped || this.scheduled || this.next >= this.batches) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.step(run);
    });
  }

  /** For the reduce step's merge: what is merged so far; merging ahead stops. */
  handOver(): MergedAhead | undefined {
    this.stop();
    return this.files.length ? { tmp: this.tmp, files: this.files } : undefined;
  }

  /** Stops, and removes the temp file unless the reduce step made it the output. Never throws (a job's end calls it). */
  discard(): void {
    this.stop();
    this.files = [];
    try {
      fs.rmSync(normalizePath(this.tmp), { force: true });
    } catch {
      // left for the job's cleanup, which removes it with the batch files
    }
  }

  private stop(): void {
    this.stopped = true;
    if (this.fd === undefined) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      this.files = []; // what was written may not all be there: the reduce step merges everything
    }
    this.fd = undefined;
  }

  private step(run: JobRun): void {
    if (this.stopped) return;
    let budget = TURN_BYTES;
    try {
      while (this.next < this.batches && budget > 0) {
        const b = run.batch(this.next);
        if (b?.state !== 'done') {
          // a split batch's items are batches of their own: the reduce step merges from here
          if (b?.state !== 'pending' && b?.state !== 'running' && b?.state !== 'retrying') this.stop();
          return;
        }
        budget -= this.append(batchFilePath(this.output, b.start, b.end, this.jobId, b.current));
        this.next++;
      }
    } catch (err) {
      // a file not there (a batch that skipped items writes several): the reduce step merges from it
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') this.discard();
      else this.stop();
      return;
    }
    if (budget <= 0) this.committed(run);
  }

  /** Appends one batch file to the temp file; returns its size. */
  private append(file: string): number {
    const local = normalizePath(file);
    const { ino, ctimeMs, size: statSize } = fs.statSync(local);
    if (!this.roomFor(statSize)) throw Object.assign(new Error(`${this.tmp}: no room to merge ahead`), { code: 'ENOSPC' });
    const pieces = this.pieces.read(local, statSize);
    this.fd ??= fs.openSync(normalizePath(this.tmp), 'w', 0o666);
    let size = 0;
    let lines = 0;
    let last = 0x0a;
    for (const buf of pieces) {
      if (!buf.length) continue;
      size += buf.length;
      lines += countLines(buf);
      last = buf[buf.length - 1];
      this.write(buf);
    }
    let bytes = size;
    if (last !== 0x0a) {
      this.write(Buffer.from('\n'));
      lines++;
      bytes++;
    }
    this.files.push({ path: file, size, bytes, lines, ino, ctimeMs });
    this.merged += bytes;
    return size;
  }

  /** Whether `size` more bytes leave room for the rest of the job (see the class). */
  private roomFor(size: number): boolean {
    const { bavail, bsize } = fs.statfsSync(path.dirname(normalizePath(this.tmp)));
    const perBatch = (this.merged + size) / (this.next + 1);
    const rest = (this.batches - this.next - 1) * perBatch;
    return bavail * bsize - size >= 2 * rest + SPARE_BYTES;
  }

  private write(buf: Uint8Array): void {
    writeFully(this.fd!, buf);
  }
}
