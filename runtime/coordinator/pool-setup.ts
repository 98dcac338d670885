import { SkybatchError } from '../../formats/common/errors.js';
import { PoolConfig, setupTimeoutMs } from '../pool-config.js';
import type { WorkerEntry, WorkerTable } from './worker-table.js';

/** What a worker runs before taking batches; a worker told something else runs setup again. */
export function setupKey(config: PoolConfig): string {
  return JSON.stringify([config.setup ?? '', config.envs ?? {}]);
}

/** Tells a worker to run the pool's setup (again): on joining, and after a changed setup. */
export function sendWelcome(table: WorkerTable, w: WorkerEntry, config: PoolConfig): void {
  table.toldSetup(w, setupKey(config));
  w.link.send({ type: 'welcome', workerId: w.id, setup: config.setup, envs: config.envs ?? {}, setupTimeoutMs: setupTimeoutMs(config) });
}

/** What `pool apply` says about workers told a changed setup or envs: those holding batches run it after them. */
export function describeRerun(stale: WorkerEntry[], setupChanged: boolean): string {
  const idle = stale.filter((w) => w.leased.size === 0).map((w) => w.name);
  const busy = stale.filter((w) => w.leased.size > 0).map((w) => w.name);
  const what = setupChanged ? 'setup changed: running it again on' : 'envs changed: passing them to';
  const later = busy.length ? `${idle.length ? '; ' : `${what} `}${busy.join(', ')} once they finish the batches they hold` : '';
  return `${idle.length ? `${what} ${idle.join(', ')}` : ''}${later}`;
}

/**
 * Why no worker of a pool can run a job: setup failed on every one of the `wanted` workers.
 * Undefined while one can, or may yet (still in setup, or not joined).
 */
export function noWorkerCanRun(workers: WorkerEntry[], pool: string, wanted: number): SkybatchError | undefined {
  const live = workers.filter((w) => w.state !== 'gone');
  if (!live.length || live.length < wanted || live.some((w) => w.state !== 'failed')) return undefined;
  return new SkybatchError(
    'SKYBATCH_E_SETUP_FAILED',
    `pool ${pool} cannot run jobs: setup failed on every worker (${live.map((w) => w.name).sort().join(', ')}). Fix setup in the pool file and run \`skybatch pool apply FILE --pool ${pool}\` again.\n${live[0].error ?? ''}`,
    { context: { worker: live[0].name } },
  );
}
