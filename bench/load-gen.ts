/**
 * The coordinator at scale: one real coordinator (its entry point, started directly with no
 * local workers), `workers` simulated workers held by a few load-generator processes
 * (load-gen-worker.ts: real ws connections speaking the worker protocol), and a job of
 * `batches` no-op batches submitted through a real `map()` call. Measures the dispatch
 * rate, coordinator RSS over time, journal size, restart-replay time after a SIGKILL
 * mid-job, and what a paused event subscriber does to coordinator memory.
 */
import { ChildProcess, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinatorClient } from '../runtime/client/connection.js';
import type { PoolSummary } from '../runtime/protocol.js';
import { COORDINATOR_ENV, COORDINATOR_NODE_FLAGS } from '../runtime/coordinator/node-flags.js';
import { ROOT, Sandbox } from '../test/harness.js';
import { RssSampler, alive, cpuSeconds, kill, sleep } from './lib/proc.js';

const COORDINATOR = path.join(ROOT, 'out', 'runtime', 'coordinator', 'main.js');
const LG_WORKER = fileURLToPath(new URL('./load-gen-worker.js', import.meta.url));
const SUBSCRIBER = fileURLToPath(new URL('./paused-subscriber.js', import.meta.url));
const NOOP_SCRIPT = path.join(ROOT, 'bench', 'scripts', 'noop.ts');
/** No answered batch for this long (outside a restart) means the run is stuck. */
const STALL_MS = 60_000;

export interface ScaleOptions {
  workers: number;
  batches: number;
  /** Each simulated batch takes this long (0: answered at once). */
  delayMs: number;
  /** Load-generator processes sharing the workers. */
  procs: number;
  /** How long the event subscriber stays frozen (0: not measured). */
  pauseSeconds: number;
  /** Kill and restart the coordinator at 60 % of the job. */
  restart: boolean;
  /** Give up (cancel the job) after this long. */
  maxSeconds: number;
  log: (line: string) => void;
}

export interface ScaleResult {
  workers: number;
  batches: number;
  status: string;
  wallSeconds: number;
  /** From the last batch answered to the job's end seen by a client: the tail of the job. */
  tailSeconds: number;
  /** Batches/s between 10 % and 30 % of the job (before any disturbance). */
  steadyRate: number;
  steadyCoordCpuUsPerBatch: number;
  rss: {
    start: number;
    at10: number;
    peakAfter10: number;
    /** Peaks against peaks (the "flat after 10 %" target): the highest in 10-30 % of the job, and the highest after it. */
    peak10to30: number;
    peakAfter30: number;
    peak: number;
    end: number;
    series: { t: number; mb: number }[];
  };
  journalMbAtKill?: number;
  journalMbEnd: number;
  restart?: { firstStartSeconds: number; listenSeconds: number; serveSeconds: number; dispatchSeconds: number };
  paused?: { seconds: number; rssBefore: number; rssEnd: number; baselineGrowthMb: number;
    /** The window before the freeze that baselineGrowthMb covers. */
    baselineSeconds: number; rssAfterKill: number };
}

interface Coord {
  proc: ChildProcess;
  pid: number;
  url: string;
  token: string;
  listenSeconds: number;
}

/** The flags `pool apply` starts the coordinator with; BENCH_COORDINATOR_FLAGS (space-separated) replaces them, to compare. */
function coordinatorFlags(): readonly string[] {
  const given = process.env.BENCH_COORDINATOR_FLAGS;
  return given === undefined ? COORDINATOR_NODE_FLAGS : given.split(' ').filter(Boolean);
}

