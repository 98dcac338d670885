import * as fs from 'node:fs';
import * as path from 'node:path';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import { buildIndex } from '../../formats/json-reader.js';
import type { JobEvent } from '../../runtime/protocol.js';
import { type Sandbox, pidsMatching } from '../../test/harness.js';
import { RssSampler, alive, childPids, cpuSeconds, rssMb } from '../lib/proc.js';
import { singleRun, splitRun } from '../peers/hand-loop.js';
import { runScript } from './script.js';

const WORDS = ['hello', 'world', 'sky', 'batch', 'prompt', 'embedding'];

/** The double-text job's input: `rows` lines of `{"text": "<word>-<i>"}`. */
export function makeInput(file: string, rows: number): void {
  const fd = fs.openSync(file, 'w');
  let chunk = '';
  for (let i = 0; i < rows; i++) {
    chunk += `{"text": "${WORDS[i % WORDS.length]}-${i}"}\n`;
    if (chunk.length > 1 << 20) {
      fs.writeSync(fd, chunk);
      chunk = '';
    }
  }
  fs.writeSync(fd, chunk);
  fs.closeSync(fd);
}

export interface DoubleResult {
  rows: number;
  inputMb: number;
  /** Each figure below is the best of `rounds` interleaved rounds (hand loop, split, skybatch); every round's is in `runs`. */
  rounds: number;
  skybatchSeconds: number;
  handSeconds: number;
  splitSeconds: number;
  runs: { skybatch: number[]; hand: number[]; split: number[] };
  identical: { hand: boolean; split: boolean };
  coordRssBefore: number;
  coordRssPeak: number;
  reducePeakRssMb: number;
  /** From the coordinator's "reducing outputs" log line to SUCCEEDED in the journal. */
  reduceSeconds?: number;
  /** Plain byte copy of the same batch files, in order, into one file. */
  copySeconds: number;
  batchFiles: number;
  /** Where the job's wall time went, from the pool's events (seconds from the map() call). */
  phases: Phases;
  /** The client's line index pass over the input, on its own (map() runs it alongside bundling, before submitting). */
  indexSeconds: number;
  /** The identical job run once before the measured one, so its mappers (and the client's bundle cache) are warm. */
  warmupSeconds: number;
  /** CPU seconds (user+sys, /proc) each kind of process used during the measured run; mappers are the warm ones. */
  cpu: { mappers: number; agents: number; coordinator: number; mapperProcesses: number };
}

export interface Phases {
  submitted: number;
  firstQueued: number;
  firstRunning: number;
  lastDone: number;
  finished: number;
  returned: number;
}

/** One measured skybatch run of the double-text job, on the warm pool. */
interface SkybatchRun {
  jobId: string;
  seconds: number;
  phases: Phases;
  cpu: DoubleResult['cpu'];
  coordRssBefore: number;
  coordRssPeak: number;
  reducePeakRssMb: number;
}

/**
 * The 1M-row double-text job against the hand loop (one process, and two by byte range), on the
 * same input, in `rounds` interleaved rounds: hand loop, split, skybatch, then again. Each side's
 * figure is its best round. On this machine type the second core's share moves from minute to
 * minute (the split hand loop, with no skybatch in it, took 0.58-0.80 s in three runs of one
 * hour), and the best of interleaved rounds reads what each side does when the cores are there,
 * for both sides alike; every round's figure is kept in `runs` and printed.
 */
export async function runDouble(sb: Sandbox, pool: string, rows: number, batchSize: number, rounds = 1): Promise<DoubleResult> {
  const input = path.join(sb.dir, 'rows.jsonl');
  makeInput(input, rows);
  const out = (name: string) => path.join(sb.dir, name);

  // the client's line index pass on its own, in this process (the script's process pays it too)
  const t = performance.now();
  await buildIndex(input);
  const indexSeconds = (performance.now() - t) / 1000;

  // The measured runs come after an identical job: same script, input and env (the output path
  // is in the env, and the whole env is in a warm mapper's key, mapper-env.ts), so their mappers
  // are the warm ones the first left behind. The warm-up's output is dropped.
  const jobEnv = { POOL: pool, INPUT: input, OUTPUT: out('skybatch.jsonl'), BATCH_SIZE: String(batchSize) };
  const warmup = await runScript<{ seconds: number }>(sb, 'double.ts', jobEnv);
  fs.rmSync(out('skybatch.jsonl'), { force: true });

  const runs: DoubleResult['runs'] = { skybatch: [], hand: [], split: [] };
  const identical = { hand: true, split: true };
  let best: SkybatchRun | undefined;
  let ours = Buffer.alloc(0);
  for (let round = 0; round < rounds; round++) {
    runs.hand.push(await singleRun(input, out('hand.jsonl')));
    runs.split.push(await splitRun(input, out('split.jsonl'), 2));
    const run = await skybatchRun(sb, pool, jobEnv);
    runs.skybatch.push(run.seconds);
    if (!best || run.seconds < best.seconds) best = run;
    ours = fs.readFileSync(out('skybatch.jsonl'));
    identical.hand &&= ours.equals(fs.readFileSync(out('hand.jsonl')));
    identical.split &&= ours.equals(fs.readFileSync(out('split.jsonl')));
    if (round < rounds - 1) fs.rmSync(out('skybatch.jsonl'));
  }
  const { copySeconds, files } = byteCopy(ours, batchSize, path.join(sb.dir, 'copy')); // the last round's output
  const result: DoubleResult = {
    rows,
    inputMb: fs.statSync(input).size / 2 ** 20,
    rounds,
    skybatchSeconds: best!.seconds,
    handSeconds: Math.min(...runs.hand),
    splitSeconds: Math.min(...runs.split),
    runs,
    identical,
    coordRssBefore: best!.coordRssBefore,
    coordRssPeak: best!.coordRssPeak,
    reducePeakRssMb: best!.reducePeakRssMb,
    reduceSeconds: reduceTime(sb, best!.jobId),
    copySeconds,
    batchFiles: files,
    phases: best!.phases,
    indexSeconds,
    warmupSeconds: warmup.seconds,
    cpu: best!.cpu,
  };
  for (const f of ['hand.jsonl', 'split.jsonl', 'skybatch.jsonl', 'rows.jsonl']) fs.rmSync(out(f), { force: true });
  return result;
}

