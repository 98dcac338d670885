import { pathToFileURL } from 'node:url';
import { SkybatchError, errorMessage } from '../formats/errors.js';
import type { InputReader } from '../formats/input-reader.js';
import type { OutputWriter } from '../formats/output-writer.js';
import { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from '../formats/registries.js';
import { jobTmpDir } from '../formats/utils.js';
import { withWriteScope } from '../formats/write-scope.js';
import { becomeHost } from './mapper-api.js';
import type { FormatSpec } from './protocol.js';

export const RUNTIME_KEY = Symbol.for('skybatch.runtime');

/**
 * Imports a user's bundle in a host process (worker mapper process or reduce step).
 * The bundle's `import 'skybatch'` reads this process's runtime from a global, so its
 * registries and `load()`/`saveResults()` are ours. The script's top level runs up to
 * its first `ds.map(...)`, which on a host never resolves: no job is ever resubmitted.
 */
export async function loadBundle(file: string): Promise<void> {
  (globalThis as Record<symbol, unknown>)[RUNTIME_KEY] = await import('../index.js');
  const reached = becomeHost();
  const imported = import(pathToFileURL(file).href);
  imported.catch(() => {}); // reported through the race below when it matters
  try {
    await Promise.race([reached, imported]);
  } catch (err) {
    throw new SkybatchError('SKYBATCH_E_SCRIPT_LOAD', `the job's script failed while loading on this host: ${errorMessage(err)}`, { cause: err });
  }
}

export function makeReader(spec: FormatSpec & { state?: unknown }): InputReader<object> {
  const Cls = INPUT_READER_REGISTRY.get(spec.type);
  const reader = new Cls(spec.path, spec.options as object);
  reader.importJobState(spec.state);
  return reader;
}

export function makeWriters(specs: FormatSpec[]): OutputWriter<object>[] {
  return specs.map((s) => new (OUTPUT_WRITER_REGISTRY.get(s.type))(s.path, s.options as object));
}

/** Where a writer may write during a job: its output and its temp folder. */
export function writableBy(w: OutputWriter<object>, jobId: string): string[] {
  return [w.path, jobTmpDir(w.path, jobId) + '/'];
}

/** Runs `fn` as writer `w`: every write it makes must stay inside `writableBy(w)`. */
export function asWriter<T>(w: OutputWriter<object>, jobId: string, fn: () => T): T {
  return withWriteScope(`${w.constructor.name}(${w.path})`, writableBy(w, jobId), fn);
}

/** `reduceResults` then `cleanup` of every writer; the first failure names its writer. */
export async function reduceAndCleanup(writers: OutputWriter<object>[], jobId: string, opts: { cleanup?: boolean } = {}): Promise<void> {
  const steps = opts.cleanup === false ? (['reduceResults'] as const) : (['reduceResults', 'cleanup'] as const);
  for (const step of steps) {
    for (const w of writers) {
      try {
        await asWriter(w, jobId, () => w[step](jobId));
      } catch (err) {
        throw new SkybatchError('SKYBATCH_E_REDUCE', `job ${jobId}: ${w.constructor.name}(${w.path}).${step} failed: ${errorMessage(err)}`, {
          context: { jobId, path: w.path },
          cause: err,
        });
      }
    }
  }
}
