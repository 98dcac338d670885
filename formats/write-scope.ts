import { AsyncLocalStorage } from 'node:async_hooks';
import { SkybatchError } from './errors.js';
import { normalizePath } from './paths.js';
import { schemeOf } from './storage/storage.js';

interface WriteScope {
  writer: string;
  allowed: string[];
}

const store = new AsyncLocalStorage<WriteScope>();

/**
 * Runs a writer's code (uploadBatch, reduceResults, cleanup) so that every write or delete
 * it makes through skybatch storage must land under one of `allowed` (its output and its
 * temp folder): a key like `../../etc/x` or an absolute path elsewhere is refused.
 */
export function withWriteScope<T>(writer: string, allowed: string[], fn: () => T): T {
  return store.run({ writer, allowed: allowed.map(canonical) }, fn);
}

export function assertWritable(path: string): void {
  const scope = store.getStore();
  if (!scope) return;
  const target = canonical(path);
  const inside = scope.allowed.some((p) => (p.endsWith('/') ? target.startsWith(p) : target === p || target.startsWith(p + '/')));
  if (!inside) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `${scope.writer} may write only under ${scope.allowed.join(' or ')}; refused ${path}`, { context: { path } });
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
