import type { WireError } from '../../formats/common/errors.js';
import type { DeadLetter, JobStatus } from '../protocol.js';
import { CommitTable, CommitView, type BatchIndexMap, type Commit } from './commit-table.js';
import type { JournalRecord, JournalState, Published } from './job-store.js';

export type { BatchIndexMap, Commit };

/**
 * A job's journal state in one record: the first line of a compacted journal. Commits are
 * runs of consecutive batches with the same attempt and full item counts,
 * `[index, count, start, width, attempt]`, or one batch `[index, 1, start, width, attempt, items]`;
 * a job whose batches mostly succeed at their first attempt compacts to a few runs.
 */
export interface SnapshotRecord {
  e: 'snap';
  status: JobStatus;
  error?: WireError;
  finishedAt?: string;
  loads: number;
  retries: number;
  attemptsUpTo: number;
  published?: Published;
  splits: { i: number; base: number }[];
  dead: DeadLetter[];
  skipped: number[];
  failures: { i: number; a: number; w?: string; code: string }[];
  commits: number[][];
  /** Commit records the table cannot hold as numbers (no attempt number, a range that is not one): `[i, s, x, a, n]`, kept as written. */
  odd?: unknown[][];
}

/**
 * What a journal's records say so far, folded record by record: `readJournal` folds a whole
 * file, a running job's `Journal` keeps one and folds only what was appended since its last
 * compaction, then writes `snapshot()` as the compacted journal.
 */
export class JournalFold {
  status: JobStatus = 'PENDING';
  error?: WireError;
  finishedAt?: string;
  loads = 0;
  retries = 0;
  attemptsUpTo = 0;
  published?: Published;
  splits: { i: number; base: number }[] = [];
  deadLetters: DeadLetter[] = [];
  skipped = new Set<number>();
  failures: { i: number; a: number; w?: string; code: string }[] = [];
  private readonly commits = new CommitTable();

  /** The job has `n` batches (before splits): the commit table takes its full size now, not by doubling. */
  reserve(n: number): void {
    this.commits.reserve(n);
  }

  /** Folds every whole line of `text`; a torn line (a crash mid-write) is skipped. */
  foldText(text: string): void {
    for (const line of text.split('\n')) {
      if (!line) continue;
      let r: JournalRecord;
      try {
        r = JSON.parse(line) as JournalRecord;
      } catch {
        continue;
      }
      this.fold(r);
    }
  }

  fold(r: JournalRecord): void {
    // A published record stands for the winners it was written over: any change to them voids it.
    if (r.e === 'commit' || r.e === 'lost' || r.e === 'split' || r.e === 'dead') this.published = undefined;
    // `!== undefined`: a record folded as appended (not parsed) may name `a` without a value
    if ('a' in r && r.a !== undefined) this.attemptsUpTo = Math.max(this.attemptsUpTo, r.a);
    if (r.e === 'snap') {
      this.load(r);
    } else if (r.e === 'attempts') {
      this.attemptsUpTo = Math.max(this.attemptsUpTo, r.upTo);
    } else if (r.e === 'status') {
      this.loads++;
      this.status = r.status;
      this.error = r.error;
      if (r.status === 'SUCCEEDED' || r.status === 'FAILED' || r.status === 'CANCELLED') this.finishedAt = r.at;
    } else if (r.e === 'commit') {
      this.commits.add(r.i, r.s, r.x, r.a, r.n);
    } else if (r.e === 'lost') {
      // its run again reports the items it skips again
      const c = this.commits.get(r.i);
      if (c) this.deadLetters = this.deadLetters.filter((d) => d.index < c.s || d.index > c.x);
      this.commits.delete(r.i);
    } else if (r.e === 'published') {
      this.published = { at: r.at, outputs: r.outputs };
    } else if (r.e === 'cleaned') {
      if (this.published) this.published = { ...this.published, cleaned: r.at };
    } else if (r.e === 'fail') {
      this.retries++;
      this.failures.push({ i: r.i, a: r.a, code: r.code, ...(r.w ? { w: r.w } : {}) });
    } else if (r.e === 'split') {
      this.splits.push({ i: r.i, base: r.base });
    } else if (r.e === 'dead') {
      this.deadLetters.push(...r.d);
      if (r.b !== undefined) this.skipped.add(r.b);
    }
  }

  private load(r: SnapshotRecord): void {
    this.status = r.status;
    this.error = r.error;
    this.finishedAt = r.finishedAt;
    this.loads = r.loads;
    this.retries = r.retries;
    this.attemptsUpTo = Math.max(this.attemptsUpTo, r.attemptsUpTo);
    this.published = r.published;
    this.splits = [...r.splits];
    this.deadLetters = [...r.dead];
    this.skipped = new Set(r.skipped);
    this.failures = [...r.failures];
    this.commits.decode(r.commits, r.odd);
  }

  snapshot(): SnapshotRecord {
    return {
      e: 'snap',
      status: this.status,
      ...(this.error ? { error: this.error } : {}),
      ...(this.finishedAt ? { finishedAt: this.finishedAt } : {}),
      loads: this.loads,
      retries: this.retries,
      attemptsUpTo: this.attemptsUpTo,
      ...(this.published ? { published: this.published } : {}),
      splits: this.splits,
      dead: [...this.deadLetters].sort((a, b) => a.index - b.index),
      skipped: [...this.skipped],
      failures: this.failures,
      commits: this.commits.encode(),
      ...(this.commits.odd.size ? { odd: [...this.commits.odd].map(([i, c]) => [i, c.s, c.x, c.a, c.n]) } : {}),
    };
  }

  /**
   * The state as `readJournal` gives it. `committed` and `commits` read this fold's table (it
   * must not fold more after this); `winners` (an object per commit) is built when first read:
   * a coordinator restarting a job needs only `committed`.
   */
  toState(): JournalState {
    const table = this.commits;
    const state = {
      status: this.status,
      committed: new CommitView(table, (c) => c.a, (a) => a, (i) => table.attemptAt(i)),
      commits: new CommitView(table, (c) => c, (a, n, i) => table.get(i)!),
      splits: this.splits,
      deadLetters: [...this.deadLetters].sort((a, b) => a.index - b.index),
      skipped: this.skipped,
      itemsDone: 0,
      retries: this.retries,
      loads: this.loads,
      attemptsUpTo: this.attemptsUpTo,
      failures: this.failures,
      published: this.published,
    } as Omit<JournalState, 'winners'> as JournalState;
    if (this.error !== undefined || this.loads > 0) state.error = this.error;
    if (this.finishedAt !== undefined) state.finishedAt = this.finishedAt;
    table.each((i, a, n) => (state.itemsDone += n));
    let winners: JournalState['winners'] | undefined;
    Object.defineProperties(state, {
      winners: {
        enumerable: true,
        get: () => (winners ??= [...table.entries()].map(([, c]) => ({ start: c.s, end: c.x, attempt: c.a })).sort((a, b) => a.start - b.start)),
      },
    });
    return state;
  }

}
