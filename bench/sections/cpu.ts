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
 * runs a short job of the same script and environment (its item count comes as an argument,
 * not in the environment, which is part of what makes a worker's mapper process reusable):
 * as on a pool in use, the measured job finds every worker's mapper process warm.
 */
export async function runCpu(sb: Sandbox, onePool: string, twoPool: string, items: number, rounds: number, warmUp = true): Promise<CpuResult> {
  const batchSize = Math.max(1, Math.floor(items / 40));
  const env = (pool: string) => ({ POOL: pool, ROUNDS: String(rounds), BATCH_SIZE: String(batchSize) });
  const timeout = 30 * 60_000;
  // enough batches that each of the 2 workers takes one
  if (warmUp) {
    await runScript(sb, 'cpu.ts', env(onePool), timeout, [String(4 * batchSize)]);
    await runScript(sb, 'cpu.ts', env(twoPool), timeout, [String(4 * batchSize)]);
  }
  const one = await runScript<{ seconds: number }>(sb, 'cpu.ts', env(onePool), timeout, [String(items)]);
  const two = await runScript<{ seconds: number }>(sb, 'cpu.ts', env(twoPool), timeout, [String(items)]);
  return { items, rounds, oneWorkerSeconds: one.seconds, twoWorkerSeconds: two.seconds, speedup: one.seconds / two.seconds };
}
