import { SkybatchError } from '../../formats/common/errors.js';
import { JobRun } from '../coordinator/job-run.js';
import { readJournal, readSpec } from '../store/job-store.js';
import { isTerminal } from '../job-events.js';
import type { EventDetail, JobEvent, JobSummary } from '../protocol.js';
import { CoordinatorClient } from './connection.js';

const DEFAULT_RECONNECT_TIMEOUT_MS = 5 * 60_000;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5_000;

/**
 * How long a client that lost its coordinator keeps trying to reach it again before it
 * gives up: `SKYBATCH_RECONNECT_TIMEOUT_MS`, default 5 minutes (a coordinator restart by
 * `pool apply` takes seconds; a machine reboot, minutes).
 */
export function reconnectTimeoutMs(): number {
  const v = Number(process.env.SKYBATCH_RECONNECT_TIMEOUT_MS);
  return process.env.SKYBATCH_RECONNECT_TIMEOUT_MS && Number.isFinite(v) && v >= 0 ? v : DEFAULT_RECONNECT_TIMEOUT_MS;
}

/** The job as its record on this machine says (what its coordinator last wrote), or undefined when there is none here. */
export function recordedJob(jobId: string): JobSummary | undefined {
  let spec;
  try {
    spec = readSpec(jobId);
  } catch {
    return undefined;
  }
  try {
    return new JobRun(spec, readJournal(jobId)).summary();
  } catch {
    return undefined; // a journal being written or torn: ask again later
  }
}

export interface FollowOptions {
  poolName: string;
  /** A connection already subscribed to the job (the one that submitted it); else one is made. */
  client?: CoordinatorClient;
  /** Events that arrived on `client` before following started. */
  early?: JobEvent[];
  /** Every event of the job, plus `log` events (stream 'info') saying when the connection is lost and back. */
  show?: (e: JobEvent) => void;
  /** Which events `show` needs when subscribing again (see `EventDetail`); all by default. */
  events?: EventDetail;
}

/**
 * Follows a job to its end, whatever happens to the connection: the job runs on the pool
 * and never depends on this client, so when the coordinator is killed and started again
 * (`pool apply`), restarts, or drops this client (a process paused past its heartbeats),
 * the client reconnects with backoff, subscribes again and reads the job's current summary,
 * so a job that finished meanwhile still resolves with its real outcome. Resolves with the
 * final summary, whatever its status. Gives up after `reconnectTimeoutMs()` without a
 * coordinator, with an error that names the job and how to follow it from elsewhere.
 */
export function followJob(jobId: string, opts: FollowOptions): Promise<JobSummary> {
  const pool = opts.poolName;
  const show = opts.show ?? (() => undefined);
  const note = (line: string) => show({ kind: 'log', jobId, stream: 'info', line });
  const made: CoordinatorClient[] = [];
  const closed = new WeakSet<CoordinatorClient>();
  let current: CoordinatorClient | undefined;
  let done = false;

  return new Promise<JobSummary>((resolve, reject) => {
    const finish = (summary: JobSummary | undefined, err?: Error) => {
      if (done) return;
      done = true;
      for (const c of made) c.close();
      if (err) reject(err);
      else resolve(summary!);
    };
    const settle = (s: JobSummary | undefined): boolean => {
      if (s && isTerminal(s.status)) finish(s);
      return done;
    };
    const onEvent = (e: JobEvent) => {
      if (done) return;
      show(e);
      if (e.kind === 'jobFinished' && e.job.jobId === jobId) finish(e.job);
    };
    const attach = (c: CoordinatorClient) => {
      c.onEvent(onEvent);
      c.onClose((why) => {
        closed.add(c);
        if (c !== current || done) return;
        current = undefined;
        note(`lost the connection to pool '${pool}' (${why}); the job goes on without this client: reconnecting`);
        void connectLoop(why);
      });
    };

    const connectLoop = async (why: string | undefined): Promise<void> => {
      const giveUpAt = Date.now() + reconnectTimeoutMs();
      let last = why ?? 'not connected';
      let delay = FIRST_RETRY_MS;
      for (let first = why === undefined; !done; first = false) {
        // A job that finished while we were away (or that `pool down` ended) is on disk.
        if (settle(recordedJob(jobId))) return;
        if (!first) {
          if (Date.now() >= giveUpAt) {
            finish(undefined, giveUpError(jobId, pool, last));
            return;
          }
          await new Promise((r) => setTimeout(r, Math.min(delay * (0.75 + Math.random() / 2), Math.max(0, giveUpAt - Date.now()))));
          delay = Math.min(delay * 2, MAX_RETRY_MS);
          if (done) return;
        }
        let c: CoordinatorClient | undefined;
        try {
          c = await CoordinatorClient.forPool(pool);
          made.push(c);
          // Listening before subscribing: nothing between the summary and the live stream is missed.
          attach(c);
          const s = await c.request({ type: 'subscribe', jobId, ...(opts.events ? { events: opts.events } : {}) });
          if (closed.has(c)) continue;
          if (why !== undefined) note(`reconnected to pool '${pool}'`);
          current = c;
          if (settle(s)) return;
          if (!s) {
            const rec = recordedJob(jobId);
            if (settle(rec)) return;
            finish(undefined, notRunningError(jobId, pool, rec));
          }
          return;
        } catch (err) {
          c?.close();
          if (err instanceof SkybatchError && err.code === 'SKYBATCH_E_AUTH') {
            finish(undefined, err); // a new token means a new pool, not one coming back
            return;
          }
          if (why === undefined && last === 'not connected') note(`cannot reach pool '${pool}' (${(err as Error).message}); waiting for it`);
          last = (err as Error).message;
        }
      }
    };

    if (opts.client) {
      current = opts.client;
      attach(opts.client);
      for (const e of opts.early ?? []) onEvent(e);
    } else {
      void connectLoop(undefined);
    }
  });
}

function giveUpError(jobId: string, pool: string, last: string): SkybatchError {
  const secs = Math.round(reconnectTimeoutMs() / 1000);
  return new SkybatchError(
    'SKYBATCH_E_PROTOCOL',
    `job ${jobId}: stopped waiting after ${secs} s without a connection to pool '${pool}' (last error: ${last}). ` +
      `The job does not depend on this client: it goes on while the pool runs, or once \`skybatch pool apply POOL.yaml --pool ${pool}\` starts it again. ` +
      `Wait for it with \`skybatch jobs wait ${jobId}\` (or \`sky.waitForJob('${jobId}')\`), follow its log with \`skybatch jobs logs ${jobId} --follow\`, list jobs with \`skybatch jobs queue\``,
    { context: { jobId } },
  );
}

function notRunningError(jobId: string, pool: string, rec: JobSummary | undefined): SkybatchError {
  const where = rec ? `its record says ${rec.status}, on pool '${rec.pool}'` : 'no record of it on this machine';
  return new SkybatchError(
    'SKYBATCH_E_JOB_NOT_FOUND',
    `job ${jobId} is not running on pool '${pool}' (${where}); run its unfinished batches with \`skybatch jobs resume ${jobId}\` or merge them with \`skybatch recover ${jobId}\``,
    { context: { jobId } },
  );
}
