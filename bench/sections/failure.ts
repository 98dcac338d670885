import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sandbox } from '../../test/harness.js';
import { watchBatches } from '../lib/batch-events.js';
import { childPids, kill } from '../lib/proc.js';
import { SCRIPTS } from './script.js';

export interface FailureTimes {
  /** Signal → the coordinator marks the batch failed/retrying (it noticed). */
  noticedSeconds: number;
  /** Signal → the coordinator hands the batch out again (to the worker that runs it). */
  queuedAgainSeconds: number;
  /** Signal → the batch runs again (a mapper took it), on any worker. */
  runningAgainSeconds: number;
}

export interface FailureResult {
  killed: FailureTimes;
  frozen: FailureTimes;
}

/** The agent process of local worker `name` of `pool`. */
function agentPid(sb: Sandbox, pool: string, name: string): number {
  const pid = sb.workerPids(pool).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').includes(`--name ${name} `));
  if (!pid) throw new Error(`bench: no agent process for worker ${name} of pool ${pool}`);
  return pid;
}

/**
 * Runs a job of slow batches on the pool and, while it runs: SIGKILLs one worker (its
 * agent and mapper, as when its machine dies) the moment one of its batches starts, then
 * SIGSTOPs another worker's agent and mapper (a frozen machine, or a partitioned one: its
 * socket stays open) the same way; times each until its batch is handed out again and
 * until it runs again elsewhere. The job is cancelled afterwards.
 */
export async function runFailure(sb: Sandbox, pool: string, sleepMs: number): Promise<FailureResult> {
  const c = sb.coordinator(pool);
  const { next, close } = await watchBatches(c.url, c.token);
  const job = sb.cli(['run', path.join(SCRIPTS, 'sleepy.ts')], { env: { POOL: pool, SLEEP_MS: String(sleepMs), ITEMS: '100000' } });
  let frozenPids: number[] = [];
  try {
    const measure = async (victim: string, hit: (agent: number) => void): Promise<FailureTimes> => {
      const started = await next((e) => e.state === 'running' && e.worker === victim, `a batch running on ${victim}`);
      const agent = agentPid(sb, pool, victim);
      const at = (p: Promise<unknown>) => p.then(() => performance.now());
      const again = at(next((e) => e.index === started.index && e.state === 'running' && e.attempt !== started.attempt, `batch ${started.index} to run again`));
      const queued = at(next((e) => e.index === started.index && e.state === 'queued' && e.attempt !== started.attempt, `batch ${started.index} to be handed out again`));
      const noticed = at(next((e) => e.index === started.index && e.attempt === started.attempt && e.state !== 'running', `batch ${started.index} to be given up`));
      const t0 = performance.now();
      hit(agent);
      const s = async (p: Promise<number>) => ((await p) - t0) / 1000;
      return { noticedSeconds: await s(noticed), queuedAgainSeconds: await s(queued), runningAgainSeconds: await s(again) };
    };
    const killed = await measure('local-0', (agent) => {
      const mappers = childPids(agent);
      kill(agent, 'SIGKILL');
      for (const m of mappers) kill(m, 'SIGKILL');
    });
    // a frozen machine: the agent and its mapper stop alike
    const frozen = await measure('local-1', (agent) => {
      frozenPids = [agent, ...childPids(agent)];
      for (const p of frozenPids) kill(p, 'SIGSTOP');
    });
    return { killed, frozen };
  } finally {
    for (const p of frozenPids) kill(p, 'SIGCONT');
    await close();
    await job;
  }
}
