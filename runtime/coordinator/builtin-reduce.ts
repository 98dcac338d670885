import * as path from 'node:path';
import { schemeOf } from '../../formats/common/paths.js';
import { ImageWriter } from '../../formats/image-writer.js';
import { JsonWriter } from '../../formats/json-writer.js';
import type { OutputWriter } from '../../formats/output-writer.js';
import { FileLock } from '../file-lock.js';
import type { FormatSpec, JobSpec } from '../protocol.js';
import { type ReduceReport, reduceJob } from '../reduce-step.js';
import { readJournal } from '../store/job-store.js';
import { jobDir } from '../store/pool-store.js';

// Only skybatch's own classes, looked up here and never in the registry: a job's bundle may
// register its own class under a built-in name, and this process never loads bundles.
const BUILTIN_WRITERS: Record<string, new (path: string, options: never) => OutputWriter<object>> = { json: JsonWriter, image: ImageWriter };

/**
 * Above this many batches a job reduces in a reduce process: the reduce lists every batch
 * file and keeps one record per file (hundreds of MB for a million files), which must not
 * land in the coordinator's heap; next to merging that many files, a process start is nothing.
 */
const IN_PROCESS_MAX_BATCHES = 10_000;

/**
 * The job's writers, when the coordinator may reduce them in its own process: every one is a
 * built-in class (the client says so in the spec) writing to an absolute local path, and the
 * job has at most IN_PROCESS_MAX_BATCHES batches. Cloud outputs still reduce in a reduce
 * process: their storage clients take the job's environment (credentials, endpoint) from
 * `spec.env`, and the SDK and its multipart buffers (4 parts of 8 MiB) would stay in the
 * coordinator's memory.
 */
export function builtinWriters(spec: JobSpec): OutputWriter<object>[] | undefined {
  const local = (w: FormatSpec) => schemeOf(w.path) === 'file' && (w.path.startsWith('file://') || path.isAbsolute(w.path));
  if (Math.ceil(spec.total / spec.batchSize) > IN_PROCESS_MAX_BATCHES) return undefined;
  return spec.writers.every(local) ? onlyBuiltinWriters(spec) : undefined;
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
  opts: { cleanup?: boolean; recover?: boolean },
): Promise<ReduceReport> {
  const jobId = spec.jobId;
  // The coordinator's journal writes the last commit on the next tick; a macrotask later it is
  // in the file that readJournal reads (a reduce process, started later still, never raced it).
  await new Promise((r) => setImmediate(r));
  const lock = await FileLock.acquire(path.join(jobDir(jobId), 'reduce.lock'), `reduce of job ${jobId}`, {
    timeoutMs: Infinity,
    onWait: (h) => say(`waiting for reduce process ${h.pid} (started ${h.since}) to finish: it is reducing this job already`),
  });
  say(`reducing in the coordinator's process: every writer is built-in`);
  try {
    // read under the lock: a reduce that held it before may have published meanwhile
    return await reduceJob(spec, readJournal(jobId), writers, { recover: opts.recover === true, cleanup: opts.cleanup !== false, say });
  } finally {
    lock.release();
  }
}
