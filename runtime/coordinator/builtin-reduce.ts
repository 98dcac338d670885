import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WinnerScope } from '../../formats/attempts.js';
import { jobTmpDir, parseBatchPath } from '../../formats/batch-files.js';
import { BUILTIN_WRITERS } from '../../formats/builtins.js';
import type { OutputWriter } from '../../formats/output-writer.js';
import { storageFor } from '../../formats/storage-for.js';
import { FileLock } from '../file-lock.js';
import type { FormatSpec, JobSpec } from '../protocol.js';
import { type ReduceReport, reduceJob } from '../reduce-step.js';
import { readJournal } from '../store/job-store.js';
import { jobDir } from '../store/pool-store.js';
import { IN_PROCESS_MAX_BATCHES, isLocalAbsolute } from './merge-ahead.js';
import { type NoReduceWriter, inJobDir, isNoReduceWriter, noReduceWriter } from './no-reduce-writer.js';

// Only skybatch's own classes (BUILTIN_WRITERS), never looked up in the registry: a job's
// bundle may register its own class under a built-in name, and this process never loads bundles.

/**
 * The job's writers, when the coordinator may reduce them in its own process: every one is
 * either a built-in class (the client says so in the spec) writing to an absolute local path,
 * or a user's class with no reduce step (FormatSpec.noReduceStep, a stand-in that runs none
 * of its code) writing to an absolute local path or '' (the job's directory); and the job has
 * at most IN_PROCESS_MAX_BATCHES batches. Cloud outputs still reduce in a reduce process:
 * their storage clients take the job's environment (credentials, endpoint) from `spec.env`,
 * and the SDK and its multipart buffers (4 parts of 8 MiB) would stay in the coordinator's
 * memory.
 *
 * A writer said to have no reduce step that staged batch files under the job's temp folder
 * goes to the reduce process all the same: only a reduce step merges those, so the client's
 * word is doubtful (a hostile or stale client), and the reduce process runs the class the
 * bundle really holds. The coordinator never runs a job's code either way.
 */
export async function builtinWriters(spec: JobSpec): Promise<OutputWriter<object>[] | undefined> {
  if (Math.ceil(spec.total / spec.batchSize) > IN_PROCESS_MAX_BATCHES) return undefined;
  const jobCwd = path.isAbsolute(spec.cwd) && isDirectory(spec.cwd);
  const writers: OutputWriter<object>[] = [];
  for (const w of spec.writers) {
    if (w.builtin === true && Object.hasOwn(BUILTIN_WRITERS, w.type) && isLocalAbsolute(w.path)) writers.push(new BUILTIN_WRITERS[w.type](w.path, (w.options ?? {}) as never));
    else if (typeof w.noReduceStep === 'string' && (isLocalAbsolute(w.path) || (w.path === '' && jobCwd))) {
      const standIn = noReduceWriter(w.noReduceStep, w.path, spec.cwd);
      if (await stagesBatchFiles(standIn, spec.jobId)) return undefined;
      writers.push(standIn);
    } else return undefined;
  }
  return writers;
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

async function stagesBatchFiles(w: NoReduceWriter, jobId: string): Promise<boolean> {
  const tmp = inJobDir(w, jobTmpDir(w.path, jobId)) + '/';
  for await (const o of (await storageFor(tmp)).list(tmp)) if (parseBatchPath(o.path)) return true;
  return false;
}

/** The job's writers when every one is a built-in class, built without the job's bundle; else undefined. */
export function onlyBuiltinWriters(spec: JobSpec): OutputWriter<object>[] | undefined {
  if (!spec.writers.every((w) => w.builtin === true && Object.hasOwn(BUILTIN_WRITERS, w.type))) return undefined;
  return spec.writers.map((w) => new BUILTIN_WRITERS[w.type](w.path, (w.options ?? {}) as never));
}

/**
 * The reduce step of reduce-process.ts, run here: same lock, same steps, same report. A
 * built-in writer's merge is a byte concatenation of the winners' batch files (no row is
 * parsed), so what a reduce process added was its start and the import of the job's bundle.
 * A coordinator killed here leaves what a killed reduce process leaves: a stale lock (broken,
 * as its pid is gone) and a `.partial` output (removed by the next reduce); the journal's
 * `published` record still decides whether the next reduce merges again.
 */
export async function reduceInProcess(
  spec: JobSpec,
  writers: OutputWriter<object>[],
  say: (line: string) => void,
  opts: { cleanup?: boolean; recover?: boolean; mergedAhead?: WinnerScope['mergedAhead'] },
): Promise<ReduceReport> {
  const jobId = spec.jobId;
  // The coordinator's journal writes the last commit on the next tick; a macrotask later it is
  // in the file that readJournal reads (a reduce process, started later still, never raced it).
  await new Promise((r) => setImmediate(r));
  const lock = await FileLock.acquire(path.join(jobDir(jobId), 'reduce.lock'), `reduce of job ${jobId}`, {
    timeoutMs: Infinity,
    onWait: (h) => say(`waiting for reduce process ${h.pid} (started ${h.since}) to finish: it is reducing this job already`),
  });
  say(`reducing in the coordinator's process: every writer is built-in${writers.some(isNoReduceWriter) ? ' or has no reduce step' : ''}`);
  try {
    // read under the lock: a reduce that held it before may have published meanwhile
    return await reduceJob(spec, readJournal(jobId), writers, { recover: opts.recover === true, cleanup: opts.cleanup !== false, say, mergedAhead: opts.mergedAhead });
  } finally {
    lock.release();
  }
}