/** The environment `pool apply` adds for the coordinator; BENCH_COORDINATOR_ENV (`K=V K=V`, or empty) replaces it, to compare. */
function coordinatorEnv(): Record<string, string> {
  const given = process.env.BENCH_COORDINATOR_ENV;
  if (given === undefined) return { ...COORDINATOR_ENV };
  return Object.fromEntries(given.split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

async function startCoordinator(sb: Sandbox, pool: string): Promise<Coord> {
  const dir = path.join(sb.home, 'pools', pool);
  const out = fs.openSync(path.join(dir, 'coordinator.log'), 'a');
  const t0 = performance.now();
  const proc = spawn(process.execPath, [...coordinatorFlags(), COORDINATOR, '--pool', pool], { env: sb.env(coordinatorEnv()), stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const info = JSON.parse(fs.readFileSync(path.join(dir, 'coordinator.json'), 'utf8')) as { pid: number; url: string };
      if (info.pid === proc.pid) {
        const listenSeconds = (performance.now() - t0) / 1000;
        return { proc, pid: proc.pid!, url: info.url, token: fs.readFileSync(path.join(dir, 'token'), 'utf8').trim(), listenSeconds };
      }
    } catch {
      // not written yet
    }
    if (proc.exitCode !== null) throw new Error(`the coordinator exited at start (code ${proc.exitCode}); see ${dir}/coordinator.log`);
    if (Date.now() > deadline) throw new Error(`the coordinator did not start within 60 s; see ${dir}/coordinator.log`);
    await sleep(5);
  }
}

async function stopCoordinator(c: Coord): Promise<void> {
  if (!alive(c.pid)) return;
  kill(c.pid, 'SIGTERM');
  for (let i = 0; i < 300 && alive(c.pid); i++) await sleep(50);
  kill(c.pid, 'SIGKILL');
}

async function status(c: Coord): Promise<PoolSummary> {
  const client = await CoordinatorClient.connect(c.url, c.token);
  try {
    return (await client.request({ type: 'status' })) as PoolSummary;
  } finally {
    client.close();
  }
}

function journalMb(sb: Sandbox): number {
  const jobs = path.join(sb.home, 'jobs');
  const ids = fs.existsSync(jobs) ? fs.readdirSync(jobs).map(Number).filter(Number.isInteger) : [];
  if (!ids.length) return 0;
  try {
    return fs.statSync(path.join(jobs, String(Math.max(...ids)), 'journal.jsonl')).size / 2 ** 20;
  } catch {
    return 0;
  }
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const sb = new Sandbox('scale');
  const pool = 'scale';
  const poolDir = path.join(sb.home, 'pools', pool);
  fs.mkdirSync(poolDir, { recursive: true, mode: 0o700 });
  // pool.yaml asks for at least one local worker; the coordinator itself takes 0 (only simulated ones join)
  fs.writeFileSync(path.join(poolDir, 'pool.json'), JSON.stringify({ pool: { workers: 0 } }), { mode: 0o600 });
  const gens: ChildProcess[] = [];
  let subscriber: ChildProcess | undefined;
  let coord: Coord | undefined;
  try {
    coord = await startCoordinator(sb, pool);
    const firstStartSeconds = coord.listenSeconds;
    const counts = Array.from({ length: o.procs }, () => ({ done: 0, ready: 0 }));
    const per = Math.ceil(o.workers / o.procs);
    for (let p = 0; p < o.procs; p++) {
      const first = p * per;
      const n = Math.min(per, o.workers - first);
      if (n <= 0) break;
      const g = fork(LG_WORKER, [coord.url, coord.token, String(first), String(n), String(o.delayMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      g.on('message', (m: { done: number; ready: number }) => (counts[p] = m));
      gens.push(g);
    }
    const done = () => counts.reduce((a, c) => a + c.done, 0);
    const ready = () => counts.reduce((a, c) => a + c.ready, 0);
    const readyBy = Date.now() + 120_000;
    while (ready() < o.workers) {
      if (Date.now() > readyBy) throw new Error(`only ${ready()} of ${o.workers} simulated workers connected within 120 s`);
      await sleep(100);
    }
    o.log(`scale: ${o.workers} simulated workers connected; submitting ${o.batches} batches`);

    // every 50 ms: the GC's saw tooth in the coordinator has a period of 250-350 ms at full
    // rate, and the "flat" figure compares its peaks in two windows of a few seconds
    const rss = new RssSampler(coord.pid, 50);
    const submitted = sb.cli(['run', NOOP_SCRIPT], { env: { POOL: pool, BATCHES: String(o.batches) }, timeoutMs: (o.maxSeconds + 120) * 1000 });
    const t0 = performance.now();
    const now = () => (performance.now() - t0) / 1000;
    const B = o.batches;
    let t10 = 0;
    let cpu10 = 0;
    let rss10 = 0;
    let steadyRate = 0;
    let t30 = 0;
    let steadyCpu = 0;
    let pauseDone = o.pauseSeconds <= 0;
    let restartDone = !o.restart;
    let restart: ScaleResult['restart'];
    let paused: ScaleResult['paused'];
    let journalMbAtKill: number | undefined;
    const excluded: [number, number][] = []; // windows left out of "flat after 10 %"
    let tUnpaused = 0;
    let tAllAnswered = 0;
    let lastDone = 0;
    let lastProgress = Date.now();
    let lastLog = 0;
    let finalStatus = 'TIMEOUT';
    for (;;) {
      await sleep(100);
      const d = done();
      if (d !== lastDone) {
        lastDone = d;
        lastProgress = Date.now();
      }
      if (now() - lastLog >= 10) {
        lastLog = now();
        o.log(`scale: ${d}/${B} batches at ${now().toFixed(0)} s, coordinator RSS ${rss.last.toFixed(0)} MB, journal ${journalMb(sb).toFixed(1)} MB`);
      }
      if (!t10 && d >= 0.1 * B) {
        t10 = now();
        cpu10 = cpuSeconds(coord.pid);
        rss10 = rss.sample() ?? rss.last;
      }
      if (t10 && !steadyRate && d >= 0.3 * B) {
        t30 = now();
        steadyRate = (d - Math.ceil(0.1 * B)) / (t30 - t10);
        steadyCpu = ((cpuSeconds(coord.pid) - cpu10) * 1e6) / (d - Math.ceil(0.1 * B));
      }
      if (steadyRate && !pauseDone) {
        pauseDone = true;
        const sub = fork(SUBSCRIBER, [coord.url, coord.token], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        subscriber = sub;
        await new Promise<void>((resolve, reject) => {
          sub.once('message', () => resolve());
          sub.once('exit', (code) => reject(new Error(`the paused subscriber exited with code ${code}`)));
        });
        kill(sub.pid, 'SIGSTOP');
        const tp = now();
        const rssBefore = rss.sample() ?? rss.last;
        const before = rss.series.filter((s) => s.t >= tp - o.pauseSeconds && s.t >= t10);
        const baselineGrowthMb = rssBefore - (before[0]?.mb ?? rssBefore);
        const baselineSeconds = tp - (before[0]?.t ?? tp);
        o.log(`scale: event subscriber frozen (SIGSTOP) for ${o.pauseSeconds} s`);
        // frozen for pauseSeconds, or until 55 % of the job, so the restart still happens mid-job
        while (now() - tp < o.pauseSeconds && (!o.restart || done() < 0.55 * B)) await sleep(50);
        const pausedFor = now() - tp;
        const rssEnd = rss.sample() ?? rss.last;
        kill(sub.pid, 'SIGKILL');
        subscriber = undefined;
        tUnpaused = now();
        // what the coordinator holds 2 s after the subscriber is gone is read off the series at the end
        excluded.push([tp, tUnpaused + 2]);
        paused = { seconds: pausedFor, rssBefore, rssEnd, baselineGrowthMb, baselineSeconds, rssAfterKill: rssEnd };
        lastProgress = Date.now();
      }
      if (pauseDone && !restartDone && d >= 0.6 * B) {
        restartDone = true;
        if (d >= 0.9 * B) {
          o.log(`scale: the job was at ${d}/${B} after the freeze: too near its end for a restart mid-job; not measured`);
          continue;
        }
        journalMbAtKill = journalMb(sb);
        o.log(`scale: SIGKILL of the coordinator at ${d}/${B} (journal ${journalMbAtKill.toFixed(1)} MB)`);
        const tk = now();
        kill(coord.pid, 'SIGKILL');
        while (alive(coord.pid)) await sleep(5);
        const doneAtKill = done();
        const t1 = performance.now();
        coord = await startCoordinator(sb, pool);
        rss.follow(coord.pid);
        // serving again = the first status request answered; a thousand workers reconnect at the same time
        for (;;) {
          try {
            await status(coord);
            break;
          } catch (err) {
            if (performance.now() - t1 > STALL_MS) throw err;
            await sleep(50);
          }
        }
        const serveSeconds = (performance.now() - t1) / 1000;
        while (done() <= doneAtKill) {
          if (performance.now() - t1 > STALL_MS) throw new Error('no batch was dispatched within 60 s of the coordinator restart');
          await sleep(5);
        }
        restart = { firstStartSeconds, listenSeconds: coord.listenSeconds, serveSeconds, dispatchSeconds: (performance.now() - t1) / 1000 };
        excluded.push([tk, now() + 2]);
        lastProgress = Date.now();
      }
      if (d >= B && pauseDone && restartDone) {
        tAllAnswered ||= now();
        // the coordinator may be too busy to answer at the end of the job: that is measured, not an error
        const job = (await status(coord).catch(() => undefined))?.jobs.at(-1);
        if (job && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status)) {
          finalStatus = job.status;
          break;
        }
        lastProgress = Date.now();
      }
      if (Date.now() - lastProgress > STALL_MS) throw new Error(`no batch answered for ${STALL_MS / 1000} s at ${d}/${B}`);
      if (now() > o.maxSeconds) {
        const job = (await status(coord)).jobs.at(-1);
        o.log(`scale: stopping after ${o.maxSeconds} s at ${d}/${B}`);
        if (job) {
          const c = await CoordinatorClient.connect(coord.url, coord.token);
          await c.request({ type: 'cancel', jobId: job.jobId }).catch(() => undefined);
          c.close();
        }
        break;
      }
    }
    const wallSeconds = now();
    rss.stop();
    if (paused) paused.rssAfterKill = rss.series.find((p) => p.t >= tUnpaused + 2)?.mb ?? rss.last;
    const after10 = rss.series.filter((s) => t10 && s.t >= t10 && !excluded.some(([a, b]) => s.t >= a && s.t <= b));
    await submitted.catch(() => undefined);
    return {
      workers: o.workers,
      batches: B,
      status: finalStatus,
      wallSeconds,
      tailSeconds: tAllAnswered ? wallSeconds - tAllAnswered : NaN,
      steadyRate,
      steadyCoordCpuUsPerBatch: steadyCpu,
      rss: {
        start: rss.first,
        at10: rss10,
        peakAfter10: Math.max(rss10, ...after10.map((s) => s.mb)),
        peak10to30: Math.max(rss10, ...after10.filter((s) => !t30 || s.t <= t30).map((s) => s.mb)),
        peakAfter30: Math.max(0, ...after10.filter((s) => t30 && s.t > t30).map((s) => s.mb)),
        peak: rss.peak,
        end: rss.last,
        series: rss.series,
      },
      journalMbAtKill,
      journalMbEnd: journalMb(sb),
      restart,
      paused,
    };
  } finally {
    if (subscriber) kill(subscriber.pid, 'SIGKILL');
    for (const g of gens) g.connected && g.send({ type: 'stop' });
    await sleep(200);
    for (const g of gens) kill(g.pid, 'SIGKILL');
    if (coord) await stopCoordinator(coord);
    await sb.cleanup();
  }
}
