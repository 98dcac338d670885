import type { Winner } from '../../formats/attempts.js';
import type { JobSpec } from '../protocol.js';
import { JobRun } from './job-run.js';
import type { JournalState } from '../store/job-store.js';

/** A batch the reduce step will publish: its winner, and the rows its files must hold. */
export interface PlannedWinner extends Winner {
  index: number;
  rows: number;
}

/** A batch that cannot be published, and why. */
export interface MissingBatch {
  index: number;
  start: number;
  end: number;
  attempt?: number;
  why: string;
}

export interface ReducePlan {
  /** Sorted by start; these and only these batches' files are merged. */
  winners: PlannedWinner[];
  missing: MissingBatch[];
}

/** How many of the sorted indices lie in `[start, end]`. */
function countIn(sorted: number[], start: number, end: number): number {
  const bound = (x: number) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return bound(end + 1) - bound(start);
}

/**
 * What the journal says reduce may publish. Every batch of the job (after splits) must be
 * committed exactly once, by a commit record that names the batch's own range and a valid
 * attempt, or be a single item skipped into errors.jsonl. With `complete` (the reduce of a
 * finished job) a batch that is neither is missing; for `recover` it is simply not there yet.
 */
export function planReduce(spec: JobSpec, journal: JournalState, complete: boolean): ReducePlan {
  const run = new JobRun(spec, journal);
  const dead = journal.deadLetters.map((d) => d.index); // sorted by readJournal
  const winners: PlannedWinner[] = [];
  const missing: MissingBatch[] = [];
  run.forEachBatch((index, start, end, state) => {
    if (state === 'split' || state === 'skipped') return;
    const c = journal.commits.get(index);
    if (state !== 'done' || !c) {
      if (complete) missing.push({ index, start, end, why: 'not committed' });
      return;
    }
    if (c.s !== start || c.x !== end) {
      missing.push({ index, start, end, why: `its commit record names range [${c.s}, ${c.x}]` });
    } else if (!Number.isInteger(c.a) || c.a < 0) {
      missing.push({ index, start, end, why: 'its commit record has no attempt number' });
    } else {
      winners.push({ index, start, end, attempt: c.a, rows: end - start + 1 - countIn(dead, start, end) });
    }
  });
  winners.sort((a, b) => a.start - b.start);
  return { winners, missing };
}
