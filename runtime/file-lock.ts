import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SkybatchError } from '../formats/common/errors.js';
import { diskError } from './store/disk-error.js';
import { isAlive } from './store/pool-store.js';

/** Who holds a lock: a process, told apart from a later process with the same pid by its start time. */
export interface LockHolder {
  pid: number;
  /** Clock ticks since boot (field 22 of /proc/PID/stat); absent where there is no procfs. */
  start?: string;
  host: string;
  what: string;
  since: string;
}

/** The start time of a process (Linux), so a reused pid is not taken for the process that held a lock. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote `holder` still runs (a holder on another host is taken as alive). */
export function holderAlive(holder: LockHolder): boolean {
  if (holder.host !== os.hostname()) return true;
  if (!isAlive(holder.pid)) return false;
  const start = processStart(holder.pid);
  return holder.start === undefined || start === undefined || start === holder.start;
}

const STALE_BREAK_MS = 10_000;
const POLL_MS = 100;

/**
 * An exclusive lock as a file that holds its owner's pid. It is created whole in one step
 * (written aside, then hard-linked into place, which fails if the file exists), so no one
 * ever reads a half-written lock. A lock whose owner died is broken, but only under a
 * second short-lived lock and only if it still holds what was judged stale, so two
 * processes that find the same stale lock cannot both take it.
 */
export class FileLock {
  private constructor(
    readonly file: string,
    private readonly content: string,
  ) {}

  /**
   * Takes the lock, waiting while a live process holds it (`onWait` is told who, once);
   * fails with `SKYBATCH_E_POOL_BUSY` after `timeoutMs` (`Infinity`: waits as long as the holder lives).
   * With `folderGone`, the lock's folder is not created: when it is missing, or a holder removes
   * it while we wait (`pool down` twice at once), acquire throws what `folderGone` returns.
   */
  static async acquire(
    file: string,
    what: string,
    opts: { timeoutMs: number; onWait?: (holder: LockHolder) => void; folderGone?: () => Error },
  ): Promise<FileLock> {
    const deadline = Date.now() + opts.timeoutMs;
    let told = false;
    for (;;) {
      const mine = FileLock.tryAcquire(file, what, opts.folderGone);
      if (mine) return mine;
      const seen = readLock(file);
      if (seen === undefined) continue; // released meanwhile
      if (seen.holder && !holderAlive(seen.holder)) {
        breakStale(file, seen.raw);
        continue;
      }
      if (!seen.holder && Date.now() - seen.mtimeMs > STALE_BREAK_MS) {
        breakStale(file, seen.raw); // unreadable and old: written by something else, or a disk that lost it
        continue;
      }
      if (seen.holder && !told) {
        told = true;
        opts.onWait?.(seen.holder);
      }
      if (Date.now() > deadline) {
        const who = seen.holder ? `${seen.holder.what} (pid ${seen.holder.pid}, since ${seen.holder.since})` : 'an unknown process';
        throw new SkybatchError('SKYBATCH_E_POOL_BUSY', `${file} is held by ${who}; gave up waiting after ${Math.round(opts.timeoutMs / 1000)} s`, { context: { path: file } });
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Takes the lock if it is free; undefined when someone holds it. `folderGone`: see `acquire`. */
  static tryAcquire(file: string, what: string, folderGone?: () => Error): FileLock | undefined {
    const dir = path.dirname(file);
    const holder: LockHolder = { pid: process.pid, start: processStart(process.pid), host: os.hostname(), what, since: new Date().toISOString() };
    const content = JSON.stringify(holder);
    for (;;) {
      if (!folderGone) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
      try {
        fs.writeFileSync(tmp, content, { mode: 0o600 });
        fs.linkSync(tmp, file);
        return new FileLock(file, content);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return undefined;
        // the folder went away meanwhile (a `pool down` removed it): the caller's error, or make it again
        if (code === 'ENOENT' && !fs.existsSync(dir)) {
          if (folderGone) throw folderGone();
          continue;
        }
        throw diskError(err, file, `take the lock (${what})`);
      } finally {
        fs.rmSync(tmp, { force: true });
      }
    }
  }

  /** Gives the lock back if it is still ours; idempotent (a removed folder took it already). */
  release(): void {
    try {
      if (fs.readFileSync(this.file, 'utf8') === this.content) fs.unlinkSync(this.file);
    } catch {
      // gone already
    }
  }
}

/** Who holds the lock `file` now, if a live process does (a stale or missing lock: undefined). */
export function liveHolder(file: string): LockHolder | undefined {
  const seen = readLock(file);
  return seen?.holder && holderAlive(seen.holder) ? seen.holder : undefined;
}

/**
 * The lock as it is now; undefined once it is gone (released meanwhile). A lock that is there
 * but cannot be read (a folder, no permission) is an error naming it: waiting would not end,
 * and retrying at once, as after a release, would spin.
 */
function readLock(file: string): { raw: string; holder?: LockHolder; mtimeMs: number } | undefined {
  let raw: string;
  let mtimeMs: number;
  try {
    raw = fs.readFileSync(file, 'utf8');
    mtimeMs = fs.statSync(file).mtimeMs;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new SkybatchError('SKYBATCH_E_STORAGE', `${file}: this lock cannot be read (${code ?? (err as Error).message}); if no skybatch process is using it, remove it and try again`, {
      context: { path: file },
      cause: err,
    });
  }
  try {
    const h = JSON.parse(raw) as LockHolder;
    return { raw, holder: Number.isInteger(h?.pid) && typeof h.host === 'string' ? h : undefined, mtimeMs };
  } catch {
    return { raw, mtimeMs };
  }
}

function breakStale(file: string, staleContent: string): void {
  const breaker = `${file}.break`;
  const mine = FileLock.tryAcquire(breaker, 'breaking a stale lock');
  if (!mine) {
    // Another process is breaking it right now; a breaker that died mid-way is cleared after a while.
    try {
      if (Date.now() - fs.statSync(breaker).mtimeMs > STALE_BREAK_MS) fs.rmSync(breaker, { force: true });
    } catch {
      // gone
    }
    return;
  }
  try {
    if (fs.readFileSync(file, 'utf8') === staleContent) fs.unlinkSync(file);
  } catch {
    // released meanwhile
  } finally {
    mine.release();
  }
}
