// Diagnostic for the cpu section: where the CPU goes during a measured CPU-bound job, per
// process and per thread (user+sys from /proc/PID/task/TID/stat, run delay from schedstat),
// and the same work (bench/lib/cpu-work.ts) in plain node processes beside it. Not part of `run.js`.
//   node out/bench/sections/cpu-probe.js [items] [rounds]
// Env: PROBE_ONE=1 only the 1-worker pool, PROBE_PLAIN=0 no plain processes, PROBE_QUIET=1
// only the sums, PROBE_EVENTS=1 the batch events, PROBE_REPEAT=N measured rounds.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import type { JobEvent } from '../../runtime/protocol.js';
import { Sandbox } from '../../test/harness.js';
import { median } from '../lib/table.js';
import { SCRIPTS } from './script.js';

interface ThreadStat {
  comm: string;
  cpu: number; // seconds user+sys
  runNs: number;
  delayNs: number;
}
interface ProcStat {
  pid: number;
  ppid: number;
  cmd: string;
  threads: Map<number, ThreadStat>;
}

const TICK = 100;

function readThread(dir: string): ThreadStat | undefined {
  try {
    const stat = fs.readFileSync(`${dir}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [runNs, delayNs] = fs.readFileSync(`${dir}/schedstat`, 'utf8').split(' ').map(Number);
    return { comm, cpu: (Number(f[11]) + Number(f[12])) / TICK, runNs, delayNs };
  } catch {
    return undefined;
  }
}

function readProc(pid: number): ProcStat | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => path.basename(a)).join(' ');
    const threads = new Map<number, ThreadStat>();
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      const s = readThread(`/proc/${pid}/task/${t}`);
      if (s) threads.set(Number(t), s);
    }
    return { pid, ppid, cmd, threads };
  } catch {
    return undefined;
  }
}

function allParents(): Map<number, number> {
  const m = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      m.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  return m;
}

function treeOf(roots: number[]): number[] {
  const parents = allParents();
  const out = new Set(roots.filter((r) => parents.has(r)));
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) if (out.has(ppid) && !out.has(pid)) out.add(pid), (grew = true);
  }
  return [...out];
}

/** First and last snapshot of every process of the trees under `roots`, sampled every `everyMs`. */
class Sampler {
  first = new Map<number, ProcStat>();
  last = new Map<number, ProcStat>();
  history: { at: number; snaps: Map<number, ProcStat> }[] = [];
  private timer: NodeJS.Timeout;
  constructor(
    private roots: () => number[],
    everyMs: number,
    existingAtStart: boolean,
  ) {
    this.sample(existingAtStart);
    this.timer = setInterval(() => this.sample(false), everyMs);
  }
  sample(asFirst: boolean): void {
    const snaps = new Map<number, ProcStat>();
    this.history.push({ at: performance.now(), snaps });
    for (const pid of treeOf(this.roots())) {
      const s = readProc(pid);
      if (!s) continue;
      snaps.set(pid, s);
      if (!this.first.has(pid)) this.first.set(pid, asFirst ? s : { ...s, threads: new Map() });
      this.last.set(pid, s);
    }
  }
  summary = '';
  stop(): void {
    clearInterval(this.timer);
    this.sample(false);
  }
  report(label: string, from = -Infinity, to = Infinity): void {
    const inWin = this.history.filter((h) => h.at >= from && h.at <= to);
    const win = from > -Infinity && inWin.length >= 2;
    const firstOf = (pid: number) => (win ? inWin.find((h) => h.snaps.has(pid))?.snaps.get(pid) : this.first.get(pid));
    const lastOf = (pid: number) => (win ? inWin.findLast((h) => h.snaps.has(pid))?.snaps.get(pid) : this.last.get(pid));
    if (win) console.log(`-- ${label}: window ${((inWin.at(-1)!.at - inWin[0].at) / 1000).toFixed(2)} s of samples`);
    else console.log(`-- ${label}: per process, delta over the run (cpu s, run s, run delay s, threads run/delay)`);
    const sum = { main: 0, helpers: 0, mainDelay: 0, helperDelay: 0, others: 0 };
    for (const pid of this.last.keys()) {
      const f = firstOf(pid), l = lastOf(pid);
      if (!f || !l) continue;
      const isMapper = l.cmd.includes('mapper-process') || l.cmd.startsWith('node -e');
      let cpu = 0, run = 0, delay = 0;
      const per: string[] = [];
      for (const [tid, t] of l.threads) {
        const t0 = f.threads.get(tid) ?? { cpu: 0, runNs: 0, delayNs: 0 };
        const dc = t.cpu - t0.cpu, dr = (t.runNs - t0.runNs) / 1e9, dd = (t.delayNs - t0.delayNs) / 1e9;
        cpu += dc, run += dr, delay += dd;
        if (isMapper && tid === pid) (sum.main += dr), (sum.mainDelay += dd);
        else if (isMapper) (sum.helpers += dr), (sum.helperDelay += dd);
        else sum.others += dr;
        if (dr > 0.005) per.push(`${t.comm}${tid === pid ? '*' : ''}:${dr.toFixed(3)}/${dd.toFixed(3)}`);
      }
      if (run < 0.002) continue;
      if (process.env.PROBE_QUIET) continue;
      console.log(`${String(pid).padStart(7)} ${l.cmd.slice(0, 80).padEnd(60)} cpu ${cpu.toFixed(2)} run ${run.toFixed(3)} delay ${delay.toFixed(3)}  [${per.join(' ')}]`);
    }
    console.log(`   SUM mapper main ${sum.main.toFixed(2)} s (delay ${sum.mainDelay.toFixed(2)}), mapper helper threads ${sum.helpers.toFixed(2)} s (delay ${sum.helperDelay.toFixed(2)}), other processes of the pools ${sum.others.toFixed(2)} s; per batch (40): main ${(sum.main * 25).toFixed(0)} ms, helpers ${(sum.helpers * 25).toFixed(0)} ms`);
  }
}

function childCpu(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(x[13]) + Number(x[14])) / TICK;
}

async function runJob(sb: Sandbox, pool: string, env: Record<string, string>, label: string): Promise<void> {
  const coordPids = ['one', 'two'].map((p) => sb.coordinator(p).pid);
  const c = sb.coordinator(pool);
  const watcher = await CoordinatorClient.connect(c.url, c.token);
  const events: { at: number; e: JobEvent }[] = [];
  watcher.onEvent((e) => events.push({ at: performance.now(), e }));
  await watcher.request({ type: 'subscribe' });
  let cliPid = 0;
  const sampler = new Sampler(() => [...coordPids, ...(cliPid ? [cliPid] : [])], 200, true);
  const cc0 = childCpu();
  const load = os.loadavg()[0];
  const t0 = performance.now();
  const proc = sb.spawnCli(['run', path.join(SCRIPTS, 'cpu.ts')], { env });
  cliPid = proc.pid!;
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  await new Promise((r) => proc.on('close', r));
  const wall = (performance.now() - t0) / 1000;
  sampler.stop();
  watcher.close();
  const last = out.trim().split('\n').pop()!;
  console.log(`\n== ${label}: load ${load.toFixed(1)}, cli wall ${wall.toFixed(2)} s, script says ${last}; CLI tree CPU (reaped) ${(childCpu() - cc0).toFixed(2)} s`);
  sampler.report(label);
  // per-batch wall on each worker: running -> done
  const started = new Map<number, number>();
  const per = new Map<string, number[]>();
  let firstAt = Infinity, lastAt = 0;
  for (const { at, e } of events) {
    if (e.kind !== 'batch') continue;
    if (e.state === 'running') started.set(e.index, at);
    if (e.state === 'done') {
      const s = started.get(e.index);
      firstAt = Math.min(firstAt, s ?? at);
      lastAt = Math.max(lastAt, at);
      if (s !== undefined) per.set(e.worker ?? '?', [...(per.get(e.worker ?? '?') ?? []), at - s]);
    }
  }
  for (const [w, ms] of per) console.log(`   ${w}: ${ms.length} batches, median running->done ${median(ms).toFixed(0)} ms, sum ${(ms.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s`);
  sampler.report(label + ' (first running .. last done)', firstAt, lastAt);
  console.log(`   first running -> last done: ${((lastAt - firstAt) / 1000).toFixed(2)} s; spawn -> first running ${((firstAt - t0) / 1000).toFixed(2)} s; last done -> cli exit ${((t0 + wall * 1000 - lastAt) / 1000).toFixed(2)} s`);
  const states = events.filter((x) => x.e.kind === 'batch').map((x) => `${(x.at - t0).toFixed(0)}:${(x.e as { index: number }).index}${(x.e as { state: string }).state[0]}@${((x.e as { worker?: string }).worker ?? '').slice(-1)}`);
  if (process.env.PROBE_EVENTS) console.log(states.join(' '));
}

const PLAIN = `
const { featureHash } = await import(${JSON.stringify(new URL('../lib/cpu-work.js', import.meta.url).href)});
const [items, rounds, batches] = process.argv.slice(1).map(Number);
const t0 = performance.now(); const c0 = process.cpuUsage();
const per = [];
for (let b = 0; b < batches; b++) {
  const s = performance.now();
  const out = [];
  for (let i = 0; i < items; i++) out.push({ i, h: featureHash(b * items + i, rounds) });
  per.push(performance.now() - s);
}
const c = process.cpuUsage(c0);
per.sort((a, b) => a - b);
console.log(JSON.stringify({ wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6, medianBatchMs: per[per.length >> 1] }));
`;

async function plain(n: number, items: number, rounds: number, batches: number): Promise<void> {
  const t0 = performance.now();
  const load = os.loadavg()[0];
  const pids: number[] = [];
  const sampler = new Sampler(() => pids, 200, false);
  const outs = await Promise.all(
    Array.from({ length: n }, () => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', PLAIN, String(items), String(rounds), String(batches)], { stdio: ['ignore', 'pipe', 'inherit'] });
      pids.push(p.pid!);
      let s = '';
      p.stdout.on('data', (d) => (s += d));
      return new Promise<string>((r) => p.on('close', () => r(s.trim())));
    }),
  );
  sampler.stop();
  console.log(`\n== plain x${n} (${batches} batches of ${items} each), load ${load.toFixed(1)}: wall ${((performance.now() - t0) / 1000).toFixed(2)} s; ${outs.join(' ')}`);
  sampler.report(`plain x${n} (until its last sample)`);
}

const items = Number(process.argv[2] ?? 400);
const rounds = Number(process.argv[3] ?? 2500);
const batchSize = Math.max(1, Math.floor(items / 40));
const sb = new Sandbox('cpu-probe');
try {
  await sb.applyPool('two', 'pool:\n  workers: 2\n');
  await sb.applyPool('one', 'pool:\n  workers: 1\n');
  const env = (pool: string) => ({ POOL: pool, ITEMS: String(items), ROUNDS: String(rounds), BATCH_SIZE: String(batchSize) });
  await runJob(sb, 'one', env('one'), 'warm-up 1 worker');
  if (!process.env.PROBE_ONE) await runJob(sb, 'two', env('two'), 'warm-up 2 workers');
  for (let k = 0; k < Number(process.env.PROBE_REPEAT ?? 1); k++) {
    await runJob(sb, 'one', env('one'), '1 worker');
    if (!process.env.PROBE_ONE) await runJob(sb, 'two', env('two'), '2 workers');
    if (process.env.PROBE_PLAIN !== '0') {
      await plain(1, batchSize, rounds, 40);
      await plain(2, batchSize, rounds, 20);
    }
  }
} finally {
  await sb.cleanup();
}
