import { CoordinatorClient } from '../../runtime/client/connection.js';
import type { JobEvent } from '../../runtime/protocol.js';

export type BatchEvent = Extract<JobEvent, { kind: 'batch' }>;

export interface BatchWatch {
  client: CoordinatorClient;
  /** The next batch event matching `pred`, seen after this call; rejects after `timeoutMs`. */
  next(pred: (e: BatchEvent) => boolean, what: string, timeoutMs?: number): Promise<BatchEvent>;
  /** Cancels the pool's running and pending jobs and closes the connection. */
  close(): Promise<void>;
}

/** A client subscribed to a pool's events, to wait for batch states as they happen. */
export async function watchBatches(url: string, token: string, ca?: string): Promise<BatchWatch> {
  const client = await CoordinatorClient.connect(url, token, ca);
  const waiters = new Set<(e: BatchEvent) => boolean>();
  client.onEvent((e) => {
    if (e.kind !== 'batch') return;
    for (const w of waiters) if (w(e)) waiters.delete(w);
  });
  await client.request({ type: 'subscribe' });
  return {
    client,
    next: (pred, what, timeoutMs = 60_000) =>
      new Promise<BatchEvent>((resolve, reject) => {
        const t = setTimeout(() => (waiters.delete(w), reject(new Error(`bench: timed out waiting for ${what}`))), timeoutMs);
        const w = (e: BatchEvent) => {
          if (!pred(e)) return false;
          clearTimeout(t);
          resolve(e);
          return true;
        };
        waiters.add(w);
      }),
    close: async () => {
      const jobs = (await client.request({ type: 'status' }).catch(() => ({ jobs: [] as { jobId: string; status: string }[] }))).jobs;
      for (const j of jobs) if (j.status === 'RUNNING' || j.status === 'PENDING') await client.request({ type: 'cancel', jobId: j.jobId }).catch(() => undefined);
      client.close();
    },
  };
}
