import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { SkybatchError } from '../../formats/common/errors.js';
import { diskError, writeAll } from './disk-error.js';
import { jobDir } from './pool-store.js';
import { JournalFold } from './journal-fold.js';
import type { JournalRecord, JournalState } from './job-store.js';

/** A running job's journal is compacted after this many commits since its last compaction... */
const COMPACT_EVERY_COMMITS = 50_000;
/** ...and when it ends, if it is larger than this (small journals stay readable line by line). */
const COMPACT_AT_END_BYTES = 1 << 20;

/**
 * Journals are read this much at a time, into one buffer kept for it. Read whole, the few MB
 * appended between two compactions made a buffer that glibc's malloc maps and unmaps, and
 * then raises its mmap threshold to that size: from then on buffers that big came from its
 * heap, which a coordinator never gives back (+10 MB of RSS for good in a 1M-batch job).
 */
const READ_CHUNK = 64 * 1024;
let readBuffer: Buffer | undefined;

/**
 * Folds the lines of `fd` from byte `from` to byte `to`, a piece at a time; returns the
 * offset after the last whole line. A last line without its newline is folded only when
 * `tail` (a whole record whose newline is missing; a torn one does not parse and is skipped).
 */
export function foldLines(fd: number, from: number, to: number, fold: JournalFold, tail: boolean): number {
  readBuffer ??= Buffer.allocUnsafeSlow(READ_CHUNK);
  const buf = readBuffer;
  const decoder = new StringDecoder('utf8');
  let partial = '';
  let pos = from;
  let folded = from;
  while (pos < to) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, to - pos), pos);
    if (n <= 0) break;
    pos += n;
    const nl = buf.subarray(0, n).lastIndexOf(0x0a);
    if (nl < 0) {
      partial += decoder.write(buf.subarray(0, n));
      continue;
    }
    // a newline is never inside a UTF-8 sequence: the lines up to it are whole text
    fold.foldText(partial + decoder.write(buf.subarray(0, nl + 1)));
    partial = decoder.write(buf.subarray(nl + 1, n));
    folded = pos - (n - nl - 1);
  }
  if (tail) fold.foldText(partial + decoder.end());
  return folded;
}

/**
 * The fold `readJournal` built for a state, and the byte it read to, while no `Journal` has
 * taken it over: a coordinator restarting a job hands it to the job's `Journal`, which would
 * otherwise read the whole file again into a second fold (and commit table) at its first
 * compaction. Only a state whose fold ended at a line's end is here.
 */
const handover = new WeakMap<JournalState, { fold: JournalFold; folded: number }>();

/** `readJournal` leaves the fold it built for `state`, read to byte `folded`, for the `Journal` that continues it. */
export function offerFold(state: JournalState, fold: JournalFold, folded: number): void {
  handover.set(state, { fold, folded });
}

/**
 * Append-only journal of one job. The records of one tick are written together at its end
 * (with `sendCorked`, before any frame sent in that tick leaves, so nothing is announced that
 * a crash could lose), and fsynced in groups off the event loop, on a short timer and on
 * close. Every 50,000 commits, and when a job whose journal passed 1 MB succeeds, it is
 * compacted: one snapshot record replaces it (replay after a restart reads a few lines, not
 * one per commit).
 */
export class Journal {
  private fd: number;
  private logFd: number;
  private dirty = false;
  private syncing = false;
  private pending = '';
  private flushQueued = false;
  private commitsSinceCompaction = 0;
  private timer: NodeJS.Timeout;
  private readonly file: string;
  /**
   * What the file said up to byte `folded`, and the records this journal wrote after it
   * (`written` bytes), kept for the next compaction. Folding its own records as they are
   * appended spares a compaction reading back and parsing the 3-4 MB written since the last
   * one (7 % of the coordinator's CPU at 1,000 workers, and that much garbage); when the file
   * holds more than that (another process appended), the compaction folds the file instead.
   */
  private fold?: JournalFold;
  private folded = 0;
  private written = 0;
  private batches = 0;
  /** Why the journal takes no more records: a write failed (a full disk). */
  private broken?: SkybatchError;
  /**
   * Told (once, on a later tick) when a write fails: records appended since the last
   * successful write are lost, so the job must stop here rather than go on announcing
   * commits no restart would know of. What is in the file stays valid up to a torn last line.
   */
  onBroken?: (err: SkybatchError) => void;

