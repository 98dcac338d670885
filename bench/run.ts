/**
 * `npm run bench` (`node out/bench/run.js`): skybatch side by side with what a user would
 * pick instead, every peer run by the bench itself in the same run, and one table of each
 * figure, its peer, the ratio, the target and whether it is met (docs/bench.md).
 *
 *   --smoke           small sizes everywhere (under a minute; CI keeps the bench working with it)
 *   --only a,b        sections: dispatch, double, cpu, failure, scale, remote (remote needs root and
 *                     ip netns, is skipped without them, and is left out of --smoke unless named)
 *   --scale small     the scale section with 200 workers and 100,000 batches (full: 1,000 and 1,000,000)
 *   --profile DIR     every Node process of the run writes a CPU profile into DIR
 *                     (summarise with `node out/bench/profile-summary.js DIR`)
 *   --json FILE       all raw figures as JSON
 * Sizes can be overridden with BENCH_BATCHES (no-op dispatch), BENCH_ROWS (double-text),
 * BENCH_SCALE_WORKERS and BENCH_SCALE_BATCHES; BENCH_REPEATS sets how many interleaved rounds the
 * double-text and CPU-bound sections run (full 3, smoke 1): each side's figure is its best round.
 * Exits non-zero when the bench itself breaks (or outputs differ), not when a target is missed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { WORKER_CREDIT } from '../runtime/protocol.js';
import { Sandbox } from '../test/harness.js';
import { runScale, type ScaleResult } from './load-gen.js';
import { replayMemory, type ReplayMemory } from './replay-memory.js';
import { type Row, list, mb, median, printTable, rate, s, signedMb, x } from './lib/table.js';
import { runBullmq, type BullmqResult } from './peers/bullmq.js';
import { ensureRedisServer, startRedis } from './peers/redis.js';
import { runCpu, type CpuResult } from './sections/cpu.js';
import { skybatchDispatch, type DispatchResult } from './sections/dispatch.js';
import { runDouble, type DoubleResult } from './sections/double.js';
import { runFailure, type FailureResult } from './sections/failure.js';
import { runRemote, type RemoteResult } from './sections/remote.js';
import { runScript } from './sections/script.js';

const SECTIONS = ['dispatch', 'double', 'cpu', 'failure', 'scale', 'remote'] as const;
type Section = (typeof SECTIONS)[number];

const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    scale: { type: 'string', default: 'full' },
    profile: { type: 'string' },
    json: { type: 'string' },
  },
});
const smoke = args.smoke!;
// --smoke stays quick and needs no root: the remote section (network namespaces, sshd) only when named
const only = new Set((args.only ?? SECTIONS.filter((sec) => !(smoke && sec === 'remote')).join(',')).split(',').map((v) => v.trim()));
for (const o of only) if (!SECTIONS.includes(o as Section)) throw new Error(`--only: unknown section '${o}' (sections: ${SECTIONS.join(', ')})`);
if (!['full', 'small'].includes(args.scale!)) throw new Error(`--scale must be 'full' or 'small', got '${args.scale}'`);
const want = (sec: Section) => only.has(sec);

const size = {
  batches: Number(process.env.BENCH_BATCHES ?? (smoke ? 300 : 20_000)),
  rows: Number(process.env.BENCH_ROWS ?? (smoke ? 20_000 : 1_000_000)),
  rowBatch: smoke ? 2000 : 10_000,
  cpuItems: smoke ? 40 : 400,
  cpuRounds: smoke ? 80 : 2_500,
  // interleaved rounds of the two sections whose figures need both cores (each side's best is its figure)
  repeats: Number(process.env.BENCH_REPEATS ?? (smoke ? 1 : 3)),
  scale: smoke
    ? { workers: 10, batches: 3000, delayMs: 20, procs: 2, pauseSeconds: 0.5, maxSeconds: 60 }
    : args.scale === 'small'
      ? { workers: 200, batches: 100_000, delayMs: 0, procs: 2, pauseSeconds: 5, maxSeconds: 600 }
      : { workers: 1000, batches: 1_000_000, delayMs: 0, procs: 4, pauseSeconds: 20, maxSeconds: 1800 },
  sleepMs: smoke ? 150 : 300,
};
if (!Number.isInteger(size.repeats) || size.repeats < 1) throw new Error(`BENCH_REPEATS must be a whole number of rounds, 1 or more; got '${process.env.BENCH_REPEATS}'`);
if (process.env.BENCH_SCALE_WORKERS) size.scale.workers = Number(process.env.BENCH_SCALE_WORKERS);
if (process.env.BENCH_SCALE_BATCHES) size.scale.batches = Number(process.env.BENCH_SCALE_BATCHES);

if (args.profile) {
  const dir = path.resolve(args.profile);
  fs.mkdirSync(dir, { recursive: true });
  // children only: NODE_OPTIONS is read at start, so this process is not profiled
  process.env.SKYBATCH_BENCH_PROFILE_DIR = dir;
  const hook = new URL('./lib/cpu-profiler.js', import.meta.url).href;
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${hook}`.trim();
}

const tStart = performance.now();
const log = (line: string) => process.stderr.write(`bench [${((performance.now() - tStart) / 1000).toFixed(1)} s]: ${line}\n`);
const results: {
  dispatch?: DispatchResult;
  python?: DispatchResult | { failed: string };
  bullmq?: { matched: BullmqResult; c8: BullmqResult } | { skipped: string };
  double?: DoubleResult;
  cpu?: CpuResult;
  failure?: FailureResult;
  scale?: ScaleResult;
  scaleMemory?: ReplayMemory;
  remote?: RemoteResult;
} = {};
const failed: string[] = [];
/** A section that breaks is reported and the others still run; the exit code says it broke. */
async function guarded(name: Section, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    failed.push(`${name}: ${(err as Error)?.stack ?? String(err)}`);
    log(`section ${name} failed: ${(err as Error)?.message ?? String(err)}`);
  }
}
const load0 = os.loadavg();
const t0 = performance.now();

