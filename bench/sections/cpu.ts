import type { Sandbox } from '../../test/harness.js';
import { runScript } from './script.js';

export interface CpuResult {
  items: number;
  rounds: number;
  oneWorkerSeconds: number;
  twoWorkerSeconds: number;
  speedup: number;
}

/**
 * The CPU-bound mapper on a 1-worker pool and on a 2-worker pool, same job. Each pool first
 * runs the very job it is measured on: as on a pool in use, the measured job finds every
 * worker's mapper process warm (a process is reused only for a job of the same bundle,
 * environment and arguments, so a shorter warm-up job would not do).
 */
export async function runCpu(sb: Sandbox, onePool: string, twoPool: string, items: number, rounds: number, warmUp = true): Promise<CpuResult> {
  const env = (pool: string) => ({ POOL: pool, ITEMS: String(items), ROUNDS: String(rounds), BATCH_SIZE: String(Math.max(1, Math.floor(items / 40))) });
  if (warmUp) {
    await runScript(sb, 'cpu.ts', env(onePool));
    await runScript(sb, 'cpu.ts', env(twoPool));
  }
  const one = await runScript<{ seconds: number }>(sb, 'cpu.ts', env(onePool));
  const two = await runScript<{ seconds: number }>(sb, 'cpu.ts', env(twoPool));
  return { items, rounds, oneWorkerSeconds: one.seconds, twoWorkerSeconds: two.seconds, speedup: one.seconds / two.seconds };
}
