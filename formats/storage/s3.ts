import { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { SkybatchError } from '../common/errors.js';
import { splitBucketPath } from '../common/paths.js';
import { Body, ObjectInfo, Storage, isStreamBody } from './storage.js';

/** Buffers above this, and every stream, go through a multipart upload. */
const MULTIPART_THRESHOLD = 8 * 1024 * 1024;
const PART_SIZE = 8 * 1024 * 1024;
const DELETE_BATCH = 1000;

/** Options for {@link S3Storage}; every field falls back to the standard AWS environment. */
export interface S3StorageOptions {
  /** Custom endpoint (Ceph, MinIO, ...). Default: `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, else AWS. */
  endpoint?: string;
  /** Static credentials. Default: the SDK's standard credential chain (env, profile, SSO, IMDS, ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Default: the SDK's region chain (`AWS_REGION`, profile), else `us-east-1`. */
  region?: string;
  /** Default: true when an endpoint is set or `AWS_S3_FORCE_PATH_STYLE=true`. */
  forcePathStyle?: boolean;
  /** Attempts per request, including the first (SDK standard retry mode). Default: `AWS_MAX_ATTEMPTS`, else 5. */
  maxAttempts?: number;
  /**
   * A request whose connection stays silent this long is abandoned and retried, so a stalled
   * server costs a retry, not a hung batch. Default: `SKYBATCH_STORAGE_TIMEOUT_MS`, else 60 s.
   */
  requestTimeoutMs?: number;
}

/**
 * Amazon S3 (or any S3-compatible store) behind the storage interface. The SDK retries
 * 5xx, throttling and connection resets with backoff; 4xx answers such as 403 are never
 * retried. Stream bodies and buffers over 8 MiB are uploaded in 8 MiB parts, so a failed
 * part is retried alone and memory stays bounded.
 */
export class S3Storage implements Storage {
  /** The underlying client, for callers that need an operation the interface lacks. */
  readonly client: S3Client;
  private readonly maxAttempts: number;

  constructor(opts: S3StorageOptions = {}) {
    const env = process.env;
    const endpoint = opts.endpoint ?? (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined);
    this.maxAttempts = opts.maxAttempts ?? (Number(env.AWS_MAX_ATTEMPTS) || 5);
    const config: S3ClientConfig = {
      region: opts.region ?? defaultRegion(),
      forcePathStyle: opts.forcePathStyle ?? (endpoint !== undefined || env.AWS_S3_FORCE_PATH_STYLE === 'true'),
      maxAttempts: this.maxAttempts,
      retryMode: 'standard',
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? (Number(env.SKYBATCH_STORAGE_TIMEOUT_MS) || 60_000), connectionTimeout: 10_000, throwOnRequestTimeout: true },
    };
    if (endpoint) config.endpoint = endpoint;
    if (opts.credentials) config.credentials = opts.credentials;
    this.client = new S3Client(config);
  }

  async put(path: string, body: Body): Promise<void> {
    const { bucket, key } = split(path);
    try {
      if (isStreamBody(body) || body.length > MULTIPART_THRESHOLD) {
        const stream = typeof body === 'string' || body instanceof Uint8Array || body instanceof Readable ? body : Readable.from(body);
        const upload = new Upload({
          client: this.client,
          params: { Bucket: bucket, Key: key, Body: stream },
          partSize: PART_SIZE,
          queueSize: 4,
          leavePartsOnError: false,
        });
        await upload.done();
      } else {
        await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      }
    } catch (err) {
      throw toSkybatchError(err, path, 'write');
    }
  }

  async get(path: string): Promise<Buffer> {
    return this.readAll(path);
  }

  async getRange(path: string, start: number, end: number): Promise<Buffer> {
    if (end <= start) {
      await this.size(path); // a missing object is still an error, as for local files
      return Buffer.alloc(0);
    }
    return this.readAll(path, { start, end });
  }

  async readStream(path: string, range?: { start: number; end: number }): Promise<Readable> {
    if (range && range.end <= range.start) {
      await this.size(path);
      return Readable.from([]);
    }
    const res = await this.getObject(path, range);
    // byte mode, as the SDK's own body stream is (Readable.from defaults to object mode)
    return Readable.from(res ? this.resumingBody(path, res, range?.start ?? 0, range?.end) : [], { objectMode: false });
  }

  async size(path: string): Promise<number> {
    const { bucket, key } = split(path);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return res.ContentLength ?? 0;
    } catch (err) {
      throw await this.explainHead(err, path);
    }
  }

  async exists(path: string): Promise<boolean> {
    const { bucket, key } = split(path);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (err) {
      // a missing bucket reads as "not there", as a missing directory does for local files
      if (statusOf(err) === 404) return false;
      throw await this.explainHead(err, path);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const { bucket, key } = split(prefix);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key || undefined, ContinuationToken: token }));
      } catch (err) {
        throw toSkybatchError(err, prefix, 'list');
      }
      for (const o of page.Contents ?? []) {
        if (o.Key !== undefined) yield { path: `s3://${bucket}/${o.Key}`, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(paths: string[]): Promise<void> {
    const byBucket = new Map<string, string[]>();
    for (const p of paths) {
      const { bucket, key } = split(p);
      const keys = byBucket.get(bucket) ?? [];
      keys.push(key);
      byBucket.set(bucket, keys);
    }
    for (const [bucket, keys] of byBucket) {
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        const batch = keys.slice(i, i + DELETE_BATCH);
        let res;
        try {
          res = await this.client.send(
            new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          );
        } catch (err) {
          throw toSkybatchError(err, `s3://${bucket}/${batch[0]}`, 'delete');
        }
        const failed = (res.Errors ?? []).find((e) => e.Code !== 'NoSuchKey');
        if (failed) {
          const err = Object.assign(new Error(failed.Message ?? failed.Code ?? 'delete failed'), { name: failed.Code ?? 'Error' });
          throw toSkybatchError(err, `s3://${bucket}/${failed.Key}`, 'delete');
        }
      }
    }
  }

  /** GET of the whole object or `[start, end)`; `undefined` when the range starts past the end. */
  private async getObject(
    path: string,
    range?: { start: number; end?: number },
    ifMatch?: string,
  ): Promise<GetObjectCommandOutput | undefined> {
    const { bucket, key } = split(path);
    const Range = range ? `bytes=${range.start}-${range.end === undefined ? '' : range.end - 1}` : undefined;
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range, IfMatch: ifMatch }));
    } catch (err) {
      // 416: the object exists but is shorter than `start`; the interface clips to empty.
      if (range && statusOf(err) === 416) return undefined;
      throw toSkybatchError(err, path, 'read');
    }
  }

  private async readAll(path: string, range?: { start: number; end: number }): Promise<Buffer> {
    const res = await this.getObject(path, range);
    if (!res) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for await (const c of this.resumingBody(path, res, range?.start ?? 0, range?.end)) chunks.push(c);
    return Buffer.concat(chunks);
  }

  /**
   * The body of a GET, resumed with a ranged GET from the last byte received when the
   * connection dies mid-body (the SDK retries only until the headers arrive). The resumed
   * request names the first response's ETag, so a concurrent overwrite fails the read
   * instead of splicing two versions.
   */
  private async *resumingBody(path: string, first: GetObjectCommandOutput, start: number, end?: number): AsyncGenerator<Buffer> {
    const expected = first.ContentLength;
    let offset = start;
    let received = 0;
    let body = first.Body as Readable;
    for (let failures = 0; ; ) {
      try {
        for await (const c of body) {
          received += c.length;
          offset += c.length;
          yield c as Buffer;
        }
        if (expected === undefined || received >= expected) return;
        throw new Error(`connection closed after ${received} of ${expected} bytes`);
      } catch (err) {
        body.destroy();
        if (++failures >= this.maxAttempts) {
          throw new SkybatchError('SKYBATCH_E_STORAGE', `${path}: read failed while downloading: ${(err as Error).message}`, {
            context: { path },
            cause: err,
            retryable: true,
          });
        }
        const next = await this.getObject(path, { start: offset, end }, first.ETag);
        if (!next) return;
        body = next.Body as Readable;
      }
    }
  }

  /**
   * HEAD answers carry no error code, so a 403 or 404 from HEAD cannot tell a bad secret from a
   * missing permission, or a missing bucket from a missing key. One ranged GET, made only on
   * that error path, gets the code that names the cause.
   */
  private async explainHead(err: unknown, path: string): Promise<SkybatchError> {
    const status = statusOf(err);
    if (status === 403 || status === 404) {
      const { bucket, key } = split(path);
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-0' }));
        (res.Body as Readable | undefined)?.destroy();
      } catch (precise) {
        if (statusOf(precise) === 403 || statusOf(precise) === 404) return toSkybatchError(precise, path, 'read');
      }
    }
    return toSkybatchError(err, path, 'read');
  }
}

