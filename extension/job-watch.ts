import { isTerminal } from '../runtime/job-events.js';
import type { BatchInfo, JobEvent, JobSummary } from '../runtime/protocol.js';
import type { Engine } from './engine.js';

export interface JobWatch {
  /** The job's summary when the watch started; undefined when the coordinator does not know it. */
  summary?: JobSummary;
  /** Every batch's state when the watch started (after the subscription, so live events only follow it); undefined when the coordinator cannot tell. */
  batches?: BatchInfo[];
  /** Resolves when the job finishes or the connection to the coordinator is lost. */
  ended: Promise<'finished' | 'disconnected'>;
  close(): void;
}

/** Follows one job on its pool's coordinator (reattach, the job panel). */
export async function watchJob(engine: Engine, pool: string, jobId: string, onEvent: (e: JobEvent) => void): Promise<JobWatch> {
  const client = await engine.connection.CoordinatorClient.forPool(pool);
  let finish!: (how: 'finished' | 'disconnected') => void;
  const ended = new Promise<'finished' | 'disconnected'>((r) => (finish = r));
  client.onEvent((e) => {
    onEvent(e);
    if (e.kind === 'jobFinished' && e.job.jobId === jobId) finish('finished');
  });
  client.onClose(() => finish('disconnected'));
  const summary = await client.request({ type: 'subscribe', jobId });
  const batches = summary ? await batchesOf(client, jobId) : undefined;
  if (summary && isTerminal(summary.status)) finish('finished');
  return { summary, batches, ended, close: () => client.close() };
}

/** Every event of a pool (workers, all jobs): the pools view and the job panel's worker list. */
export async function watchPool(engine: Engine, pool: string, onEvent: (e: JobEvent) => void, onClose: () => void) {
  const client = await engine.connection.CoordinatorClient.forPool(pool);
  client.onEvent(onEvent);
  client.onClose(onClose);
  const status = await client.request({ type: 'subscribe' });
  return { status, batches: (jobId: string) => batchesOf(client, jobId), close: () => client.close() };
}

type Client = Awaited<ReturnType<Engine['connection']['CoordinatorClient']['forPool']>>;

/**
 * Every batch of a job with its state, attempt and worker, asked after subscribing: the
 * coordinator answers on the same connection as its events, so the answer is at least as
 * new as every event before it and the events after it apply on top. Undefined when the
 * coordinator does not know the job (or predates the request).
 */
async function batchesOf(client: Client, jobId: string): Promise<BatchInfo[] | undefined> {
  try {
    return await client.request({ type: 'batches', jobId });
  } catch {
    return undefined;
  }
}