/** The double-text job once on the warm pool, with its phases (from the pool's events), CPU and coordinator RSS. */
async function skybatchRun(sb: Sandbox, pool: string, jobEnv: Record<string, string>): Promise<SkybatchRun> {
  const c = sb.coordinator(pool);
  const coord = c.pid;
  const agents = sb.workerPids(pool);
  const mappers = pidsMatching('mapper-process.js', agents);
  const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + (alive(pid) ? cpuSeconds(pid) : 0), 0);
  const cpu0 = { mappers: cpuOf(mappers), agents: cpuOf(agents), coordinator: cpuSeconds(coord) };
  const watcher = await CoordinatorClient.connect(c.url, c.token);
  const seen: { at: number; e: JobEvent }[] = [];
  watcher.onEvent((e) => seen.push({ at: Date.now(), e }));
  await watcher.request({ type: 'subscribe' });
  const rss = new RssSampler(coord, 50);
  let reducePeakRssMb = 0;
  const reduceWatch = setInterval(() => {
    for (const pid of childPids(coord, 'reduce-process.js')) reducePeakRssMb = Math.max(reducePeakRssMb, rssMb(pid) ?? 0);
  }, 20);
  let r: { jobId: string; seconds: number; calledAt: number; returnedAt: number };
  try {
    r = await runScript(sb, 'double.ts', jobEnv);
  } finally {
    rss.stop();
    clearInterval(reduceWatch);
    watcher.close();
  }
  const cpu = {
    mappers: cpuOf(mappers) - cpu0.mappers,
    agents: cpuOf(agents) - cpu0.agents,
    coordinator: cpuSeconds(coord) - cpu0.coordinator,
    mapperProcesses: mappers.length,
  };
  const mine = seen.filter(({ e }) => ('jobId' in e ? e.jobId : 'job' in e ? e.job.jobId : undefined) === r.jobId);
  const at = (pred: (e: JobEvent) => boolean, last = false) => {
    const hits = mine.filter(({ e }) => pred(e));
    const hit = last ? hits[hits.length - 1] : hits[0];
    return hit ? (hit.at - r.calledAt) / 1000 : NaN;
  };
  const phases: Phases = {
    submitted: at((e) => e.kind === 'jobSubmitted'),
    firstQueued: at((e) => e.kind === 'batch' && e.state === 'queued'),
    firstRunning: at((e) => e.kind === 'batch' && e.state === 'running'),
    lastDone: at((e) => e.kind === 'batch' && e.state === 'done', true),
    finished: at((e) => e.kind === 'jobFinished'),
    returned: (r.returnedAt - r.calledAt) / 1000,
  };
  return { jobId: r.jobId, seconds: r.seconds, phases, cpu, coordRssBefore: rss.first, coordRssPeak: rss.peak, reducePeakRssMb };
}

/** Cuts `output` into files of `batchSize` rows (as the job's batch files were), then times copying them back into one. */
function byteCopy(output: Buffer, batchSize: number, dir: string): { copySeconds: number; files: number } {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  let start = 0;
  while (start < output.length) {
    let end = start;
    for (let n = 0; n < batchSize && end < output.length; n++) end = output.indexOf(0x0a, end) + 1 || output.length;
    const f = path.join(dir, `batch_${String(files.length).padStart(8, '0')}.jsonl`);
    fs.writeFileSync(f, output.subarray(start, end));
    files.push(f);
    start = end;
  }
  const t0 = performance.now();
  const target = path.join(dir, 'merged.jsonl');
  const fd = fs.openSync(`${target}.tmp`, 'w');
  for (const f of files) fs.writeSync(fd, fs.readFileSync(f));
  fs.closeSync(fd);
  fs.renameSync(`${target}.tmp`, target);
  const copySeconds = (performance.now() - t0) / 1000;
  if (!fs.readFileSync(target).equals(output)) throw new Error('bench: the byte copy of the batch files differs from the output');
  fs.rmSync(dir, { recursive: true, force: true });
  return { copySeconds, files: files.length };
}

function reduceTime(sb: Sandbox, jobId: string): number | undefined {
  const dir = path.join(sb.home, 'jobs', jobId);
  try {
    const log = fs.readFileSync(path.join(dir, 'job.log'), 'utf8').split('\n');
    const started = log.find((l) => /reducing outputs|merging outputs/.test(l));
    const journal = fs.readFileSync(path.join(dir, 'journal.jsonl'), 'utf8').trim().split('\n');
    const end = journal.map((l) => JSON.parse(l) as { e: string; status?: string; at?: string }).find((rec) => rec.e === 'status' && rec.status === 'SUCCEEDED');
    if (!started || !end?.at) return undefined;
    return (Date.parse(end.at) - Date.parse(started.slice(0, started.indexOf(' ')))) / 1000;
  } catch {
    return undefined;
  }
}
