import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Winner } from '../../formats/attempts.js';
import type { WireError } from '../../formats/common/errors.js';
import { bundlePath, jobDir, jobsDir, writePrivate } from './pool-store.js';
import { SkybatchError } from '../../formats/common/errors.js';
import type { DeadLetter, JobRequest, JobSpec, JobStatus } from '../protocol.js';
import { BatchIndexMap, Commit, JournalFold, SnapshotRecord } from './journal-fold.js';
import { foldLines, offerFold } from './journal.js';
import { diskError, writeAll } from './disk-error.js';
import { checkJobSpec } from '../protocol-guards.js';

/** One line of a job's journal. Appended before the transition is acknowledged. */
export type JournalRecord =
  | { e: 'status'; status: JobStatus; at: string; error?: WireError }
  | { e: 'commit'; i: number; s: number; x: number; a: number; w: string; n: number }
  | { e: 'fail'; i: number; a: number; w?: string; code: string }
  /** Batch `i` kept failing under `onItemError: 'skip'`: its items became batches `base…`, one each. */
  | { e: 'split'; i: number; base: number }
  /** Skipped items; `b` when they are a whole (single-item) batch that kept failing. */
  | { e: 'dead'; d: DeadLetter[]; b?: number }
  /**
   * Every writer's reduceResults finished over the winners above: the outputs are published
   * and only cleanup may remain. Written by the reduce step before it deletes anything.
   */
  | { e: 'published'; at: string; outputs: PublishedOutput[] }
  /**
   * Committed batch `i` (attempt `a`) has no result files any more: it must run again. Written
   * by the reduce step when it finds none, and by a resume after a recover removed them.
   */
  | { e: 'lost'; i: number; a: number }
  /** The reduce step removed the job's temp files after the outputs were published (a recover's, or the job's own). */
  | { e: 'cleaned'; at: string }
  /** Attempt numbers up to `upTo` may be handed out: a later load of the job starts above. */
  | { e: 'attempts'; upTo: number }
  /** Everything the records before it said (a compacted journal starts with it; see `Journal.compact`). */
  | SnapshotRecord;

/**
 * The outputs published over the current winners (no commit, loss, split or skip since); `cleaned`:
 * when the reduce step then removed the temp files, winners' batch files included.
 */
export interface Published {
  at: string;
  outputs: PublishedOutput[];
  cleaned?: string;
}

/** What the reduce step wrote into one output. */
export interface PublishedOutput {
  writer: string;
  path: string;
  /** Rows and batch files merged; absent for a writer that does not merge batch files. */
  rows?: number;
  files?: number;
  /** False: there was nothing to merge and the output was left as it was. */
  written?: boolean;
}

export interface JournalState {
  status: JobStatus;
  error?: WireError;
  finishedAt?: string;
  /** Committed batches: index → winning attempt. */
  committed: BatchIndexMap<number>;
  /** The same with the range and item count each commit record names. */
  commits: BatchIndexMap<Commit>;
  /** The same as ranges with their winning attempts, sorted by start: what reduce publishes. */
  winners: Winner[];
  splits: { i: number; base: number }[];
  deadLetters: DeadLetter[];
  /** Batches whose only item was skipped. */
  skipped: Set<number>;
  itemsDone: number;
  retries: number;
  /** Failed attempts in journal order (retried or not): batch, attempt, worker, error code. */
  failures: { i: number; a: number; w?: string; code: string }[];
  /** How many times the job was started or loaded again (status records). */
  loads: number;
  /** The outputs were published over the current winners (no commit since): only cleanup remains. */
  published?: Published;
  /** The highest attempt number reserved or recorded: a new load hands out only higher ones. */
  attemptsUpTo: number;
}

