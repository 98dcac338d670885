import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkybatchError } from './errors.js';

export type Scheme = 'file' | 's3' | 'gs';

export function schemeOf(path: string): Scheme {
  if (path.startsWith('s3://')) return 's3';
  if (path.startsWith('gs://')) return 'gs';
  return 'file';
}

/** Splits `s3://bucket/a/b` into `{ bucket, key }`; the key may be empty. */
export function splitBucketPath(path: string): { bucket: string; key: string } {
  const rest = path.replace(/^[a-z0-9]+:\/\//, '');
  const slash = rest.indexOf('/');
  if (slash < 0) return { bucket: rest, key: '' };
  return { bucket: rest.slice(0, slash), key: rest.slice(slash + 1) };
}

/**
 * Makes a user-given path absolute so it means the same on every process of a job:
 * `file:///x` becomes `/x`, a relative local path is resolved against the current
 * directory, cloud URIs are kept. A trailing slash (a "directory" output) is preserved.
 */
export function normalizePath(p: string): string {
  if (p === '') return p;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p) && !/^(s3|gs|file):\/\//.test(p)) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `unsupported path '${p}': use s3://, gs://, file:// or a local path`, { context: { path: p } });
  }
  if (schemeOf(p) !== 'file') return p;
  const trailing = p.endsWith('/');
  const local = p.startsWith('file://') ? fileURLToPath(p) : p;
  const abs = nodePath.resolve(local);
  return trailing && abs !== '/' ? abs + '/' : abs;
}

/** Joins path segments with '/', for local paths and URIs alike. */
export function joinPath(base: string, ...parts: string[]): string {
  let out = base.replace(/\/+$/, '');
  for (const part of parts) out += '/' + part.replace(/^\/+/, '');
  return out;
}

/** The parent "directory" of a path, without trailing slash. */
export function parentPath(p: string): string {
  const trimmed = p.replace(/\/+$/, '');
  const i = trimmed.lastIndexOf('/');
  if (i < 0) return '.';
  const parent = trimmed.slice(0, i);
  // keep `s3://bucket` whole
  return parent.endsWith(':/') ? trimmed : parent;
}

export function baseName(p: string): string {
  const trimmed = p.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/** Rejects keys that would climb out of an output prefix (`..` segments, NUL bytes). */
export function assertSafeKey(key: string, what: string): void {
  if (key.includes('\0') || key.split(/[\\/]/).some((seg) => seg === '..')) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `${what} '${key}' escapes its output prefix`, { context: { path: key } });
  }
}

export function pad8(n: number): string {
  return String(n).padStart(8, '0');
}
