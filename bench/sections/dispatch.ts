import { type Sandbox, pidsMatching } from '../../test/harness.js';
import { alive, cpuSeconds } from '../lib/proc.js';
import { runScript } from './script.js';

export interface DispatchResult {
  batches: number;
  seconds: number;
  perSec: number;
  coordCpuUsPerBatch: number;
  /** CPU (user+sys) per batch of the two agents together, and of their mapper processes together. */
  agentCpuUsPerBatch: number;
  mapperCpuUsPerBatch: number;
}

/** No-op mapper at batchSize 1 on the pool's (warm) workers, from the map() call to the job's end; `mapper: 'python'` for the same mapper in Python. */
export async function skybatchDispatch(sb: Sandbox, pool: string, batches: number, mapper: 'ts' | 'python' = 'ts'): Promise<DispatchResult> {
  const coord = sb.coordinator(pool).pid;
  const agents = sb.workerPids(pool);
  // the warm mappers of the warm-up job run this one (a Python job's are new: counted from 0)
  const mappers0 = pidsMatching('mapper-process.js', agents);
  const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + (alive(pid) ? cpuSeconds(pid) : 0), 0);
  const before = new Map(mappers0.map((pid) => [pid, cpuSeconds(pid)]));
  const cpu0 = { coord: cpuSeconds(coord), agents: cpuOf(agents) };
  const r = await runScript<{ seconds: number }>(sb, 'noop.ts', { POOL: pool, BATCHES: String(batches), MAPPER: mapper });
  const mappers1 = pidsMatching('mapper-process.js', agents);
  const mapperCpu = mappers1.reduce((sum, pid) => sum + (alive(pid) ? cpuSeconds(pid) - (before.get(pid) ?? 0) : 0), 0);
  const perBatch = (seconds: number) => (seconds * 1e6) / batches;
  return {
    batches,
    seconds: r.seconds,
    perSec: batches / r.seconds,
    coordCpuUsPerBatch: perBatch(cpuSeconds(coord) - cpu0.coord),
    agentCpuUsPerBatch: perBatch(cpuOf(agents) - cpu0.agents),
    mapperCpuUsPerBatch: perBatch(mapperCpu),
  };
}