  /**
   * `replay`: what `readJournal` read of this job's journal, when this journal continues it
   * (a restart, a resume). Its fold becomes this journal's, from the byte it read to, so the
   * first compaction reads only what was appended since; the state must not be read after
   * this journal folds more (compactions), as its commit views read that fold.
   */
  constructor(
    private readonly jobId: string,
    replay?: JournalState,
  ) {
    const given = replay && handover.get(replay);
    if (given) {
      handover.delete(replay);
      this.fold = given.fold;
      this.folded = given.folded;
    }
    const file = path.join(jobDir(jobId), 'journal.jsonl');
    this.file = file;
    this.fd = fs.openSync(file, 'a+', 0o600);
    if (!this.fold && fs.fstatSync(this.fd).size === 0) this.fold = new JournalFold(); // a new journal: nothing to read back
    this.logFd = fs.openSync(path.join(jobDir(jobId), 'job.log'), 'a', 0o600);
    this.timer = setInterval(() => this.sync(), 200);
    this.timer.unref();
    // The next record starts on a line of its own. A torn line stays in the file (replay
    // skips it): the reduce step may append to this journal from its own process, so bytes
    // are only ever added, never taken out (compaction excepted, see `compact`).
    const torn = tornTail(file);
    try {
      if (torn) this.written += writeAll(this.fd, '\n');
    } catch (err) {
      fs.closeSync(this.fd);
      fs.closeSync(this.logFd);
      clearInterval(this.timer);
      throw diskError(err, file, 'end the torn last line of the journal');
    }
    if (torn && !torn.whole) this.log(`journal: dropped a torn last line (${torn.bytes} bytes, cut short when its writer stopped mid-write); replay skips it`);
  }