/** Reserves the next job id: the smallest integer above every existing job folder. */
export function allocateJobId(): string {
  fs.mkdirSync(jobsDir(), { recursive: true, mode: 0o700 });
  for (;;) {
    const ids = fs.readdirSync(jobsDir()).map(Number).filter(Number.isInteger);
    const id = String((ids.length ? Math.max(...ids) : 0) + 1);
    try {
      fs.mkdirSync(jobDir(id), { mode: 0o700 });
      return id;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Stores a bundle under its hash, after checking that the code is what the hash names. */
export function saveBundle(hash: string, code: string): void {
  const file = bundlePath(hash);
  if (createHash('sha256').update(code).digest('hex') !== hash) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `the bundle sent with the job does not match its hash ${hash}`, { context: { field: 'bundleHash' } });
  }
  if (!fs.existsSync(file)) writePrivate(file, code);
}

export function bundleFile(hash: string): string {
  return bundlePath(hash);
}

export function writeSpec(spec: JobSpec): void {
  writePrivate(path.join(jobDir(spec.jobId), 'job.json'), JSON.stringify(spec, null, 1));
}

/**
 * A job's spec for `resumeFrom`: the new script, mapper and options, on the job's input and
 * outputs. The batches must line up, so input size, batch size and outputs must not change.
 */
export function resumedSpec(spec: JobSpec, req: JobRequest): JobSpec {
  const outputs = (s: { writers: JobRequest['writers'] }) => JSON.stringify(s.writers.map((w) => [w.type, w.path]));
  const mismatch =
    req.total !== spec.total ? `the input has ${req.total} items, the job had ${spec.total}`
    : req.batchSize !== spec.batchSize ? `batchSize is ${req.batchSize}, the job had ${spec.batchSize}`
    : outputs(req) !== outputs(spec) ? "the outputs differ from the job's"
    : undefined;
  if (mismatch) throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `cannot resume job ${spec.jobId}: ${mismatch}`, { context: { jobId: spec.jobId, field: 'resumeFrom' } });
  return { ...spec, ...req, python: req.python, reader: spec.reader, jobId: spec.jobId, pool: spec.pool, createdAt: spec.createdAt };
}

export function readSpec(jobId: string): JobSpec {
  return JSON.parse(fs.readFileSync(path.join(jobDir(jobId), 'job.json'), 'utf8')) as JobSpec;
}

/** A job's spec, checked (`checkJobSpec`): SKYBATCH_E_JOB_NOT_FOUND when its job.json cannot be read. */
export function readCheckedSpec(jobId: string): JobSpec {
  let raw: unknown;
  try {
    raw = readSpec(jobId);
  } catch {
    throw new SkybatchError('SKYBATCH_E_JOB_NOT_FOUND', `job ${jobId} not found`, { context: { jobId } });
  }
  return checkJobSpec(raw, jobId);
}

export function listJobIds(): string[] {
  try {
    return fs
      .readdirSync(jobsDir())
      .filter((d) => /^\d+$/.test(d) && fs.existsSync(path.join(jobDir(d), 'job.json')))
      .sort((a, b) => Number(a) - Number(b));
  } catch {
    return [];
  }
}

/** Replays a journal. A torn last line (a crash mid-write) is ignored; `Journal` drops it before appending. */
export function readJournal(jobId: string): JournalState {
  let fd: number;
  try {
    fd = fs.openSync(path.join(jobDir(jobId), 'journal.jsonl'), 'r');
  } catch {
    return new JournalFold().toState();
  }
  try {
    const fold = new JournalFold();
    const size = fs.fstatSync(fd).size;
    const folded = foldLines(fd, 0, size, fold, true);
    const state = fold.toState();
    // a last line without its newline is left out: `Journal` ends it, and its fold would read it twice
    if (folded === size) offerFold(state, fold, folded);
    return state;
  } catch (err) {
    // unreadable (a directory, an I/O error): as if missing, as when it was read whole; a record the fold cannot take still throws
    if ((err as NodeJS.ErrnoException).code === undefined) throw err;
    return new JournalFold().toState();
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Appends records (in one write) from a process other than the coordinator (the reduce step, which
 * must record that outputs are published even when the coordinator that started it is
 * gone). O_APPEND keeps whole lines apart; the record starts on a line of its own even
 * after a torn last line, and is fsynced before this returns.
 */
export function appendJournalRecord(jobId: string, r: JournalRecord | JournalRecord[]): void {
  const records = Array.isArray(r) ? r : [r];
  if (!records.length) return;
  const file = path.join(jobDir(jobId), 'journal.jsonl');
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'a+', 0o600);
    const size = fs.fstatSync(fd).size;
    const last = Buffer.alloc(1);
    const torn = size > 0 && fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
    writeAll(fd, (torn ? '\n' : '') + records.map((x) => JSON.stringify(x) + '\n').join(''));
    fs.fsyncSync(fd);
  } catch (err) {
    throw diskError(err, file, `append ${records.length === 1 ? `a '${records[0].e}' record` : `${records.length} '${records[0].e}' records`} to the journal`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
