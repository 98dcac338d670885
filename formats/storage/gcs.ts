import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { File, IdempotencyStrategy, Storage as GcsClient } from '@google-cloud/storage';
import { SkybatchError } from '../common/errors.js';
import { splitBucketPath } from '../common/paths.js';
import { Body, ObjectInfo, Storage, isStreamBody } from './storage.js';

/** Buffers above this, and every stream, go through a resumable upload. */
const RESUMABLE_THRESHOLD = 8 * 1024 * 1024;
const PAGE_SIZE = 1000;
const DELETE_CONCURRENCY = 32;

/** Options for {@link GcsStorage}; every field falls back to the environment. */
export interface GcsStorageOptions {
  /**
   * Custom API endpoint, e.g. an emulator's `http://127.0.0.1:9199`; requests to it are not
   * authenticated. Default: `STORAGE_EMULATOR_HOST` when set (the client library reads it), else Google.
   */
  apiEndpoint?: string;
  /** Default: from Application Default Credentials or `GOOGLE_CLOUD_PROJECT`. */
  projectId?: string;
  /** Retries after the first attempt for 408/429/5xx and connection resets. Default: 4. */
  maxRetries?: number;
}

/**
 * Google Cloud Storage behind the storage interface, authenticated with Application Default
 * Credentials. Large and stream bodies use one resumable upload sent as a single request
 * (no `chunkSize`: chunked uploads buffer whole chunks and the emulator rejects them).
 * Every operation is retried on transient errors, uploads included: a put overwrites the
 * whole object, so repeating it is harmless.
 */
export class GcsStorage implements Storage {
  /** The underlying client, for callers that need an operation the interface lacks. */
  readonly client: GcsClient;

  constructor(opts: GcsStorageOptions = {}) {
    this.client = new GcsClient({
      ...(opts.apiEndpoint ? { apiEndpoint: opts.apiEndpoint } : {}),
      ...(opts.projectId ? { projectId: opts.projectId } : {}),
      retryOptions: {
        autoRetry: true,
        maxRetries: opts.maxRetries ?? 4,
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
      },
    });
  }

  async put(path: string, body: Body): Promise<void> {
    const file = this.file(path);
    try {
      if (isStreamBody(body)) {
        const source = body instanceof Readable ? body : Readable.from(body);
        await pipeline(source, file.createWriteStream({ resumable: true }));
      } else {
        const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
        await file.save(buf, { resumable: buf.length > RESUMABLE_THRESHOLD });
      }
    } catch (err) {
      throw await this.wrap(err, path, 'write');
    }
  }

  async get(path: string): Promise<Buffer> {
    try {
      return (await this.file(path).download())[0];
    } catch (err) {
      throw await this.wrap(err, path, 'read');
    }
  }

  async getRange(path: string, start: number, end: number): Promise<Buffer> {
    if (end <= start) {
      await this.size(path); // a missing object is still an error, as for local files
      return Buffer.alloc(0);
    }
    const stream = this.file(path).createReadStream({ start, end: end - 1 });
    let status: number | undefined;
    stream.on('response', (res: { statusCode?: number }) => (status = res.statusCode));
    let buf: Buffer;
    try {
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      buf = Buffer.concat(chunks);
    } catch (err) {
      if (statusOf(err) === 416) return Buffer.alloc(0); // starts past the end: clipped to empty
      throw await this.wrap(err, path, 'read');
    }
    // A 200 instead of 206 means the server ignored the range and sent the whole object (the
    // emulator does so when `start` is past the end); cut the range out here.
    return status === 200 ? buf.subarray(Math.min(start, buf.length), Math.min(end, buf.length)) : buf;
  }

  async readStream(path: string, range?: { start: number; end: number }): Promise<Readable> {
    // Metadata first: a missing object fails here, not later on the stream, and a range
    // starting past the end needs no request at all.
    const size = await this.size(path);
    if (range && (range.end <= range.start || range.start >= size)) return Readable.from([], { objectMode: false });
    const src = this.file(path).createReadStream(range ? { start: range.start, end: Math.min(range.end, size) - 1 } : {});
    // Not `pipeline`: it would destroy `out` with the raw error before it could be mapped.
    const out = new PassThrough();
    src.on('error', (err) => void this.wrap(err, path, 'read').then((e) => out.destroy(e)));
    out.on('close', () => src.destroy());
    src.pipe(out);
    return out;
  }