const sb = new Sandbox('bench');
try {
  if (want('dispatch') || want('double') || want('cpu') || want('failure')) {
    log('starting a 2-worker pool');
    await sb.applyPool('bench', 'pool:\n  workers: 2\n');
    await runScript(sb, 'noop.ts', { POOL: 'bench', BATCHES: '200' }); // warm-up: agents and their JIT, the bundle on workers
  }
  if (want('dispatch')) await guarded('dispatch', async () => {
    log(`no-op dispatch: ${size.batches} batches at batchSize 1`);
    // The identical job first: a mapper process stays warm only for a job of the same
    // environment (BATCHES is in it), and BullMQ's workers are connected before its clock starts.
    await runScript(sb, 'noop.ts', { POOL: 'bench', BATCHES: String(size.batches), MAPPER: 'ts' });
    results.dispatch = await skybatchDispatch(sb, 'bench', size.batches);
    // the same no-op mapper in Python (sky.pythonFunction): the Python bridge's cost per batch
    results.python = await skybatchDispatch(sb, 'bench', size.batches, 'python').catch((err: Error) => ({ failed: err.message.split('\n')[0] }));
    const bin = ensureRedisServer();
    if (!bin) {
      results.bullmq = { skipped: 'redis-server is not installed (and this is not root, so the bench cannot apt-get it)' };
    } else {
      const redis = await startRedis(bin);
      try {
        log(`BullMQ: ${size.batches} no-op jobs, 2 workers, concurrency ${WORKER_CREDIT} and 8`);
        const matched = await runBullmq(redis, { jobs: size.batches, workers: 2, concurrency: WORKER_CREDIT });
        const c8 = await runBullmq(redis, { jobs: size.batches, workers: 2, concurrency: 8 });
        results.bullmq = { matched, c8 };
      } finally {
        await redis.stop();
      }
    }
  });
  if (want('double')) await guarded('double', async () => {
    log(`double-text: ${size.rows} rows, hand loop (1 and 2 processes) and skybatch`);
    results.double = await runDouble(sb, 'bench', size.rows, size.rowBatch, size.repeats);
  });
  if (want('cpu')) await guarded('cpu', async () => {
    log('CPU-bound mapper on 1 and 2 workers');
    await sb.applyPool('bench1', 'pool:\n  workers: 1\n');
    results.cpu = await runCpu(sb, 'bench1', 'bench', size.cpuItems, size.cpuRounds, size.repeats, !smoke);
    await sb.cli(['pool', 'down', 'bench1', '-y']);
  });
  if (want('failure')) await guarded('failure', async () => {
    log('failure detection: SIGKILL of a worker, SIGSTOP of another');
    results.failure = await runFailure(sb, 'bench', size.sleepMs);
  });
} finally {
  await sb.cleanup();
}
if (want('scale')) await guarded('scale', async () => {
  log(`scale: ${size.scale.workers} simulated workers, ${size.scale.batches} batches`);
  results.scale = await runScale({ ...size.scale, restart: true, log });
  log(`scale: a JobRun of ${size.scale.batches} batches alone, 60 % committed, then restored (bench/replay-memory.ts)`);
  results.scaleMemory = replayMemory(size.scale.batches, Math.round(size.scale.batches * 0.6));
});

