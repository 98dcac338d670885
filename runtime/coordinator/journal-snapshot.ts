import type { WireError } from '../../formats/errors.js';
import type { DeadLetter, JobStatus } from '../protocol.js';
import type { JournalState, PublishedOutput } from './job-store.js';

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
  published?: { at: string; outputs: PublishedOutput[] };
  splits: { i: number; base: number }[];
  dead: DeadLetter[];
  skipped: number[];
  fails: number[];
  commits: number[][];
}

export function snapshotOf(state: JournalState): SnapshotRecord {
  return {
    e: 'snap',
    status: state.status,
    ...(state.error ? { error: state.error } : {}),
    ...(state.finishedAt ? { finishedAt: state.finishedAt } : {}),
    loads: state.loads,
    retries: state.retries,
    attemptsUpTo: state.attemptsUpTo,
    ...(state.published ? { published: state.published } : {}),
    splits: state.splits,
    dead: state.deadLetters,
    skipped: [...state.skipped],
    fails: state.fails,
    commits: encodeCommits(state.commits),
  };
}

/** Replaces what `state` holds with the snapshot's: the journal's later records apply on top. */
export function loadSnapshot(state: JournalState, r: SnapshotRecord): void {
  state.status = r.status;
  state.error = r.error;
  if (r.finishedAt !== undefined) state.finishedAt = r.finishedAt;
  else delete state.finishedAt;
  state.loads = r.loads;
  state.retries = r.retries;
  state.attemptsUpTo = Math.max(state.attemptsUpTo, r.attemptsUpTo);
  state.published = r.published;
  state.splits = [...r.splits];
  state.deadLetters = [...r.dead];
  state.skipped = new Set(r.skipped);
  state.fails = [...r.fails];
  state.commits.clear();
  for (const run of r.commits) {
    const [i0, count, s0, width, a, n] = run;
    for (let k = 0; k < count; k++) {
      const s = s0 + k * width;
      state.commits.set(i0 + k, { s, x: s + width - 1, a, n: n ?? width });
    }
  }
}

type Commit = { s: number; x: number; a: number; n: number };

function encodeCommits(commits: Map<number, Commit>): number[][] {
  const indices = Int32Array.from(commits.keys()).sort();
  const runs: number[][] = [];
  let run: number[] | undefined;
  for (const i of indices) {
    const c = commits.get(i)!;
    const width = c.x - c.s + 1;
    if (c.n !== width) {
      runs.push([i, 1, c.s, width, c.a, c.n]);
      run = undefined;
      continue;
    }
    if (run && run[0] + run[1] === i && run[4] === c.a && run[3] === width && run[2] + run[1] * width === c.s) {
      run[1]++;
      continue;
    }
    run = [i, 1, c.s, width, c.a];
    runs.push(run);
  }
  return runs;
}
