/**
 * `npm run bench`: prints, in one run,
 *  (a) batches/s of a no-op mapper at batchSize 1 on a 2-worker local pool, and the
 *      coordinator's CPU cost per batch; the same with the no-op mapper in Python;
 *  (b) a 1M-row double-text job against a hand-written single-process stream doing the
 *      same work on the same file, as a ratio.
 * Targets (first): (a) >= 1,000 batches/s, (b) <= 2x.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { ROOT, Sandbox } from '../test/harness.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 5000);

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

async function baseline(input: string, output: string): Promise<number> {
  const t0 = performance.now();
  const out = fs.createWriteStream(output);
  const rl = readline.createInterface({ input: fs.createReadStream(input), crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line) continue;
    const item = JSON.parse(line) as { text: unknown };
    if (!out.write(JSON.stringify({ output: String(item.text).repeat(2) }) + '\n')) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(r));
  return (performance.now() - t0) / 1000;
}

const sb = new Sandbox('bench');
try {
  await sb.applyPool('bench', 'pool:\n  workers: 2\n');
  const coord = sb.coordinator('bench').pid;

  // (a)
  await sb.run(path.join(ROOT, 'bench/scripts/noop.ts'), { POOL: 'bench', BATCHES: '200' }); // warm-up
  const cpu0 = cpuSeconds(coord);
  const a = await sb.run(path.join(ROOT, 'bench/scripts/noop.ts'), { POOL: 'bench', BATCHES: String(BATCHES) });
  if (a.code !== 0) throw new Error(a.stderr);
  const ra = JSON.parse(a.stdout.trim().split('\n').pop()!) as { seconds: number };
  const coordMsPerBatch = ((cpuSeconds(coord) - cpu0) * 1000) / BATCHES;
  const batchesPerSec = BATCHES / ra.seconds;
  // (a) again with the no-op mapper in Python: the bridge's cost per batch
  const ap = await sb.run(path.join(ROOT, 'bench/scripts/noop-python.ts'), { POOL: 'bench', BATCHES: String(BATCHES) });
  if (ap.code !== 0) throw new Error(ap.stderr);
  const pyBatchesPerSec = BATCHES / (JSON.parse(ap.stdout.trim().split('\n').pop()!) as { seconds: number }).seconds;

  // (b)
  const input = path.join(sb.dir, 'rows.jsonl');
  const words = ['hello', 'world', 'sky', 'batch', 'prompt', 'embedding'];
  const fd = fs.openSync(input, 'w');
  let chunk = '';
  for (let i = 0; i < ROWS; i++) {
    chunk += `{"text": "${words[i % words.length]}-${i}"}\n`;
    if (chunk.length > 1 << 20) {
      fs.writeSync(fd, chunk);
      chunk = '';
    }
  }
  fs.writeSync(fd, chunk);
  fs.closeSync(fd);
  const base = await baseline(input, path.join(sb.dir, 'baseline.jsonl'));
  const b = await sb.run(path.join(ROOT, 'bench/scripts/double.ts'), { POOL: 'bench', INPUT: input, OUTPUT: path.join(sb.dir, 'out.jsonl') });
  if (b.code !== 0) throw new Error(b.stderr);
  const rb = JSON.parse(b.stdout.trim().split('\n').pop()!) as { seconds: number };
  const same = fs.readFileSync(path.join(sb.dir, 'out.jsonl')).equals(fs.readFileSync(path.join(sb.dir, 'baseline.jsonl')));

  const ok = (cond: boolean) => (cond ? 'meets target' : 'MISSES target');
  console.log(`(a) no-op mapper, batchSize 1, 2 workers: ${BATCHES} batches in ${ra.seconds.toFixed(2)} s = ${batchesPerSec.toFixed(0)} batches/s (target >= 1000: ${ok(batchesPerSec >= 1000)})`);
  console.log(`    coordinator CPU per batch: ${coordMsPerBatch.toFixed(3)} ms`);
  console.log(`    the same no-op mapper in Python (sky.pythonFunction): ${pyBatchesPerSec.toFixed(0)} batches/s (${(pyBatchesPerSec / batchesPerSec).toFixed(2)}x the TypeScript mapper)`);
  console.log(`(b) ${ROWS} rows double-text: skybatch ${rb.seconds.toFixed(2)} s (submit to merged output) vs single-process stream ${base.toFixed(2)} s = ${(rb.seconds / base).toFixed(2)}x (target <= 2x: ${ok(rb.seconds / base <= 2)}); outputs identical: ${same}`);
} finally {
  await sb.cleanup();
}