/** The SDK asks for the region on every request, so the answer is memoized (per client). */
function defaultRegion(): () => Promise<string> {
  let region: Promise<string> | undefined;
  return () =>
    (region ??= (async () => {
      // Ask the SDK's own region chain (env, shared config); a client with no region throws.
      const probe = new S3Client({});
      try {
        return (await probe.config.region()) || 'us-east-1';
      } catch {
        return 'us-east-1';
      } finally {
        probe.destroy();
      }
    })());
}

function split(path: string): { bucket: string; key: string } {
  if (!path.startsWith('s3://')) {
    throw new SkybatchError('SKYBATCH_E_BAD_PATH', `'${path}' is not an s3:// path`, { context: { path } });
  }
  const parts = splitBucketPath(path);
  if (!parts.bucket) throw new SkybatchError('SKYBATCH_E_BAD_PATH', `'${path}' names no bucket`, { context: { path } });
  return parts;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  const e = err as { name?: string; Code?: string };
  return e?.Code ?? e?.name ?? '';
}

const BAD_CREDENTIALS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'CredentialsProviderError',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
]);

/** Maps an SDK error to the interface's codes; the message names the path and the cause in plain words. */
export function toSkybatchError(err: unknown, path: string, op: string): SkybatchError {
  if (err instanceof SkybatchError) return err;
  const name = nameOf(err);
  const status = statusOf(err);
  const detail = `${name || 'Error'}${status ? ` ${status}` : ''}: ${(err as Error)?.message ?? String(err)}`;
  const context = { path };
  if (name === 'NoSuchBucket') {
    const { bucket } = splitBucketPath(path);
    return new SkybatchError('SKYBATCH_E_NO_BUCKET', `${path}: bucket '${bucket}' does not exist (${detail})`, { context, cause: err });
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new SkybatchError('SKYBATCH_E_NOT_FOUND', `${path}: no such object (${detail})`, { context, cause: err });
  }
  if (BAD_CREDENTIALS.has(name)) {
    return new SkybatchError(
      'SKYBATCH_E_BAD_CREDENTIALS',
      `${path}: the S3 credentials were rejected or not found; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile (${detail})`,
      { context, cause: err, retryable: false },
    );
  }
  if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
    return new SkybatchError('SKYBATCH_E_ACCESS_DENIED', `${path}: access denied; the credentials lack permission to ${op} here (${detail})`, {
      context,
      cause: err,
      retryable: false,
    });
  }
  return new SkybatchError('SKYBATCH_E_STORAGE', `${path}: ${op} failed (${detail})`, { context, cause: err, retryable: true });
}
