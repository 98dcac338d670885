import * as fs from 'node:fs';

const POLL_MS = 200;
/** Finding a process's descendants reads every /proc/N/stat, so it runs every few polls only. */
const TREE_EVERY = 5;

/** Whether this platform lets the agent measure a process's memory (Linux /proc). */
export const canWatchMemory = process.platform === 'linux' && fs.existsSync('/proc/self/status');

/**
 * Polls the resident memory of `pid` and the processes it started (a mapper may spawn
 * Python or a model server); when their sum passes `limitBytes`, SIGKILLs all of them (so
 * no child is left holding the memory) and calls `onKilled` once with the sum. Returns a
 * function that stops watching.
 */
export function capMemory(pid: number, limitBytes: number, onKilled: (rssBytes: number) => void): () => void {
  let tree = [pid];
  let ticks = 0;
  const timer = setInterval(() => {
    if (ticks++ % TREE_EVERY === 0) tree = [pid, ...descendants(pid)];
    const total = tree.reduce((sum, p) => sum + rssBytes(p), 0);
    if (total <= limitBytes) return;
    clearInterval(timer);
    killTree(pid);
    onKilled(total);
  }, POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * SIGKILLs a process and every process it started (found before the kill: orphans are
 * reparented and cannot be told apart afterwards). SIGKILL ends stopped processes too.
 */
export function killTree(pid: number): void {
  for (const p of [pid, ...(canWatchMemory ? descendants(pid) : [])]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // exited
  }
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      // the command name may hold spaces and parentheses: fields resume after the last ')'
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) for (const c of children.get(todo.pop()!) ?? []) out.push(c), todo.push(c);
  return out;
}
