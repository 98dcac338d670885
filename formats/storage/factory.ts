import { LocalStorage } from './local.js';
import { Storage, schemeOf } from './storage.js';

const cache = new Map<string, Storage>();

/**
 * The storage backend for a path. Cloud SDKs are loaded lazily so a local-only job never
 * pays for them.
 */
export async function storageFor(path: string): Promise<Storage> {
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
