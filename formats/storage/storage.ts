import { Readable } from 'node:stream';

/** One object (or local file) found by `list`. */
export interface ObjectInfo {
  /** Full path in the same form the backend was addressed with (`s3://b/k`, `gs://b/k`, `/abs/p`). */
  path: string;
  size: number;
}

/** Bytes to write: a whole buffer, or a stream of chunks for large objects (multipart / resumable). */
export type Body = Uint8Array | string | AsyncIterable<Uint8Array> | Readable;

/**
 * The one storage interface. Paths are always full (`s3://bucket/key`, `gs://bucket/key`,
 * `file:///abs`, `/abs`). Errors are `SkybatchError`s with codes `SKYBATCH_E_NOT_FOUND`,
 * `SKYBATCH_E_NO_BUCKET`, `SKYBATCH_E_ACCESS_DENIED`, `SKYBATCH_E_BAD_CREDENTIALS` or
 * `SKYBATCH_E_STORAGE`, each naming the full path.
 */
export interface Storage {
  /** Writes the whole object; readers never see a partial object. */
  put(path: string, body: Body): Promise<void>;
  get(path: string): Promise<Buffer>;
  /** Bytes `[start, end)`; `end` past the object's size is clipped. */
  getRange(path: string, start: number, end: number): Promise<Buffer>;
  /** A stream of the object, optionally of bytes `[start, end)`. */
  readStream(path: string, range?: { start: number; end: number }): Promise<Readable>;
  /** Size in bytes; `SKYBATCH_E_NOT_FOUND` when missing. */
  size(path: string): Promise<number>;
  exists(path: string): Promise<boolean>;
  /** Every object whose path starts with `prefix`, at any depth, sorted by path. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes the objects; missing ones are not an error. */
  delete(paths: string[]): Promise<void>;
}

export function isStreamBody(body: Body): body is AsyncIterable<Uint8Array> | Readable {
  return typeof body !== 'string' && !(body instanceof Uint8Array);
}
