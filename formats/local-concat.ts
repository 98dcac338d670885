import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { randomBytes } from 'node:crypto';
import { SkybatchError } from './common/errors.js';
import { normalizePath } from './common/paths.js';
import { assertWritable } from './write-scope.js';

/** Batch files up to this size are read whole; bigger ones in pieces of this size. */
const PIECE = 8 * 1024 * 1024;

/**
 * Reads local files as buffers of at most 8 MiB, synchronously: a batch file is a few hundred
 * KB, and one blocking read of it costs less than the round trip through libuv's thread pool
 * that an async read takes (3x the byte copy's time for 100 files on a loaded machine).
 *
 * With `reuse`, every piece is a view of one buffer that the next piece overwrites: for a
 * consumer that is done with a piece before asking for the next (writeLocalWhole), so a merge
 * holds one file's bytes, not every file's until the GC runs (24 MB of coordinator RSS for
 * the 1M-row bench job).
 */
export class LocalPieces {
  private scratch?: Buffer;

  constructor(private readonly reuse: boolean) {}

  *read(path: string, size: number): Iterable<Buffer> {
    const file = normalizePath(path);
    if (!this.reuse && size <= PIECE) {
      yield fs.readFileSync(file);
      return;
    }
    const fd = fs.openSync(file, 'r');
    try {
      for (;;) {
        const buf = this.buffer(size);
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) return;
        yield buf.subarray(0, n);
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  private buffer(size: number): Buffer {
    const want = Math.min(PIECE, Math.max(size, 64 * 1024));
    if (!this.reuse) return Buffer.allocUnsafe(want);
    if (!this.scratch || this.scratch.length < want) this.scratch = Buffer.allocUnsafe(want);
    return this.scratch;
  }
}

/** Writes all of `buf` to `fd` at its position (a write may take only part of it). */
export function writeFully(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off);
}

/**
 * Writes `chunks` to the local file `target` whole or not at all, as LocalStorage.put does
 * (a `.xxxxxxxx.partial` sibling renamed into place, so removeStalePartials knows it), but
 * with plain writes instead of a stream: the stream's per-chunk cost was most of a merge's
 * time. The event loop gets a turn every 8 MiB, so a coordinator merging in its own process
 * keeps serving its other jobs.
 */
export async function writeLocalWhole(target: string, chunks: AsyncIterable<Uint8Array>, appendTo?: string): Promise<void> {
  assertWritable(target);
  const file = normalizePath(target);
  // `appendTo`: a temp file on the target's file system that already holds the first chunks (a merge begun ahead)
  const tmp = appendTo ? normalizePath(appendTo) : `${file}.${randomBytes(4).toString('hex')}.partial`;
  let fd: number | undefined;
  try {
    fs.mkdirSync(nodePath.dirname(file), { recursive: true });
    fd = fs.openSync(tmp, appendTo ? 'a' : 'w', 0o666);
    let sinceTurn = 0;
    for await (const c of chunks) {
      writeFully(fd, c);
      sinceTurn += c.length;
      if (sinceTurn >= PIECE) {
        sinceTurn = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (err instanceof SkybatchError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOSPC' ? 'disk full while trying to write' : code === 'EACCES' || code === 'EPERM' ? 'permission denied (write)' : `write failed: ${(err as Error).message}`;
    throw new SkybatchError(code === 'EACCES' || code === 'EPERM' ? 'SKYBATCH_E_ACCESS_DENIED' : 'SKYBATCH_E_STORAGE', `${file}: ${why}`, { context: { path: file }, cause: err, retryable: code !== 'EACCES' && code !== 'EPERM' });
  }
}
