import { schemeOf } from '../common/paths.js';
import { LocalStorage } from './local.js';
import type { Storage } from './storage.js';

const cache = new Map<string, Storage>();

/**
 * The raw storage backend for a path, one per scheme. Cloud SDKs are loaded lazily so a
 * local-only job never pays for them. Writers and user code get it through `storageFor`
 * (formats/storage-for.ts), which puts the write-scope guard in front of it.
 */
export async function backendFor(path: string): Promise<Storage> {
  const scheme = schemeOf(path);
  let s = cache.get(scheme);
  if (!s) {
    if (scheme === 's3') s = new (await import('./s3.js')).S3Storage();
    else if (scheme === 'gs') s = new (await import('./gcs.js')).GcsStorage();
    else s = new LocalStorage();
    cache.set(scheme, s);
  }
  return s;
}
