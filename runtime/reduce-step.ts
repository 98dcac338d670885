import { type MergeReport, type WinnerScope, withWinners } from '../formats/attempts.js';
import { jobTmpDir, listBatchObjects, parseBatchPath, uncoveredWinners } from '../formats/batch-files.js';
import { describeRanges } from '../formats/batch-merge.js';
import { SkybatchError } from '../formats/common/errors.js';
import { isBuiltinWriter } from '../formats/builtins.js';
import type { OutputWriter } from '../formats/output-writer.js';
import { storageFor } from '../formats/storage-for.js';
import { removeStalePartials } from '../formats/storage/local.js';
import { schemeOf } from '../formats/common/paths.js';
import { errorsPath, saveJsonlToCloud } from '../formats/utils.js';
import { runWriterStep } from './bundle-loader.js';
import { JournalState, PublishedOutput, appendJournalRecord, readJournal } from './store/job-store.js';
import { MissingBatch, PlannedWinner, planReduce } from './coordinator/reduce-plan.js';
import type { JobSpec } from './protocol.js';
import { inJobDir, isNoReduceWriter } from './coordinator/no-reduce-writer.js';

/** What one reduce did, printed by the reduce process as one `SKYBATCH_REDUCE {json}` line. */
export interface ReduceReport {
  jobId: string;
  /** When an earlier reduce published the outputs: this one merged nothing and only cleaned up. */
  alreadyPublished?: string;
  outputs: PublishedOutput[];
  /** Items written to errors.jsonl. */
  skippedItems: number;
  cleanedUp: boolean;
}

function label(w: OutputWriter<object>): string {
  return `${w.constructor.name}(${w.path})`;
}

export function describeOutput(o: PublishedOutput): string {
  if (o.written === false) return `${o.writer}: nothing to merge, output left as is`;
  if (o.rows === undefined) return `${o.writer}: reduced`;
  return `${o.writer}: wrote ${o.rows} row(s) from ${o.files} batch file(s)`;
}

/**
 * A finished job's reduce (`recover: false`) or a recovery: publish every writer's output
 * once, then clean up. Safe to run again and to interrupt anywhere (the caller holds the
 * job's reduce lock):
 * - outputs are published whole or not at all, and only after the check that every batch
 *   to publish has its files (else `SKYBATCH_E_INCOMPLETE`, nothing touched);
 * - the journal records `published` before any cleanup, so a later run that finds it only
 *   finishes the cleanup;
 * - a writer with nothing to merge leaves its output as it is.
 */
export async function reduceJob(
  spec: JobSpec,
  journal: JournalState,
  writers: OutputWriter<object>[],
  opts: { recover: boolean; cleanup: boolean; say: (line: string) => void; mergedAhead?: WinnerScope['mergedAhead'] },
): Promise<ReduceReport> {
  const jobId = spec.jobId;
  const report: ReduceReport = { jobId, outputs: [], skippedItems: 0, cleanedUp: false };
  let published = true;
  if (journal.published) {
    report.alreadyPublished = journal.published.at;
    report.outputs = journal.published.outputs.map((o) => ({ ...o }));
    opts.say(`the outputs were already published at ${journal.published.at}: nothing to merge, output left as is`);
  } else {
    ({ outputs: report.outputs, recorded: published } = await publish(spec, journal, writers, opts));
    report.skippedItems = journal.deadLetters.length;
  }
  if (opts.cleanup) {
    for (const w of writers) await runWriterStep(w, jobId, 'cleanup');
    report.cleanedUp = true;
    // the winners' batch files are gone: a resume must run them again (job-admission.ts)
    if (published) appendJournalRecord(jobId, { e: 'cleaned', at: new Date().toISOString() });
  }
  return report;
}

