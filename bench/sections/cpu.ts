import { spawn } from 'node:child_process';
import type { Sandbox } from '../../test/harness.js';
import { runScript } from './script.js';

export interface CpuResult {
  items: number;
  rounds: number;
  /** Best of `repeats` interleaved runs each (1 worker, then 2 workers, then again); every run is in `runs`. */
  repeats: number;
  oneWorkerSeconds: number;
  twoWorkerSeconds: number;
  speedup: number;
  runs: { one: number[]; two: number[] };
  /**
   * The machine's own ceiling in the same run: the mapper's work (a quarter of the job's
   * items) in one plain Node process, and split over two run at once, best of `repeats` each.
   */
  plain: { oneSeconds: number; twoSeconds: number; speedup: number };
}

/**
 * The CPU-bound mapper on a 1-worker pool and on a 2-worker pool, same job. Each pool first
 * runs the very job it is measured on: as on a pool in use, the measured job finds every
 * worker's mapper process warm (a process is reused only for a job of the same bundle,
 * environment and arguments, so a shorter warm-up job would not do). The runs alternate and
 * each side's figure is its best: the share of the second core this machine type gets moves
 * from minute to minute (two plain processes at once took 1.0x to 1.3x the time of one in four
 * runs of a minute), and the plain loop's own 1-to-2 speedup is measured beside it.
 */
export async function runCpu(sb: Sandbox, onePool: string, twoPool: string, items: number, rounds: number, repeats = 1, warmUp = true): Promise<CpuResult> {
  const env = (pool: string) => ({ POOL: pool, ITEMS: String(items), ROUNDS: String(rounds), BATCH_SIZE: String(Math.max(1, Math.floor(items / 40))) });
  if (warmUp) {
    await runScript(sb, 'cpu.ts', env(onePool));
    await runScript(sb, 'cpu.ts', env(twoPool));
  }
  const runs = { one: [] as number[], two: [] as number[] };
  const plainRuns = { one: [] as number[], two: [] as number[] };
  const plainItems = Math.max(2, Math.round(items / 4));
  for (let i = 0; i < repeats; i++) {
    runs.one.push((await runScript<{ seconds: number }>(sb, 'cpu.ts', env(onePool))).seconds);
    runs.two.push((await runScript<{ seconds: number }>(sb, 'cpu.ts', env(twoPool))).seconds);
    plainRuns.one.push(await plainWork([plainItems], rounds));
    plainRuns.two.push(await plainWork([Math.floor(plainItems / 2), Math.ceil(plainItems / 2)], rounds));
  }
  const [one, two] = [Math.min(...runs.one), Math.min(...runs.two)];
  const [plainOne, plainTwo] = [Math.min(...plainRuns.one), Math.min(...plainRuns.two)];
  const plain = { oneSeconds: plainOne, twoSeconds: plainTwo, speedup: plainOne / plainTwo };
  return { items, rounds, repeats, oneWorkerSeconds: one, twoWorkerSeconds: two, speedup: one / two, runs, plain };
}

/** The mapper's work (bench/lib/cpu-work.ts) in plain Node processes, one per entry of `items`, all at once; wall seconds from spawn to the last exit. */
async function plainWork(items: number[], rounds: number): Promise<number> {
  const work = new URL('../lib/cpu-work.js', import.meta.url).href;
  const code = `const { featureHash } = await import(${JSON.stringify(work)});
const [items, rounds] = process.argv.slice(1).map(Number);
for (let i = 0; i < items; i++) featureHash(i, rounds);`;
  const t0 = performance.now();
  await Promise.all(
    items.map(
      (n) =>
        new Promise<void>((resolve, reject) => {
          const p = spawn(process.execPath, ['--input-type=module', '-e', code, String(n), String(rounds)], { stdio: 'inherit' });
          p.on('error', reject);
          p.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`plain work loop exited with code ${c}`))));
        }),
    ),
  );
  return (performance.now() - t0) / 1000;
}
