import * as fs from 'node:fs';
import * as path from 'node:path';
import { jobDir } from '../pool-store.js';

/** Who holds a job's reduce lock. `since` is the process's start time (Linux), so a reused pid is not mistaken for the holder. */
export interface LockHolder {
  pid: number;
  since?: string;
  at: string;
}

const POLL_MS = 200;

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22); undefined off Linux or when it is gone. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the holder is still running: same pid, same start time, not a zombie nobody reaped. */
export function holderAlive(h: LockHolder): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${h.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && (h.since === undefined || fields[19] === h.since);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || fs.existsSync('/proc/self/stat')) return false;
  }
  try {
    process.kill(h.pid, 0); // no /proc (macOS): the pid is all there is to go by
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
    return Number.isInteger(h?.pid) ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes `jobs/<id>/reduce.lock` for this process, so that two reduces of one job never run
 * at once (a reduce orphaned by a killed coordinator, and the restarted coordinator's or a
 * `skybatch recover`'s). While a live process holds it, waits (calling `onWait` once); a
 * lock left by a dead process is taken over. Returns the release function.
 *
 * Breaking a stale lock is unlink + O_EXCL create, so two waiters could in theory both get
 * through; what keeps that harmless is that publication is atomic, the completeness check
 * refuses a merge whose files vanished, and the journal's `published` record is read again.
 */
export async function acquireReduceLock(jobId: string, onWait: (holder: LockHolder) => void): Promise<() => void> {
  const file = path.join(jobDir(jobId), 'reduce.lock');
  const me: LockHolder = { pid: process.pid, since: startTime(process.pid), at: new Date().toISOString() };
  let told = false;
  for (;;) {
    try {
      fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      return () => {
        if (readHolder(file)?.pid === me.pid) fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    if (!holder) {
      // Being written right now, or torn by a crash between create and write: give a writer time.
      const age = Date.now() - (fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (age > 5 * POLL_MS) fs.rmSync(file, { force: true });
    } else if (!holderAlive(holder)) {
      fs.rmSync(file, { force: true });
      continue;
    } else if (!told) {
      told = true;
      onWait(holder);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
