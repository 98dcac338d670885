import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { SkybatchError } from '../common/errors.js';
import { normalizePath } from '../common/paths.js';
import { Body, ObjectInfo, Storage, isStreamBody } from './storage.js';

const TMP_SEGMENT = '.sky_batch_tmp';
/** Bodies up to this size are written synchronously: on slow disks a small async write costs several times more. */
const SMALL_WRITE = 256 * 1024;
/** Files of one folder `list` stats before it lets the event loop turn. */
const STAT_TOGETHER = 256;

/**
 * Local files behind the storage interface. Writes go to a sibling temp file and are
 * renamed into place, so a reader never sees half a file and a full disk leaves the old
 * file intact. Directories under `.sky_batch_tmp` vanish when their last file is deleted,
 * as prefixes do in object stores; nothing outside such a tree is ever pruned.
 */
export class LocalStorage implements Storage {
  async put(path: string, body: Body): Promise<void> {
    const file = normalizePath(path);
    const tmp = `${file}.${randomBytes(4).toString('hex')}.partial`;
    try {
      fs.mkdirSync(nodePath.dirname(file), { recursive: true });
      if (isStreamBody(body)) {
        await pipeline(body instanceof Readable ? body : Readable.from(body), fs.createWriteStream(tmp));
        await fsp.rename(tmp, file);
      } else if (body.length <= SMALL_WRITE) {
        fs.writeFileSync(tmp, body);
        fs.renameSync(tmp, file);
      } else {
        await fsp.writeFile(tmp, body);
        await fsp.rename(tmp, file);
      }
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw wrap(err, file, 'write');
    }
  }

  async get(path: string): Promise<Buffer> {
    const file = normalizePath(path);
    try {
      return await fsp.readFile(file);
    } catch (err) {
      throw wrap(err, file, 'read');
    }
  }

  async getRange(path: string, start: number, end: number): Promise<Buffer> {
    const file = normalizePath(path);
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(file, 'r');
      const size = (await fh.stat()).size;
      const stop = Math.min(end, size);
      if (stop <= start) return Buffer.alloc(0);
      const buf = Buffer.allocUnsafe(stop - start);
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return buf.subarray(0, off);
    } catch (err) {
      throw wrap(err, file, 'read');
    } finally {
      await fh?.close();
    }
  }

  async readStream(path: string, range?: { start: number; end: number }): Promise<Readable> {
    const file = normalizePath(path);
    await this.size(file); // surface a missing file as a clear error before streaming
    if (range && range.end <= range.start) return Readable.from([]);
    return fs.createReadStream(file, range ? { start: range.start, end: range.end - 1 } : {});
  }

  async size(path: string): Promise<number> {
    const file = normalizePath(path);
    try {
      const st = await fsp.stat(file);
      if (!st.isFile()) throw new SkybatchError('SKYBATCH_E_NOT_FOUND', `${file} is a directory, not a file`, { context: { path: file } });
      return st.size;
    } catch (err) {
      throw wrap(err, file, 'read');
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      return (await fsp.stat(normalizePath(path))).isFile();
    } catch {
      return false;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const norm = normalizePath(prefix);
    const full = prefix.endsWith('/') && !norm.endsWith('/') ? norm + '/' : norm;
    const root = full.endsWith('/') ? full.slice(0, -1) || '/' : nodePath.dirname(full);
    const found: ObjectInfo[] = [];
    await walk(root, async (file, size) => {
      if (file.startsWith(full)) found.push({ path: file, size });
    });
    found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    yield* found;
  }

  async delete(paths: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const p of paths) {
      const file = normalizePath(p);
      try {
        fs.rmSync(file, { force: true });
      } catch (err) {
        throw wrap(err, file, 'delete');
      }
      dirs.add(nodePath.dirname(file));
    }
    // deepest first, so a parent is tried once its children are gone
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) await pruneTmpParents(dir);
  }
}

/**
 * Removes the half-written `.partial` siblings a killed writer left of `path` (a file), or
 * of the files directly in `path` (a folder, ending in '/'). Only for a caller that knows no
 * one else is writing there now, like the reduce step holding its job's lock. A folder under
 * `.sky_batch_tmp` left empty goes too, as when `delete` removes its last file.
 */
export async function removeStalePartials(path: string): Promise<void> {
  const target = normalizePath(path);
  const dir = path.endsWith('/') ? target : nodePath.dirname(target);
  const base = path.endsWith('/') ? undefined : nodePath.basename(target);
  const suffix = /\.[0-9a-f]{8}\.partial$/; // what put() appends to its temp file
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const stale = base === undefined ? suffix.test(name) : name.startsWith(base) && /^\.[0-9a-f]{8}\.partial$/.test(name.slice(base.length));
    if (stale) await fsp.rm(nodePath.join(dir, name), { force: true });
  }
  await pruneTmpParents(dir);
}

async function walk(dir: string, visit: (file: string, size: number) => Promise<void>): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
    throw wrap(err, dir, 'list');
  }
  // A folder's files are stat'ed synchronously, STAT_TOGETHER between turns of the event
  // loop: a stat of a cached inode takes microseconds, its round trip through libuv's thread
  // pool a lot more (the reduce step's listings of 100 batch files took 3-8 ms each, and the
  // coordinator lists a job's temp folder four times between its last commit and SUCCEEDED).
  const files = entries.filter((e) => e.isFile() && !e.name.endsWith('.partial')).map((e) => nodePath.join(dir, e.name));
  for (let i = 0; i < files.length; i += STAT_TOGETHER) {
    if (i > 0) await new Promise((r) => setImmediate(r));
    for (const p of files.slice(i, i + STAT_TOGETHER)) {
      let size: number;
      try {
        size = fs.statSync(p).size;
      } catch {
        continue; // gone meanwhile: not listed
      }
      await visit(p, size);
    }
  }
  for (const e of entries) if (e.isDirectory()) await walk(nodePath.join(dir, e.name), visit);
}

async function pruneTmpParents(dir: string): Promise<void> {
  while (dir.split(nodePath.sep).includes(TMP_SEGMENT)) {
    try {
      await fsp.rmdir(dir);
    } catch {
      return; // not empty (or already gone): stop
    }
    if (nodePath.basename(dir) === TMP_SEGMENT) return;
    dir = nodePath.dirname(dir);
  }
}

function wrap(err: unknown, path: string, op: string): Error {
  if (err instanceof SkybatchError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new SkybatchError('SKYBATCH_E_NOT_FOUND', `${path}: no such file`, { context: { path }, cause: err });
  if (code === 'EACCES' || code === 'EPERM') {
    return new SkybatchError('SKYBATCH_E_ACCESS_DENIED', `${path}: permission denied (${op})`, { context: { path }, cause: err });
  }
  if (code === 'ENOSPC') {
    return new SkybatchError('SKYBATCH_E_STORAGE', `${path}: disk full while trying to ${op}`, { context: { path }, cause: err, retryable: true });
  }
  return new SkybatchError('SKYBATCH_E_STORAGE', `${path}: ${op} failed: ${(err as Error).message}`, { context: { path }, cause: err, retryable: true });
}