if (want('remote')) await guarded('remote', async () => {
  results.remote = await runRemote(log, smoke ? 1000 : 2000);
  if ('skipped' in results.remote) log(`remote: skipped: ${results.remote.skipped}`);
});

const rows: Row[] = [];
const d = results.dispatch;
const bq = results.bullmq;
if (d) {
  const fig = `no-op dispatch, batchSize 1, 2 workers, ${d.batches.toLocaleString('en-US')} batches`;
  if (bq && 'matched' in bq) {
    rows.push({ figure: fig, skybatch: rate(d.perSec), peer: `BullMQ c=${WORKER_CREDIT}: ${rate(bq.matched.perSec, 'jobs/s')}`, ratio: x(d.perSec / bq.matched.perSec), target: '(context)' });
    rows.push({ figure: fig, skybatch: rate(d.perSec), peer: `BullMQ c=8: ${rate(bq.c8.perSec, 'jobs/s')}`, ratio: x(d.perSec / bq.c8.perSec), target: '>= 2x BullMQ c=8', met: d.perSec >= 2 * bq.c8.perSec });
  } else {
    rows.push({ figure: fig, skybatch: rate(d.perSec), peer: `BullMQ skipped: ${bq && 'skipped' in bq ? bq.skipped : 'not run'}`, ratio: '', target: '>= 2x BullMQ c=8' });
  }
  const py = results.python;
  if (py && 'perSec' in py) rows.push({ figure: 'the same no-op mapper in Python (sky.pythonFunction)', skybatch: rate(py.perSec), peer: `TypeScript mapper: ${rate(d.perSec)}`, ratio: x(py.perSec / d.perSec), target: '(context)' });
  else if (py) rows.push({ figure: 'the same no-op mapper in Python (sky.pythonFunction)', skybatch: `failed: ${py.failed}`, peer: '', ratio: '', target: '(context)' });
  rows.push({ figure: 'coordinator CPU per no-op batch', skybatch: `${d.coordCpuUsPerBatch.toFixed(0)} us`, peer: '', ratio: '', target: '(context)' });
  rows.push({ figure: 'worker CPU per no-op batch (2 agents, 2 mappers, together)', skybatch: `agents ${d.agentCpuUsPerBatch.toFixed(0)} us, mappers ${d.mapperCpuUsPerBatch.toFixed(0)} us`, peer: '', ratio: '', target: '(context)' });
}
const db = results.double;
if (db) {
  const fig = `${db.rows.toLocaleString('en-US')}-row double-text, warm 2-worker pool, map() to published output${db.rounds > 1 ? `, best of ${db.rounds}` : ''}`;
  rows.push({ figure: fig, skybatch: s(db.skybatchSeconds), peer: `hand loop, 1 process: ${s(db.handSeconds)}`, ratio: x(db.skybatchSeconds / db.handSeconds), target: '<= 0.8x hand loop', met: db.skybatchSeconds <= 0.8 * db.handSeconds });
  rows.push({ figure: fig, skybatch: s(db.skybatchSeconds), peer: `hand loop, 2 processes by byte range: ${s(db.splitSeconds)}`, ratio: x(db.skybatchSeconds / db.splitSeconds), target: '(context)' });
  if (db.rounds > 1) {
    const r = db.runs;
    rows.push({
      figure: `the same, each of ${db.rounds} interleaved rounds (s; the rows above are each side's best)`,
      skybatch: list(r.skybatch),
      peer: `hand loop ${list(r.hand)}; split ${list(r.split)}`,
      ratio: `${x(median(r.skybatch) / median(r.hand))} (medians)`,
      target: '(context)',
    });
  }
  rows.push({ figure: 'outputs byte for byte', skybatch: db.identical.hand && db.identical.split ? 'identical' : 'DIFFERENT', peer: 'both hand loops', ratio: '', target: 'identical', met: db.identical.hand && db.identical.split });
  rows.push({ figure: `reduce of ${db.rows.toLocaleString('en-US')} rows: coordinator RSS growth`, skybatch: mb(db.coordRssPeak - db.coordRssBefore), peer: db.reducePeakRssMb ? `(reduce process peak ${mb(db.reducePeakRssMb)})` : '(reduced in the coordinator)', ratio: '', target: '<= 50 MB', met: db.coordRssPeak - db.coordRssBefore <= 50 });
  const p = db.phases;
  rows.push({
    figure: 'where its wall time went (s from map())',
    skybatch: `submitted ${p.submitted.toFixed(2)}, 1st batch out ${p.firstQueued.toFixed(2)}, 1st running ${Number.isNaN(p.firstRunning) ? 'never reported (each batch done in the tick it started)' : p.firstRunning.toFixed(2)}, last done ${p.lastDone.toFixed(2)}, finished ${p.finished.toFixed(2)}, returned ${p.returned.toFixed(2)}`,
    peer: `line index pass alone: ${s(db.indexSeconds)}; the identical warm-up job before it: ${s(db.warmupSeconds)}`,
    ratio: '',
    target: '(context)',
  });
  rows.push({
    figure: 'CPU during the measured run (user+sys)',
    skybatch: `${db.cpu.mapperProcesses} warm mappers ${s(db.cpu.mappers)}, agents ${s(db.cpu.agents)}, coordinator ${s(db.cpu.coordinator)}`,
    peer: `hand loop, 1 process: ${s(db.handSeconds)} wall`,
    ratio: '',
    target: '(context)',
  });
  if (db.reduceSeconds !== undefined) {
    rows.push({ figure: `reduce of ${db.batchFiles} batch files, ${db.inputMb.toFixed(0)} MB in`, skybatch: s(db.reduceSeconds), peer: `byte copy of the same files: ${s(db.copySeconds)}`, ratio: x(db.reduceSeconds / db.copySeconds), target: '<= 2x byte copy', met: db.reduceSeconds <= 2 * db.copySeconds });
  }
}
const c = results.cpu;
if (c) {
  const best = c.repeats > 1 ? `, best of ${c.repeats}` : '';
  rows.push({ figure: `CPU-bound mapper, ${c.items} items x ${c.rounds} feature-hashing rounds${best}`, skybatch: `2 workers: ${s(c.twoWorkerSeconds)}`, peer: `1 worker: ${s(c.oneWorkerSeconds)}`, ratio: `${x(c.speedup)} speedup`, target: '>= 1.85x', met: c.speedup >= 1.85 });
  if (c.repeats > 1) rows.push({ figure: `the same, each of ${c.repeats} interleaved rounds (s)`, skybatch: `2 workers: ${list(c.runs.two)}`, peer: `1 worker: ${list(c.runs.one)}`, ratio: `${x(median(c.runs.one) / median(c.runs.two))} (medians)`, target: '(context)' });
  rows.push({ figure: `the machine's own: the same work in plain processes, ${Math.round(c.items / 4)} items${best}`, skybatch: `2 processes: ${s(c.plain.twoSeconds)}`, peer: `1 process: ${s(c.plain.oneSeconds)}`, ratio: `${x(c.plain.speedup)} speedup`, target: '(context)' });
}
const f = results.failure;
if (f) {
  rows.push({ figure: 'worker SIGKILLed -> its batch runs elsewhere', skybatch: s(f.killed.runningAgainSeconds), peer: `(noticed after ${s(f.killed.noticedSeconds)}, handed out after ${s(f.killed.queuedAgainSeconds)})`, ratio: '', target: '<= 5 s', met: f.killed.runningAgainSeconds <= 5 });
  rows.push({ figure: 'worker frozen (SIGSTOP) -> its batch runs elsewhere', skybatch: s(f.frozen.runningAgainSeconds), peer: `(noticed after ${s(f.frozen.noticedSeconds)}, handed out after ${s(f.frozen.queuedAgainSeconds)})`, ratio: '', target: '<= 5 s', met: f.frozen.runningAgainSeconds <= 5 });
}
const sc = results.scale;
if (sc) {
  const w = `${sc.workers.toLocaleString('en-US')} workers, ${sc.batches.toLocaleString('en-US')}-batch job`;
  const c8 = bq && 'c8' in bq ? bq.c8.perSec : undefined;
  rows.push({
    figure: `dispatch at ${w} (10-30 %)`,
    skybatch: rate(sc.steadyRate),
    peer: c8 ? `BullMQ c=8 (2 workers): ${rate(c8, 'jobs/s')}` : '(BullMQ not run)',
    ratio: c8 ? x(sc.steadyRate / c8) : '',
    target: '>= 2x BullMQ c=8',
    met: c8 ? sc.steadyRate >= 2 * c8 : undefined,
  });
  rows.push({ figure: `coordinator CPU per batch at ${sc.workers.toLocaleString('en-US')} workers`, skybatch: `${sc.steadyCoordCpuUsPerBatch.toFixed(0)} us`, peer: d ? `at 2 workers: ${d.coordCpuUsPerBatch.toFixed(0)} us` : '', ratio: d ? x(sc.steadyCoordCpuUsPerBatch / d.coordCpuUsPerBatch) : '', target: '(context)' });
  rows.push({ figure: `job status, wall time (${w})`, skybatch: `${sc.status}, ${s(sc.wallSeconds)}`, peer: '', ratio: '', target: 'SUCCEEDED', met: sc.status === 'SUCCEEDED' });
  rows.push({ figure: 'last batch answered -> job finished (tail)', skybatch: s(sc.tailSeconds), peer: '', ratio: '', target: '(context)' });
  rows.push({ figure: 'coordinator RSS: peak', skybatch: mb(sc.rss.peak), peer: `at start ${mb(sc.rss.start)}`, ratio: '', target: '<= 300 MB', met: sc.rss.peak <= 300 });
  // "Flat after the first 10 %": the highest RSS after 30 % of the job against the highest in
  // 10-30 %. Peaks against peaks read growth (memory kept per batch done) and not the phase of
  // the GC's saw tooth (old space swings 16-43 MB a few times a second at this rate), which a
  // peak against the one sample at 10 % read as +1 to +25 MB from run to run (docs/bench.md).
  const growth = sc.rss.peakAfter30 - sc.rss.peak10to30;
  rows.push({ figure: 'coordinator RSS after 10 %: highest after 30 % against highest in 10-30 % (freeze, restart left out)', skybatch: signedMb(growth), peer: `highest in 10-30 %: ${mb(sc.rss.peak10to30)}`, ratio: '', target: 'flat: <= +10 % or +16 MB', met: sc.rss.peakAfter30 > 0 ? growth <= Math.max(16, 0.1 * sc.rss.peak10to30) : undefined });
  rows.push({ figure: 'coordinator RSS: highest after 10 % against the one sample at 10 % (saw tooth included)', skybatch: signedMb(sc.rss.peakAfter10 - sc.rss.at10), peer: `at 10 %: ${mb(sc.rss.at10)}`, ratio: '', target: '(context)' });
  if (sc.journalMbAtKill !== undefined) {
    rows.push({ figure: 'journal size at 60 % / at the end', skybatch: `${sc.journalMbAtKill.toFixed(1)} / ${sc.journalMbEnd.toFixed(1)} MB`, peer: '', ratio: '', target: 'bounded: end <= 1.2x at 60 %', met: sc.journalMbEnd <= 1.2 * sc.journalMbAtKill });
  }
  if (sc.restart) {
    rows.push({ figure: 'restart after SIGKILL at 60 %: start to listening (replay)', skybatch: s(sc.restart.listenSeconds), peer: `empty start: ${s(sc.restart.firstStartSeconds)}`, ratio: '', target: '<= 2 s', met: sc.restart.listenSeconds <= 2 });
    rows.push({ figure: 'restart: start to serving a client / to dispatching again', skybatch: `${s(sc.restart.serveSeconds)} / ${s(sc.restart.dispatchSeconds)}`, peer: '', ratio: '', target: '(context)' });
  }
  if (sc.paused) {
    const p = sc.paused;
    const grew = p.rssEnd - p.rssBefore;
    rows.push({
      figure: `event subscriber frozen ${p.seconds.toFixed(0)} s: coordinator RSS growth`,
      skybatch: signedMb(grew),
      peer: `${signedMb(p.baselineGrowthMb)} in the ${p.baselineSeconds.toFixed(0)} s before; ${mb(p.rssAfterKill)} after it was killed`,
      ratio: '',
      target: 'bounded: <= +32 MB',
      met: grew <= 32,
    });
  }
}