  async size(path: string): Promise<number> {
    try {
      const [meta] = await this.file(path).getMetadata();
      return Number(meta.size ?? 0);
    } catch (err) {
      throw await this.wrap(err, path, 'read');
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      return (await this.file(path).exists())[0];
    } catch (err) {
      throw await this.wrap(err, path, 'read');
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const { bucket, key } = split(prefix);
    let pageToken: string | undefined;
    do {
      let files: File[];
      let next: { pageToken?: string } | null | undefined;
      try {
        [files, next] = await this.client
          .bucket(bucket)
          .getFiles({ prefix: key || undefined, autoPaginate: false, maxResults: PAGE_SIZE, pageToken });
      } catch (err) {
        throw await this.wrap(err, prefix, 'list');
      }
      for (const f of files) yield { path: `gs://${bucket}/${f.name}`, size: Number(f.metadata.size ?? 0) };
      pageToken = next?.pageToken;
    } while (pageToken);
  }

  async delete(paths: string[]): Promise<void> {
    // The JSON API has no multi-object delete; a small pool of single deletes keeps it quick.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < paths.length) {
        const path = paths[next++];
        try {
          await this.file(path).delete({ ignoreNotFound: true });
        } catch (err) {
          throw await this.wrap(err, path, 'delete');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, paths.length) }, worker));
  }

  private file(path: string): File {
    const { bucket, key } = split(path);
    return this.client.bucket(bucket).file(key);
  }

  /**
   * A 404 names no cause, so one listing of the bucket, made only on that error path, tells a
   * missing bucket from a missing object.
   */
  private async wrap(err: unknown, path: string, op: string): Promise<SkybatchError> {
    if (err instanceof SkybatchError) return err;
    if (statusOf(err) === 404) {
      const { bucket } = split(path);
      try {
        await this.client.bucket(bucket).getFiles({ autoPaginate: false, maxResults: 1 });
      } catch (probe) {
        if (statusOf(probe) === 404) {
          return new SkybatchError('SKYBATCH_E_NO_BUCKET', `${path}: bucket '${bucket}' does not exist (${detail(err)})`, {
            context: { path },
            cause: err,
          });
        }
      }
    }
    return toSkybatchError(err, path, op);
  }
}

function split(path: string): { bucket: string; key: string } {
  if (!path.startsWith('gs://')) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `'${path}' is not a gs:// path`, { context: { path } });
  }
  const parts = splitBucketPath(path);
  if (!parts.bucket) throw new SkybatchError('SKYBATCH_E_BAD_PATH', `'${path}' names no bucket`, { context: { path } });
  return parts;
}

/** The HTTP status of a client-library error: `ApiError.code`, or a gaxios response status. */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const v of [e?.code, e?.status, e?.response?.status]) if (typeof v === 'number') return v;
  return undefined;
}

function detail(err: unknown): string {
  const status = statusOf(err);
  return `${status ?? (err as { code?: string })?.code ?? 'error'}: ${(err as Error)?.message ?? String(err)}`;
}

/** Maps a client-library error to the interface's codes; the message names the path and the cause in plain words. */
export function toSkybatchError(err: unknown, path: string, op: string): SkybatchError {
  if (err instanceof SkybatchError) return err;
  const status = statusOf(err);
  const context = { path };
  // OAuth failures come from google-auth-library: a token endpoint's `invalid_grant`, or no ADC at all.
  const oauth = (err as { response?: { data?: { error?: unknown } } })?.response?.data?.error;
  const noAdc = !status && /Could not load the default credentials/.test((err as Error)?.message ?? '');
  if (status === 401 || oauth === 'invalid_grant' || oauth === 'unauthorized_client' || noAdc) {
    return new SkybatchError(
      'SKYBATCH_E_BAD_CREDENTIALS',
      `${path}: the Google Cloud credentials were rejected or not found; run \`gcloud auth application-default login\` or set GOOGLE_APPLICATION_CREDENTIALS (${detail(err)})`,
      { context, cause: err, retryable: false },
    );
  }
  if (status === 404) return new SkybatchError('SKYBATCH_E_NOT_FOUND', `${path}: no such object (${detail(err)})`, { context, cause: err });
  if (status === 403) {
    return new SkybatchError('SKYBATCH_E_ACCESS_DENIED', `${path}: access denied; the credentials lack permission to ${op} here (${detail(err)})`, {
      context,
      cause: err,
      retryable: false,
    });
  }
  return new SkybatchError('SKYBATCH_E_STORAGE', `${path}: ${op} failed (${detail(err)})`, { context, cause: err, retryable: true });
}