  append(r: JournalRecord): void {
    if (this.fd < 0) return;
    this.pending += JSON.stringify(r) + '\n';
    this.fold?.fold(r);
    this.dirty = true;
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(() => this.flush());
    }
    if (r.e === 'commit' && ++this.commitsSinceCompaction >= COMPACT_EVERY_COMMITS) this.compact();
  }

  /** The job has `n` batches: the fold kept for compaction is sized for them when it is made. */
  reserve(n: number): void {
    this.batches = n;
    this.fold?.reserve(n);
  }

  /** Writes the records appended so far (the page cache keeps them through a crash of this process). */
  flush(): void {
    this.flushQueued = false;
    if (!this.pending || this.fd < 0) return;
    const text = this.pending;
    this.pending = '';
    try {
      this.written += writeAll(this.fd, text);
    } catch (err) {
      this.stopWriting(err, 'append to the journal');
    }
  }

  /** Stops taking records after a failed write; the owner hears why on a later tick (it may be mid-change now). */
  private stopWriting(err: unknown, op: string): void {
    if (this.broken) return;
    this.broken = diskError(err, this.file, op);
    clearInterval(this.timer);
    fs.closeSync(this.fd);
    this.fd = -1;
    this.pending = '';
    this.fold = undefined;
    this.log(`journal: ${this.broken.message}; the job stops here`);
    const tell = this.onBroken;
    const why = this.broken;
    if (tell) setImmediate(() => tell(why));
  }

  /** The job's log (`skybatch jobs logs`): mapper output and coordinator notes. A line that cannot be written (disk full) is lost, not the job. */
  log(line: string): void {
    if (this.logFd < 0) return;
    try {
      fs.writeSync(this.logFd, `${new Date().toISOString()} ${line}\n`);
    } catch {
      // the journal, not the log, says what happened
    }
  }

  /** Appends a record and has it on disk before returning: for what must survive a power loss. */
  appendDurably(r: JournalRecord): void {
    this.append(r);
    this.flush();
    this.dirty = false;
    if (this.fd < 0) return;
    try {
      fs.fsyncSync(this.fd);
    } catch (err) {
      this.stopWriting(err, 'sync the journal');
    }
  }

  /** Has what was written reach the disk, off the event loop (a sync fsync took 8 % of the coordinator at batchSize 1). */
  sync(): void {
    if (!this.dirty || this.fd < 0 || this.syncing) return;
    this.flush();
    this.dirty = false;
    this.syncing = true;
    fs.fsync(this.fd, () => (this.syncing = false));
  }

  /**
   * Replaces the journal by one snapshot record of what it says (folded from the file, so
   * records other processes appended count too; only what is new since the last compaction
   * is read). The snapshot is written and
   * fsynced beside it, then renamed over it: a crash leaves the old journal or the new one.
   * Runs only at a commit or at the end of the job: never while the reduce step, the only
   * other writer, may append.
   */
  compact(): void {
    if (this.fd < 0) return;
    this.commitsSinceCompaction = 0;
    this.flush();
    if (this.fd < 0) return;
    this.foldAppended();
    const snapshot = JSON.stringify(this.fold!.snapshot()) + '\n';
    const tmp = `${this.file}.compact`;
    try {
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        writeAll(fd, snapshot);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      // no room for the snapshot (a full disk): the journal as it is stays, whole, and replay reads it all
      fs.rmSync(tmp, { force: true });
      this.log(`journal: not compacted: ${diskError(err, tmp, 'write the snapshot').message}`);
      return;
    }
    fs.renameSync(tmp, this.file);
    const dir = fs.openSync(path.dirname(this.file), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a+', 0o600);
    this.folded = Buffer.byteLength(snapshot);
    this.written = 0;
    this.dirty = false;
  }

  /**
   * Has the fold say what the file says. When the file holds exactly what was folded and
   * what this journal wrote since (folded as it was appended), it does already. Otherwise
   * (another process appended, or this journal has no fold yet) the whole file is folded
   * again: the records this journal folded are in it, among the others. Only whole lines: a
   * line being written is left out.
   */
  private foldAppended(): void {
    const size = fs.fstatSync(this.fd).size;
    if (this.fold && size === this.folded + this.written) return;
    this.fold = new JournalFold();
    this.fold.reserve(this.batches);
    this.folded = foldLines(this.fd, 0, size, this.fold, false);
    this.written = 0;
  }

  /** `ended`: the job succeeded (its reduce step is over); a large journal is compacted before it is closed. */
  close(ended = false): void {
    if (this.logFd < 0) return;
    clearInterval(this.timer);
    this.flush();
    if (this.fd >= 0 && ended && fs.fstatSync(this.fd).size > COMPACT_AT_END_BYTES) this.compact();
    if (this.fd >= 0 && this.dirty) {
      try {
        fs.fsyncSync(this.fd);
      } catch (err) {
        this.stopWriting(err, 'sync the journal');
      }
    }
    this.dirty = false;
    if (this.fd >= 0) fs.closeSync(this.fd);
    fs.closeSync(this.logFd);
    this.fd = this.logFd = -1;
    this.fold = undefined; // a finished job's run stays listed: its commit table need not
  }
}

/**
 * The last line of a journal when it lacks its newline (undefined when it has one): cut
 * short by a crash mid-write (`whole: false`), or a whole record whose newline is missing.
 * Appending right after it would glue the next record to it and lose both.
 */
function tornTail(file: string): { bytes: number; whole: boolean } | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const last = Buffer.alloc(1);
    if (size === 0 || (fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] === 0x0a)) return undefined;
    // the start of the last line, reading backwards in chunks
    let start = 0;
    const chunk = Buffer.alloc(64 * 1024);
    for (let end = size; end > 0 && start === 0; ) {
      const from = Math.max(0, end - chunk.length);
      const n = fs.readSync(fd, chunk, 0, end - from, from);
      const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (nl >= 0) start = from + nl + 1;
      end = from;
    }
    const tail = Buffer.alloc(size - start);
    fs.readSync(fd, tail, 0, tail.length, start);
    try {
      JSON.parse(tail.toString('utf8'));
      return { bytes: tail.length, whole: true };
    } catch {
      return { bytes: tail.length, whole: false };
    }
  } finally {
    fs.closeSync(fd);
  }
}
