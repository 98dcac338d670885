import * as path from 'node:path';
import type { WireError } from '../../formats/common/errors.js';
import type { BatchInfo, DeadLetter, JobSpec, JobSummary } from '../protocol.js';
import { readCheckedSpec, readJournal, type JournalState, type Published } from './job-store.js';
import { assertJobId, jobDir } from './pool-store.js';

/** One failed attempt as the journal records it. */
export interface BatchFailure {
  index: number;
  attempt: number;
  worker?: string;
  code: string;
}

/**
 * A job as its folder records it (job.json and journal.jsonl), read without a scheduler:
 * what `jobs queue`, `recover`, the job panel and the pools tree show of a job whose
 * coordinator is gone, or before they ask a live one. The batch table is the one the
 * journal describes, split batches and the single-item batches they became included, so a
 * batch index here is the coordinator's batch index.
 */
export interface JobView {
  spec: JobSpec;
  summary: JobSummary;
  /**
   * Every batch in index order: `done` (committed; `attempt` is the winner), `skipped`,
   * `split`, `failed` (the failure that ended a FAILED job), else `pending`. Live states
   * (queued, running, retrying) are the coordinator's to tell.
   */
  batches: BatchInfo[];
  /** Failed attempts in journal order (retried or not). */
  failures: BatchFailure[];
  /** Items skipped into errors.jsonl (`onItemError: 'skip'`), by item index. */
  deadLetters: DeadLetter[];
  /** The job's own error (the status record that ended it), if any. */
  error?: WireError;
  /** The writers' output paths, in the order the job names them. */
  outputs: string[];
  /** What the reduce step last published, while no commit has changed the winners since. */
  published?: Published;
  /** The job's log file (`skybatch jobs logs`). */
  logFile: string;
}

/** The index of the batch in `batches` that holds item `item` and was not split (a leaf), if any. */
export function batchOfItem(batches: readonly BatchInfo[], item: number): number | undefined {
  // Splits append their single-item batches after every earlier batch, so the last batch
  // whose range holds the item is the one that ran it.
  for (let i = batches.length - 1; i >= 0; i--) {
    const b = batches[i];
    if (b.start <= item && item <= b.end && b.state !== 'split') return b.index;
  }
  return undefined;
}

/**
 * Reads job `jobId` from disk. Throws SKYBATCH_E_JOB_NOT_FOUND when it has no job.json and
 * SKYBATCH_E_BAD_OPTION when that spec is not a job's (checked before the batch table is
 * built: a spec with batchSize 0 would never finish building it).
 */
export function readJobView(jobId: string): JobView {
  assertJobId(jobId);
  const spec = readCheckedSpec(jobId);
  const journal = readJournal(jobId);
  const outputs = spec.writers.map((w) => w.path);
  const counts = countBatches(spec, journal);
  const summary: JobSummary = {
    jobId,
    pool: spec.pool,
    status: journal.status,
    scriptPath: spec.scriptPath,
    createdAt: spec.createdAt,
    finishedAt: journal.finishedAt,
    batchesTotal: counts.total,
    batchesDone: counts.done,
    itemsTotal: spec.total,
    itemsDone: journal.itemsDone,
    itemsFailed: journal.deadLetters.length,
    retries: journal.retries,
    outputs,
    error: journal.error,
  };
  const failures = journal.failures.map((f): BatchFailure => ({ index: f.i, attempt: f.a, code: f.code, ...(f.w ? { worker: f.w } : {}) }));
  const view = {
    spec,
    summary,
    failures,
    deadLetters: journal.deadLetters,
    error: journal.error,
    outputs,
    published: journal.published,
    logFile: path.join(jobDir(jobId), 'job.log'),
  } as Omit<JobView, 'batches'> as JobView;
  // The table (an object per batch) only for those who read it: `jobs` lists summaries of
  // jobs that may have a million batches each.
  let batches: BatchInfo[] | undefined;
  Object.defineProperty(view, 'batches', { enumerable: true, get: () => (batches ??= batchTable(spec, journal, failures)) });
  return view;
}

/** How many batches the table of `batchTable` has, and how many are done, skipped or split, without building it. */
function countBatches(spec: JobSpec, journal: JournalState): { total: number; done: number } {
  let total = spec.total > 0 ? Math.ceil(spec.total / spec.batchSize) : 0;
  const base = total;
  // the single-item batches of each split, appended in journal order; each split's first index and first item
  const singles: { base: number; start: number }[] = [];
  const settled = new Set<number>(journal.skipped);
  for (const s of journal.splits) {
    if (!(Number.isInteger(s.i) && s.i >= 0 && s.i < total)) continue;
    let start: number;
    let end: number;
    if (s.i < base) {
      start = s.i * spec.batchSize;
      end = Math.min(start + spec.batchSize - 1, spec.total - 1);
    } else {
      const from = singles.findLast((x) => x.base <= s.i)!;
      start = end = from.start + (s.i - from.base);
    }
    settled.add(s.i);
    singles.push({ base: total, start });
    total += end - start + 1;
  }
  const valid = (i: number) => Number.isInteger(i) && i >= 0 && i < total;
  let done = 0;
  journal.committed.forEach((_, i) => {
    if (valid(i)) done++;
  });
  for (const i of settled) if (valid(i) && !journal.committed.has(i)) done++;
  return { total, done };
}

/** The batch table as JobRun builds it from the same journal. */
function batchTable(spec: JobSpec, journal: JournalState, failures: BatchFailure[]): BatchInfo[] {
  // Ranges of batchSize, then, in journal order, one single-item batch per item of each
  // split batch, appended.
  const batches: BatchInfo[] = [];
  for (let start = 0, i = 0; start < spec.total; start += spec.batchSize, i++) {
    batches.push({ index: i, start, end: Math.min(start + spec.batchSize - 1, spec.total - 1), state: 'pending', attempt: 0 });
  }
  for (const s of journal.splits) {
    const b = batches[s.i];
    if (!b) continue;
    b.state = 'split';
    for (let item = b.start; item <= b.end; item++) batches.push({ index: batches.length, start: item, end: item, state: 'pending', attempt: 0 });
  }
  for (const b of batches) {
    const won = journal.committed.get(b.index);
    if (won !== undefined) {
      b.state = 'done';
      b.attempt = won;
    } else if (journal.skipped.has(b.index)) {
      b.state = 'skipped';
    }
  }
  // The failure that ended a FAILED job is the last one recorded.
  const last = failures[failures.length - 1];
  if (journal.status === 'FAILED' && last && batches[last.index]?.state === 'pending') {
    batches[last.index].state = 'failed';
    batches[last.index].attempt = last.attempt;
  }
  return batches;
}
