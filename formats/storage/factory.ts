import { assertWritable } from '../write-scope.js';
import { LocalStorage } from './local.js';
import { Body, Storage, schemeOf } from './storage.js';

const cache = new Map<string, Storage>();

/** Every write and delete passes the write-scope check of the writer running it, if any. */
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

/**
 * The storage backend for a path. Cloud SDKs are loaded lazily so a local-only job never
 * pays for them.
 */
export async function storageFor(path: string): Promise<Storage> {
  const scheme = schemeOf(path);
  let s = cache.get(scheme);
  if (!s) {
    if (scheme === 's3') s = new Guarded(new (await import('./s3.js')).S3Storage());
    else if (scheme === 'gs') s = new Guarded(new (await import('./gcs.js')).GcsStorage());
    else s = new Guarded(new LocalStorage());
    cache.set(scheme, s);
  }
  return s;
}