async function publish(
  spec: JobSpec,
  journal: JournalState,
  writers: OutputWriter<object>[],
  opts: { recover: boolean; say: (line: string) => void; mergedAhead?: WinnerScope['mergedAhead'] },
): Promise<{ outputs: PublishedOutput[]; recorded: boolean }> {
  const jobId = spec.jobId;
  const plan = planReduce(spec, journal, !opts.recover);
  const missing = new Map<number, MissingBatch>(plan.missing.map((m) => [m.index, m]));
  const skip = new Set<number>();
  for (const [i, w] of writers.entries()) {
    const staged = await stagedFiles(w, jobId, plan.winners);
    if (opts.recover && staged.winnerFiles === 0 && (staged.staging || staged.empty)) {
      skip.add(i); // merged and cleaned up already (an earlier recover, or by hand)
      continue;
    }
    for (const u of staged.uncovered) {
      const m = missing.get(u.index);
      missing.set(u.index, { ...u, why: `${m ? `${m.why}; ` : ''}no result files in ${label(w)}` });
    }
  }
  if (missing.size) {
    const list = [...missing.values()].sort((a, b) => a.start - b.start);
    // After a finished job's reduce, the journal no longer counts them as done, so `jobs resume`
    // runs them again. A recover leaves the journal alone: its outputs may be whole already.
    if (!opts.recover) for (const m of list) if (journal.commits.has(m.index)) appendJournalRecord(jobId, { e: 'lost', i: m.index, a: journal.commits.get(m.index)!.a });
    throw incomplete(jobId, list, opts.recover);
  }

  const outputs: PublishedOutput[] = writers.map((w) => ({ writer: label(w), path: w.path }));
  let current: PublishedOutput | undefined;
  const onMerge = (r: MergeReport) => {
    if (r.mergedAhead !== undefined) opts.say(`${r.output}: ${r.mergedAhead} of ${r.files} batch file(s) were merged while the job ran`);
    if (!current) return;
    current.files = (current.files ?? 0) + r.files;
    current.rows = (current.rows ?? 0) + r.rows;
    current.written = !!current.written || r.written;
  };
  await withWinners({ jobId, winners: plan.winners, complete: !opts.recover, onMerge, mergedAhead: opts.mergedAhead }, async () => {
    for (const [i, w] of writers.entries()) {
      current = outputs[i];
      if (skip.has(i)) Object.assign(current, { files: 0, rows: 0, written: false });
      else {
        // a stand-in's path may be '' (the job's folder): it writes nothing, so leaves no partial
        if (schemeOf(w.path) === 'file' && !(isNoReduceWriter(w) && w.path === '')) await removeStalePartials(w.path);
        await runWriterStep(w, jobId, 'reduceResults');
      }
      opts.say(describeOutput(current));
    }
  });
  if (skip.size === writers.length) return { outputs, recorded: false }; // nothing was merged: nothing to record either
  if (opts.recover) resumedMeanwhile(jobId, journal);
  if (journal.deadLetters.length) {
    const file = errorsPath(spec.writers[0].path);
    await saveJsonlToCloud(journal.deadLetters, inJobDir(writers[0], file));
    opts.say(`wrote ${file}: ${journal.deadLetters.length} skipped item(s)`);
  }
  appendJournalRecord(jobId, { e: 'published', at: new Date().toISOString(), outputs });
  return { outputs, recorded: true };
}

/**
 * A recover merges what the journal said when it began; a `jobs resume` of the job meanwhile
 * (a new load, commits since) makes that a partial merge. Recorded as published, it would
 * stand over the resumed job's commits (they precede it in the journal) and the job would
 * end SUCCEEDED without merging them; its cleanup would remove their batch files. So the
 * recover stops here, and the resumed job's own reduce publishes every batch.
 */
function resumedMeanwhile(jobId: string, read: JournalState): void {
  const now = readJournal(jobId);
  if (now.loads === read.loads && now.commits.size === read.commits.size && now.status === read.status) return;
  throw new SkybatchError(
    'SKYBATCH_E_BAD_OPTION',
    `job ${jobId} was resumed while this recover merged its finished batches (${read.commits.size} then, ${now.commits.size} committed now, ${now.status}): the merge is not recorded and no batch file was removed; the job's own reduce publishes every batch when it ends`,
    { context: { jobId } },
  );
}

/**
 * What a writer staged for the job: whether it stages batch files at all (the built-in
 * writers do; a custom writer does when any are there), how many of the winners' files are
 * there, and which winners lack some.
 */
async function stagedFiles(w: OutputWriter<object>, jobId: string, winners: PlannedWinner[]) {
  const tmp = inJobDir(w, jobTmpDir(w.path, jobId)) + '/';
  let empty = true;
  let anyBatch = false;
  for await (const o of (await storageFor(tmp)).list(tmp)) {
    empty = false;
    if (parseBatchPath(o.path)) {
      anyBatch = true;
      break;
    }
  }
  const staging = anyBatch || isBuiltinWriter(w);
  if (!staging) return { empty, staging, winnerFiles: 0, uncovered: [] as PlannedWinner[] };
  if (tmp !== jobTmpDir(w.path, jobId) + '/') {
    // builtinWriters() found no batch file there; one showing up since is no stand-in's
    throw new SkybatchError('SKYBATCH_E_REDUCE', `job ${jobId}: ${label(w)} was said to have no reduce step, but batch files appeared in ${tmp}: run \`skybatch recover ${jobId}\``, { context: { jobId, path: tmp } });
  }
  const files = await listBatchObjects(w.path, jobId, winners);
  return { empty, staging, winnerFiles: files.length, uncovered: uncoveredWinners(winners, files) as PlannedWinner[] };
}

function incomplete(jobId: string, missing: MissingBatch[], recover: boolean): SkybatchError {
  const shown = missing.slice(0, 20).map((m) => `[${m.start}, ${m.end}] (${m.why})`);
  const more = missing.length > 20 ? ` and ${missing.length - 20} more (${describeRanges(missing.slice(20))})` : '';
  const next = recover
    ? `If this job's outputs were already merged and cleaned up by hand, they are complete; otherwise compute the missing batches again with: skybatch jobs resume ${jobId}`
    : `Compute them again with: skybatch jobs resume ${jobId}`;
  return new SkybatchError('SKYBATCH_E_INCOMPLETE', `job ${jobId}: ${missing.length} batch(es) cannot be published: ${shown.join('; ')}${more}. The outputs were left untouched. ${next}`, {
    context: { jobId, batch: [missing[0].start, missing[0].end] },
  });
}
