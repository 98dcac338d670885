import { AsyncLocalStorage } from 'node:async_hooks';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { SkybatchError } from './common/errors.js';
import { normalizePath, schemeOf } from './common/paths.js';
import type { Body, Storage } from './storage/storage.js';

/** A writer's scope, its allowed paths canonical: made once per writer and job (`writeScope`), entered per batch. */
export interface WriteScope {
  writer: string;
  allowed: string[];
}

const store = new AsyncLocalStorage<WriteScope>();
/** The folder skybatch keeps a job's temp files in, next to each output (see jobTmpDir). */
const TMP_SEGMENT = '.sky_batch_tmp';

/**
 * Runs a writer's code (uploadBatch, reduceResults, cleanup) so that every write or delete
 * it makes through skybatch storage must land under one of `allowed` (its output and its
 * temp folder): a key like `../../etc/x` or an absolute path elsewhere is refused.
 *
 * The scope travels in an AsyncLocalStorage, not in arguments, because writers are user code
 * written to the reference contract (`uploadBatch(results, start, end, jobId)`): everything
 * `fn` awaits, down to `assertWritable`, sees it.
 */
export function withWriteScope<T>(writer: string, allowed: string[], fn: () => T): T {
  return store.run(writeScope(writer, allowed), fn);
}

/** The scope `withWriteScope` enters, for a caller that runs the same writer many times (a mapper process, once per batch). */
export function writeScope(writer: string, allowed: string[]): WriteScope {
  return { writer, allowed: allowed.map(canonical) };
}

/** Runs `fn` in a scope made by `writeScope`. */
export function inWriteScope<T>(scope: WriteScope, fn: () => T): T {
  return store.run(scope, fn);
}

/** Refuses a write to `path` outside the scope of the writer running now (from the caller's async context; no scope: anything goes). */
export function assertWritable(path: string): void {
  const scope = store.getStore();
  if (!scope) return;
  const target = canonical(path);
  const matches = scope.allowed.filter((p) => (p.endsWith('/') ? target.startsWith(p) : target === p || target.startsWith(p + '/')));
  if (!matches.length) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `${scope.writer} may write only under ${scope.allowed.join(' or ')}; refused ${path}`, { context: { path } });
  }
  if (schemeOf(target) !== 'file') return;
  const real = realLocal(target);
  if (!matches.some((p) => insideReal(real, p))) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `${scope.writer} may write only under ${scope.allowed.join(' or ')}; refused ${path}: a symbolic link on the way leads to ${real}`, {
      context: { path },
    });
  }
}

/**
 * Whether `real` (a resolved target) lies inside allowed entry `entry` once symbolic links
 * are resolved. Links are trusted only in the part of the entry the user named (the folder
 * holding the output, or the output folder itself): one planted below it, in the output
 * folder or in `.sky_batch_tmp`, must not carry a write elsewhere.
 */
function insideReal(real: string, entry: string): boolean {
  const dir = entry.endsWith('/');
  const plain = dir ? entry.slice(0, -1) : entry;
  const tmp = plain.indexOf(`/${TMP_SEGMENT}/`);
  const anchor = tmp >= 0 ? plain.slice(0, tmp) : dir ? plain : nodePath.dirname(plain);
  const resolved = nodePath.join(realDeepest(anchor), nodePath.relative(anchor, plain));
  return real === resolved || real.startsWith(resolved + '/');
}

/** A local path with its folder's symbolic links resolved; the file itself is not followed (writes replace it by rename). */
function realLocal(file: string): string {
  return nodePath.join(realDeepest(nodePath.dirname(file)), nodePath.basename(file));
}

/** realpath of the deepest existing ancestor, with the part that does not exist yet appended. */
function realDeepest(p: string): string {
  const rest: string[] = [];
  for (let dir = p; ; dir = nodePath.dirname(dir)) {
    try {
      return nodePath.join(fs.realpathSync.native(dir), ...rest.reverse());
    } catch {
      if (dir === nodePath.dirname(dir)) return p;
      rest.push(nodePath.basename(dir));
    }
  }
}

/** Local paths resolved (so `..` is gone); in cloud keys a `..` segment is refused outright. */
function canonical(p: string): string {
  if (schemeOf(p) === 'file') return normalizePath(p);
  if (p.split('/').some((seg) => seg === '..' || seg === '.')) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `'${p}' has a '.' or '..' segment; object keys must not climb out of their prefix`, { context: { path: p } });
  }
  return p;
}

/** `inner` with every write and delete checked by `assertWritable` first; reads pass through. */
export function guardWrites(inner: Storage): Storage {
  return new Guarded(inner);
}

class Guarded implements Storage {
  constructor(private readonly inner: Storage) {}
  put(path: string, body: Body) {
    assertWritable(path);
    return this.inner.put(path, body);
  }
  delete(paths: string[]) {
    paths.forEach(assertWritable);
    return this.inner.delete(paths);
  }
  get = (path: string) => this.inner.get(path);
  getRange = (path: string, start: number, end: number) => this.inner.getRange(path, start, end);
  readStream = (path: string, range?: { start: number; end: number }) => this.inner.readStream(path, range);
  size = (path: string) => this.inner.size(path);
  exists = (path: string) => this.inner.exists(path);
  list = (prefix: string) => this.inner.list(prefix);
}
