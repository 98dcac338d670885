import { pathToFileURL } from 'node:url';
import { SkybatchError, errorMessage } from '../formats/common/errors.js';
import type { InputReader } from '../formats/input-reader.js';
import type { OutputWriter } from '../formats/output-writer.js';
import { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from '../formats/registries.js';
import { jobTmpDir } from '../formats/utils.js';
import { type WriteScope, withWriteScope, writeScope } from '../formats/write-scope.js';
import { readBundleHeader, type BundleHeader } from './bundle-header.js';
import { asPackageError, installHost } from './host-packages.js';
import { becomeHost, mapperById, mapperBySite, onlyMapperNamed, type MapperFn } from './mapper-api.js';
import { ignoreFrameFile } from './mapper-site.js';
import type { PackageApi } from './package-api.js';
import type { FormatSpec, JobSpec } from './protocol.js';

export const RUNTIME_KEY = Symbol.for('skybatch.runtime');

/**
 * Imports a job's bundle in a host process (worker mapper process or reduce step). The
 * bundle holds only what the job needs of the user's script (the client pruned the rest,
 * see client/prune.ts), so importing it runs the mapper's and the formats' declarations
 * and nothing else. Its `import 'skybatch'` reads this process's runtime from a global, so
 * its registries and `load()`/`saveResults()` are ours; its packages resolve from the
 * user's project (host-packages.ts). A `ds.map()` that still runs here (a mapper created
 * inside a `main()` that also submits) never resolves on a host: no job is resubmitted.
 * `runtime` is the package's API as the host process loaded it (package-api.ts): the loader
 * is handed it rather than importing the package that re-exports the loader itself.
 */
export async function loadBundle(file: string, runtime: PackageApi): Promise<BundleHeader | undefined> {
  (globalThis as Record<symbol, unknown>)[RUNTIME_KEY] = runtime;
  const header = readBundleHeader(file);
  if (header) installHost(file, header, runtime);
  ignoreFrameFile(file);
  const reached = becomeHost();
  const imported = import(pathToFileURL(file).href);
  imported.catch(() => {}); // reported through the race below when it matters
  try {
    await Promise.race([reached, imported]);
  } catch (err) {
    const missing = asPackageError(err);
    if (missing instanceof SkybatchError && missing.code === 'SKYBATCH_E_PACKAGE_MISSING') throw missing;
    throw new SkybatchError('SKYBATCH_E_SCRIPT_LOAD', `the job's script failed while loading on this host: ${errorMessage(err)}`, { cause: err });
  }
  return header;
}

/**
 * The job's mapper: the one created where the client saw it created; else by its `name#n`
 * id, or the only one of its name (the stacks disagree, e.g. a script run without source maps).
 */
export function jobMapper(spec: Pick<JobSpec, 'mapperId'>, header: BundleHeader | undefined): MapperFn | undefined {
  const m = header?.mapper;
  return (m && mapperBySite(m.site, m.ordinal)) ?? mapperById(spec.mapperId) ?? (m ? onlyMapperNamed(m.name) : undefined);
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

/** The write scope of writer `w` in job `jobId` (see `asWriter`), to enter with `inWriteScope`. */
export function writerScope(w: OutputWriter<object>, jobId: string): WriteScope {
  return writeScope(`${w.constructor.name}(${w.path})`, writableBy(w, jobId));
}

/** Runs `fn` as writer `w`: every write it makes must stay inside `writableBy(w)`. */
export function asWriter<T>(w: OutputWriter<object>, jobId: string, fn: () => T): T {
  return withWriteScope(`${w.constructor.name}(${w.path})`, writableBy(w, jobId), fn);
}

/** Runs one writer's `reduceResults` or `cleanup` inside its write scope; a failure names the writer and keeps its code when it is `SKYBATCH_E_INCOMPLETE`. */
export async function runWriterStep(w: OutputWriter<object>, jobId: string, step: 'reduceResults' | 'cleanup'): Promise<void> {
  try {
    await asWriter(w, jobId, () => w[step](jobId));
  } catch (err) {
    const code = err instanceof SkybatchError && err.code === 'SKYBATCH_E_INCOMPLETE' ? err.code : 'SKYBATCH_E_REDUCE';
    throw new SkybatchError(code, `job ${jobId}: ${w.constructor.name}(${w.path}).${step} failed: ${errorMessage(err)}`, {
      context: { jobId, path: w.path },
      cause: err,
    });
  }
}