const sm = results.scaleMemory;
if (sm) {
  const n = `${sm.batches.toLocaleString('en-US')}-batch job`;
  rows.push({ figure: `coordinator's batch table, ${n}, 60 % committed (heap + buffers after GC)`, skybatch: `${sm.committedMb.toFixed(0)} MB`, peer: `empty process: ${sm.emptyMb.toFixed(0)} MB`, ratio: '', target: '(context)' });
  rows.push({ figure: `restore of that job alone (readJournal + JobRun), CPU`, skybatch: `${(sm.readMs + sm.buildMs).toFixed(0)} ms`, peer: `heap + buffers after: ${sm.restoredMb.toFixed(0)} MB`, ratio: '', target: '(context)' });
}

const rm = results.remote;
if (rm && 'skipped' in rm) {
  rows.push({ figure: 'ssh pool (2 hosts x 1 worker): remote section', skybatch: `skipped: ${rm.skipped}`, peer: '', ratio: '', target: '(absolute)' });
} else if (rm) {
  rows.push({ figure: 'ssh pool (2 hosts x 1 worker): pool apply -> 1st batch running on a remote worker', skybatch: s(rm.firstRemoteBatchSeconds), peer: `(pool apply returned after ${s(rm.applySeconds)})`, ratio: '', target: '(absolute)' });
  rows.push({ figure: "ssh host's link down -> its batch running on the other host", skybatch: s(rm.linkDownRunningElsewhereSeconds), peer: `(given up after ${s(rm.linkDownNoticedSeconds)})`, ratio: '', target: '(absolute)' });
}

const load1 = os.loadavg();
console.log(`skybatch bench (${smoke ? 'smoke' : 'full'}): Node ${process.version}, ${os.cpus().length} CPUs, load average ${load0[0].toFixed(1)} at start, ${load1[0].toFixed(1)} at end, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
printTable(rows, (l) => console.log(l));
if (args.json) fs.writeFileSync(args.json, JSON.stringify({ smoke, size, load: [load0, load1], results }, null, 1));
for (const f of failed) console.log(`section failed: ${f}`);
if (failed.length || (db && !(db.identical.hand && db.identical.split))) process.exitCode = 1;
