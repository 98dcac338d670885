/**
 * The coordinator's memory for one large job, without sockets: a `JobRun` of N batches
 * (batchSize 1) that leases and commits a share of them through a real `Journal` (with its
 * snapshots), then, in a fresh process, the restore a restarted coordinator does
 * (`readJournal` + `new JobRun`). Prints heap and RSS after a full GC, and CPU times.
 *
 *   node --expose-gc out/bench/replay-memory.js [--batches 1000000] [--commits 612345]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobRun } from '../runtime/coordinator/job-run.js';
import { readJournal, writeSpec } from '../runtime/store/job-store.js';
import { Journal } from '../runtime/store/journal.js';
import type { JobSpec } from '../runtime/protocol.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const batches = arg('batches', 1_000_000);
const commits = arg('commits', Math.round(batches * 0.612345));
const mode = process.argv.includes('--restore') ? 'restore' : process.argv.includes('--run') ? 'run' : 'main';

function spec(batches: number): JobSpec {
  return {
    jobId: '1', pool: 'mem', createdAt: '2026-01-01T00:00:00.000Z', scriptPath: 'job.ts', mapperId: 'm', bundleHash: 'h',
    reader: { type: 'jsonl', path: '/in' }, writers: [{ type: 'jsonl', path: '/out' }],
    batchSize: 1, total: batches, env: {}, argv: [], cwd: '/',
  } as unknown as JobSpec;
}

/** After a full GC: the JS heap plus array buffers (typed arrays live outside the heap), and RSS. */
function mem(): { heapMb: number; rssMb: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { heapMb: (m.heapUsed + m.arrayBuffers) / 2 ** 20, rssMb: m.rss / 2 ** 20 };
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1000;
}

if (mode === 'run') {
  const base = mem();
  let t = process.cpuUsage();
  const journal = new Journal('1');
  const run = new JobRun(spec(batches), undefined, journal);
  run.setStatus('RUNNING');
  const built = { ...mem(), cpuMs: cpuMs(t) };
  t = process.cpuUsage();
  // 2,000 batches in flight (1,000 workers at a credit of 2), committed oldest first
  const inFlight: { index: number; current: number; worker: string }[] = [];
  let done = 0;
  let n = 0;
  let at10: ReturnType<typeof mem> | undefined;
  while (done < commits) {
    while (inFlight.length < 2000) {
      const b = run.next(0);
      if (!b) break;
      const worker = `w${n++ % 1000}`;
      run.lease(b, worker);
      run.markStarted(b.index, b.current);
      inFlight.push({ index: b.index, current: b.current, worker });
    }
    const b = inFlight.shift()!;
    run.commit(b.index, b.current, b.worker, 1);
    done++;
    if (done === Math.floor(batches / 10)) at10 = mem();
  }
  const committed = { ...mem(), cpuMs: cpuMs(t), batchesDone: run.summary().batchesDone };
  journal.flush(); // what a SIGKILL a tick later leaves: no status record, the journal as it stands
  console.log(JSON.stringify({ base, built, at10, committed }));
  process.exit(0);
} else if (mode === 'restore') {
  const base = mem();
  let t = process.cpuUsage();
  const replay = readJournal('1');
  const readMs = cpuMs(t);
  t = process.cpuUsage();
  const run = new JobRun(spec(batches), replay, new Journal('1'));
  const buildMs = cpuMs(t);
  const after = mem();
  const summary = run.summary(); // after mem(): the run is still reachable when it is measured
  console.log(JSON.stringify({ base, readMs, buildMs, after, batchesDone: summary.batchesDone, itemsDone: summary.itemsDone }));
  process.exit(0);
}

export interface ReplayMemory {
  batches: number;
  commits: number;
  /** Heap + array buffers after a full GC, MB: a JobRun just built, and after the commits. */
  builtMb: number;
  committedMb: number;
  emptyMb: number;
  runRssMb: number;
  commitUs: number;
  journalMb: number;
  /** CPU of a restarted coordinator's restore (readJournal, then new JobRun), ms, and its heap after. */
  readMs: number;
  buildMs: number;
  restoredMb: number;
  restoredBatchesDone: number;
}

/** Runs both phases in child processes of their own (a clean heap each) in a temporary SKYBATCH_HOME. */
export function replayMemory(batches: number, commits: number): ReplayMemory {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-mem-'));
  const saved = process.env.SKYBATCH_HOME;
  try {
    const env = { ...process.env, SKYBATCH_HOME: home };
    const self = fileURLToPath(import.meta.url);
    const child = (m: string) => JSON.parse(execFileSync(process.execPath, ['--expose-gc', self, m, '--batches', String(batches), '--commits', String(commits)], { env, encoding: 'utf8', maxBuffer: 1 << 20 }).trim().split('\n').pop()!);
    process.env.SKYBATCH_HOME = home;
    writeSpec(spec(batches));
    const run = child('--run');
    const journalMb = fs.statSync(path.join(home, 'jobs', '1', 'journal.jsonl')).size / 2 ** 20;
    const restore = child('--restore');
    return {
      batches, commits, emptyMb: run.base.heapMb, builtMb: run.built.heapMb, committedMb: run.committed.heapMb, runRssMb: run.committed.rssMb,
      commitUs: (run.committed.cpuMs * 1000) / commits, journalMb,
      readMs: restore.readMs, buildMs: restore.buildMs, restoredMb: restore.after.heapMb, restoredBatchesDone: restore.batchesDone,
    };
  } finally {
    if (saved === undefined) delete process.env.SKYBATCH_HOME;
    else process.env.SKYBATCH_HOME = saved;
    fs.rmSync(home, { recursive: true, force: true });
  }
}

if (mode === 'main' && process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const m = replayMemory(batches, commits);
  const f = (x: number) => x.toFixed(1);
  console.log(`job of ${batches} batches, ${commits} committed; load ${os.loadavg()[0].toFixed(1)}`);
  console.log(`running: heap+buffers ${f(m.emptyMb)} MB empty, ${f(m.builtMb)} MB after new JobRun, ${f(m.committedMb)} MB after the commits (${f(m.commitUs)} us CPU each); RSS ${f(m.runRssMb)} MB`);
  console.log(`journal: ${f(m.journalMb)} MB`);
  console.log(`restore: readJournal ${f(m.readMs)} ms CPU, new JobRun ${f(m.buildMs)} ms CPU; heap+buffers ${f(m.restoredMb)} MB; ${m.restoredBatchesDone} batches done`);
}
