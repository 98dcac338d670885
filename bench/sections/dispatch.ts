import type { Sandbox } from '../../test/harness.js';
import { cpuSeconds } from '../lib/proc.js';
import { runScript } from './script.js';

export interface DispatchResult {
  batches: number;
  seconds: number;
  perSec: number;
  coordCpuUsPerBatch: number;
}

/** No-op mapper at batchSize 1 on the pool's (warm) workers, from the map() call to the job's end; `mapper: 'python'` for the same mapper in Python. */
export async function skybatchDispatch(sb: Sandbox, pool: string, batches: number, mapper: 'ts' | 'python' = 'ts'): Promise<DispatchResult> {
  const coord = sb.coordinator(pool).pid;
  const cpu0 = cpuSeconds(coord);
  const r = await runScript<{ seconds: number }>(sb, 'noop.ts', { POOL: pool, BATCHES: String(batches), MAPPER: mapper });
  return { batches, seconds: r.seconds, perSec: batches / r.seconds, coordCpuUsPerBatch: ((cpuSeconds(coord) - cpu0) * 1e6) / batches };
}
