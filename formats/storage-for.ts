import { backendFor } from './storage/factory.js';
import type { Storage } from './storage/storage.js';
import { guardWrites } from './write-scope.js';

const cache = new Map<Storage, Storage>();

/**
 * The storage for a path, as skybatch's formats and users' custom writers get it: every write
 * and delete passes the write-scope check of the writer running it, if any (see
 * `withWriteScope`; the check reads the scope from the caller's async context).
 */
export async function storageFor(path: string): Promise<Storage> {
  const backend = await backendFor(path);
  let s = cache.get(backend);
  if (!s) cache.set(backend, (s = guardWrites(backend)));
  return s;
}
