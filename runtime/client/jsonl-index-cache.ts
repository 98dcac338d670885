import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildIndex, type JsonlIndex } from '../../formats/json-reader.js';
import { skybatchHome } from '../store/pool-store.js';

/** How many input files' indexes the cache keeps. */
export const INDEX_CACHE_ENTRIES = 50;

/**
 * File times tick coarsely (a few ms), so a file changed this recently could change again
 * with the same stamp: such a file is indexed but not cached (git's "racily clean" rule).
 */
const RACY_MS = 100;

type Stamp = [dev: string, ino: string, size: string, mtimeNs: string, ctimeNs: string];

function stampOf(file: string): Stamp {
  const st = fs.statSync(file, { bigint: true });
  return [String(st.dev), String(st.ino), String(st.size), String(st.mtimeNs), String(st.ctimeNs)];
}

const settled = (s: Stamp) => Date.now() - Number(BigInt(s[4]) / 1_000_000n) >= RACY_MS;

/**
 * The line index of a local JSONL input, from `$SKYBATCH_HOME/cache/jsonl-index` when the file
 * still has the device, inode, size, mtime and ctime it had when it was indexed (ctime moves
 * on every write, and no program can set it back), else from a fresh pass, which is then
 * stored. A repeated `map()` over the same input skips the pass (0.07 s per million short
 * rows). A file changed in the last 100 ms is not cached. Remote inputs (s3://, gs://, file://) are always indexed: undefined.
 */
export async function cachedIndex(input: string): Promise<JsonlIndex | undefined> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) return undefined;
  let file: string;
  let before: Stamp;
  try {
    file = fs.realpathSync(input);
    before = stampOf(file);
  } catch {
    return undefined; // the reader reports a missing input in its own words
  }
  const dir = path.join(skybatchHome(), 'cache', 'jsonl-index');
  const entry = path.join(dir, `${createHash('sha256').update(file).digest('hex')}.json`);
  try {
    const hit = JSON.parse(fs.readFileSync(entry, 'utf8')) as { stamp: Stamp; index: JsonlIndex };
    if (JSON.stringify(hit.stamp) === JSON.stringify(before) && hit.index.size === Number(before[2])) return hit.index;
  } catch {
    // no entry, or a torn one: index
  }
  const index = await buildIndex(file);
  // A file written to while it was read is not cached: the next run indexes it again.
  if (JSON.stringify(stampOf(file)) !== JSON.stringify(before) || !settled(before)) return index;
  try {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${entry}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ stamp: before, index }));
    fs.renameSync(tmp, entry);
    trim(dir);
  } catch {
    // a cache that cannot be written only costs the next run the pass
  }
  return index;
}

function trim(dir: string): void {
  const names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
  if (names.length <= INDEX_CACHE_ENTRIES) return;
  const byAge = names.map((n) => ({ n, at: fs.statSync(path.join(dir, n)).mtimeMs })).sort((a, b) => a.at - b.at);
  for (const { n } of byAge.slice(0, names.length - INDEX_CACHE_ENTRIES)) fs.rmSync(path.join(dir, n), { force: true });
}
