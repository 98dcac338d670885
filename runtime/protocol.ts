/**
 * The one protocol between coordinator, workers, clients (CLI, Dataset.map, the VS Code
 * extension) and webviews. Every message is JSON with a string `type`; requests carry a
 * `reqId` and get exactly one `reply`. Both ends import this file.
 */
import type { WireError } from '../formats/common/errors.js';

export const PROTOCOL_VERSION = 1;

/** A reader or writer by registered type name and constructor arguments. */
export interface FormatSpec {
  type: string;
  path: string;
  options: unknown;
  /**
   * Set by the client on a writer that is skybatch's own class (not a subclass, nor a class
   * registered under a built-in name): the coordinator may then reduce it in its own process,
   * as no user code is involved (runtime/coordinator/builtin-reduce.ts).
   */
  builtin?: boolean;
  /**
   * Set by the client on a user's writer whose class overrides neither `reduceResults` nor
   * `cleanup` (both are OutputWriter's no-ops): its class name, for the report's label. The
   * coordinator then runs the job's reduce step with a stand-in that runs no user code
   * (runtime/coordinator/no-reduce-writer.ts).
   */
  noReduceStep?: string;
}

export type JobStatus = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
/**
 * `queued`: handed to a worker, waiting behind the batch its mapper runs (workers prefetch
 * one); `running`: its mapper has it. `split`: kept failing with `onItemError: 'skip'`, so it
 * runs again item by item; `skipped`: its one item went to errors.jsonl.
 */
export type BatchState = 'pending' | 'queued' | 'running' | 'retrying' | 'done' | 'failed' | 'split' | 'skipped';

/** An item that failed and was skipped (`onItemError: 'skip'`): one row of errors.jsonl. */
export interface DeadLetter {
  index: number;
  input: unknown;
  error: string;
  code: string;
  stack?: string;
}
export type WorkerState = 'starting' | 'setup' | 'idle' | 'busy' | 'failed' | 'gone';

/** What a client submits. The coordinator adds `jobId`, `pool` and `createdAt`. */
export interface JobRequest {
  bundleHash: string;
  /** Which `remoteFunction` of the bundle is the mapper: `"<name>#<n>"`. */
  mapperId: string;
  /** The user's script, for messages only. */
  scriptPath: string;
  reader: FormatSpec & { state?: unknown };
  writers: FormatSpec[];
  batchSize: number;
  /** Number of items, from `reader.length()` on the client. */
  total: number;
  /** The submitting process's environment and argv, so top-level settings read the same on workers. */
  env: Record<string, string>;
  argv: string[];
  cwd: string;
  activateEnv?: string;
  /** Attempts per batch before the job fails (default 4: the first run and 3 retries). */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt (default 1000 ms). */
  retryBaseMs?: number;
  /** A batch running longer than this on a worker is taken away and retried (default 30 min); also how long a worker may hold batches without starting any. */
  batchTimeoutMs?: number;
  /** 'fail' (default): a failed item fails its batch. 'skip': it goes to errors.jsonl and the job goes on. */
  onItemError?: 'fail' | 'skip';
  /** This job's weight when jobs share the pool's workers (default 1): a job of priority 2 gets twice the workers of a job of priority 1. */
  priority?: number;
  /** Set when the mapper is a Python function (`sky.pythonFunction`); `mapperId` then only names it. */
  python?: PythonMapperSpec;
}

/** A Python mapper: its file travels with the job, and workers run it with `interpreter`. */
export interface PythonMapperSpec {
  /** Absolute path of the .py file on the submitting machine (tracebacks name it). */
  file: string;
  /** The file's text, as it was when the job was submitted. */
  source: string;
  /** The `@remote_function` to call; absent: the file's only one. */
  function?: string;
  /** Default `python3`, found on the worker's PATH after `activateEnv`. */
  interpreter?: string;
}

export interface JobSpec extends JobRequest {
  jobId: string;
  pool: string;
  createdAt: string;
  /** Set by a coordinator whose workers run on other machines: the job's packages, packed by content hash (`getPackages`). */
  packages?: { hash: string };
}

export interface JobSummary {
  jobId: string;
  pool: string;
  status: JobStatus;
  scriptPath: string;
  createdAt: string;
  finishedAt?: string;
  batchesTotal: number;
  batchesDone: number;
  itemsTotal: number;
  itemsDone: number;
  /** Items skipped into errors.jsonl (`onItemError: 'skip'`). */
  itemsFailed?: number;
  retries: number;
  outputs: string[];
  error?: WireError;
}

export interface BatchInfo {
  index: number;
  start: number;
  end: number;
  state: BatchState;
  attempt: number;
  worker?: string;
}

/**
 * What a worker's backend gave it from pool.yaml's `resources`, as the worker reports it.
 * A field is absent when nothing manages it (a worker started by hand has no `gpus`).
 */
export interface WorkerResources {
  /** The GPUs its setup and mapper see: `CUDA_VISIBLE_DEVICES` lists their indices (none: `''`). */
  gpus?: { index: number; name: string }[];
  /** The CPUs it is pinned to (`taskset -c` list form, e.g. `0-3`); absent: not pinned. */
  cpus?: string;
  /** A mapper process (with the processes it starts) using more memory than this is stopped. */
  memoryMb?: number;
  /** What pool.yaml asked for that this worker could not be given, and why. */
  notes?: string[];
}

export interface WorkerSummary {
  workerId: string;
  name: string;
  host: string;
  state: WorkerState;
  jobId?: string;
  batches: [number, number][];
  resources?: WorkerResources;
  /** Why setup failed, for a worker in state `failed`. */
  error?: string;
}

/**
 * A worker as its backend's engine sees it (the local process table, an ssh session, a
 * Slurm job), which may differ from what the coordinator sees of its connection:
 * `pending` (not started: waiting for a retry, a host, the engine's queue; `reason` says
 * why), `starting` (launched, not up yet), `running`, `gone` (ended and not restarted;
 * `reason` says why).
 */
export interface BackendWorkerSummary {
  name: string;
  host: string;
  state: 'pending' | 'starting' | 'running' | 'gone';
  reason?: string;
  /** When it entered this state (ISO time). */
  since: string;
  /** Launches in a row that failed; 0 once one runs. */
  failures: number;
}

export interface PoolSummary {
  pool: string;
  url: string;
  pid: number;
  workersWanted: number;
  workers: WorkerSummary[];
  jobs: JobSummary[];
  /** The pool's backend (`local`, `ssh`) and the workers it started, by their names. */
  backend?: { kind: string; workers: BackendWorkerSummary[] };
  /** An autoscaled pool (`pool.workers: { min, max }`): its range, the size it wants now (`workersWanted`) and why. */
  autoscale?: { min: number; max: number; wanted: number; reason: string };
}

/** Coordinator → subscribers. The CLI progress bar and the notebook render the same events. */
export type JobEvent =
  | { kind: 'jobSubmitted'; job: JobSummary }
  | {
      kind: 'progress';
      jobId: string;
      batchesDone: number;
      batchesTotal: number;
      itemsDone: number;
      itemsTotal: number;
      failed: number;
      retrying: number;
      itemsPerSec: number;
    }
  | { kind: 'batch'; jobId: string; index: number; start: number; end: number; state: BatchState; worker?: string; attempt: number; error?: WireError }
  | { kind: 'worker'; worker: WorkerSummary }
  | { kind: 'sample'; jobId: string; start: number; results: unknown[] }
  | { kind: 'log'; jobId?: string; worker?: string; stream: 'stdout' | 'stderr' | 'info'; line: string }
  | { kind: 'jobFinished'; job: JobSummary; recoverCommand?: string };

/**
 * The events a subscription gets: 'all' (the default), or 'progress' for a view that draws
 * only a progress bar and logs: no per-batch events (those of failed attempts excepted), no
 * worker events. At batchSize 1 the per-batch events were a quarter of the coordinator's
 * work and most of the `map()` client's.
 */
export type EventDetail = 'all' | 'progress';

export type ClientRequest =
  | { type: 'submit'; reqId: number; job: JobRequest; bundle?: string; events?: EventDetail }
  /** Runs a failed or cancelled job's unfinished batches; with `job`, with new code (`resumeFrom`). */
  | { type: 'resume'; reqId: number; jobId: string; job?: JobRequest; bundle?: string; events?: EventDetail }
  | { type: 'subscribe'; reqId: number; jobId?: string; events?: EventDetail }
  | { type: 'cancel'; reqId: number; jobId: string }
  | { type: 'status'; reqId: number }
  /** Every batch of a job with its state, for views that attach mid-job: replies `BatchInfo[]`. */
  | { type: 'batches'; reqId: number; jobId: string }
  | { type: 'hasBundle'; reqId: number; hash: string }
  | { type: 'scale'; reqId: number; workers: number }
  | { type: 'shutdown'; reqId: number };

export type ClientMessage = { type: 'hello'; protocolVersion: number; role: 'client' } | ClientRequest;

/**
 * What each request's successful reply carries. `subscribe` answers the job's summary
 * (undefined for a job the coordinator does not hold) with a `jobId`, the pool's without.
 */
export interface ClientReplies {
  submit: { jobId: string };
  resume: { jobId: string };
  subscribe: JobSummary | PoolSummary | undefined;
  cancel: JobSummary;
  status: PoolSummary;
  batches: BatchInfo[];
  hasBundle: { has: boolean };
  scale: PoolSummary;
  shutdown: { ok: true };
}

/** The reply type of one request body, with `subscribe` narrowed by whether it names a job. */
export type ReplyTo<R extends { type: ClientRequest['type'] }> = R extends { type: 'subscribe'; jobId: string }
  ? JobSummary | undefined
  : R extends { type: 'subscribe' }
    ? PoolSummary
    : ClientReplies[R['type']];

export type CoordinatorToClient =
  | { type: 'reply'; reqId: number; ok: true; result?: unknown }
  | { type: 'reply'; reqId: number; ok: false; error: WireError }
  | { type: 'event'; event: JobEvent }
  /** A refused frame that had no `reqId` to answer (not JSON, not an object, ...). */
  | { type: 'error'; error: WireError };

/** What a worker reports on one batch it holds. */
export type BatchReportItem =
  /** The mapper took the batch from load(): a crash from now on is charged to this batch. */
  | { type: 'batchStarted'; index: number; attempt: number }
  | { type: 'batchDone'; index: number; attempt: number; items: number; sample?: unknown[]; deadLetters?: DeadLetter[] }
  /**
   * Given back untouched (asked back, or its mapper process stopped before reaching it): not a
   * failure. `prefetchError`: its download, started ahead, had already failed; logged, not charged.
   */
  | { type: 'batchReleased'; index: number; attempt: number; prefetchError?: WireError }
  /** `input`: the batch's items when it has just one, for errors.jsonl. */
  | { type: 'batchFailed'; index: number; attempt: number; error: WireError; input?: unknown[] };

/** One batch handed to a worker. */
export interface BatchAssignment {
  index: number;
  start: number;
  end: number;
  attempt: number;
  wantSample: boolean;
}

export type WorkerMessage =
  /**
   * `launch`: the id its backend gave this start of the worker; a stale start (an earlier
   * launch that outlived a partition) is refused. `batchFrames`: it takes `batches` frames
   * (a worker without it gets one `batch` frame per batch).
   */
  | { type: 'hello'; protocolVersion: number; role: 'worker'; name: string; host: string; pid: number; resources?: WorkerResources; launch?: string; batchFrames?: boolean }
  | { type: 'setupLog'; stream: 'stdout' | 'stderr'; line: string }
  | { type: 'ready' }
  | { type: 'setupFailed'; error: WireError }
  | { type: 'getBundle'; hash: string }
  /** Asks for a job's packages (`JobSpec.packages`) on this worker's host: answered `packages` once they are in its packages folder. */
  | { type: 'getPackages'; hash: string }
  /** The mapper took the batch from load(): a crash from now on is charged to this batch. */
  | { type: 'batchStarted'; jobId: string; index: number; attempt: number }
  | { type: 'batchDone'; jobId: string; index: number; attempt: number; items: number; sample?: unknown[]; deadLetters?: DeadLetter[] }
  /** Given back untouched: see `BatchReportItem`. */
  | { type: 'batchReleased'; jobId: string; index: number; attempt: number; prefetchError?: WireError }
  /** `input`: the batch's items when it has just one, for errors.jsonl. */
  | { type: 'batchFailed'; jobId: string; index: number; attempt: number; error: WireError; input?: unknown[] }
  /**
   * Several reports of one job in one frame, in the order they happened: at batchSize 1 one
   * frame per report was most of a worker's and the coordinator's cost per batch. Each is
   * handled as if it came in its own frame (a report on a batch the worker does not hold is
   * refused on its own).
   */
  | { type: 'batchReports'; jobId: string; reports: BatchReportItem[] }
  | { type: 'jobFatal'; jobId: string; error: WireError }
  | { type: 'log'; jobId?: string; stream: 'stdout' | 'stderr'; line: string };

export type CoordinatorToWorker =
  /** Sent when a worker joins, and again when `pool apply` changed setup or envs (the worker holds no batch then). */
  | { type: 'welcome'; workerId: string; setup?: string; envs: Record<string, string>; setupTimeoutMs?: number }
  | { type: 'job'; spec: JobSpec }
  | { type: 'bundle'; hash: string; code: string }
  /** The answer to a `getBundle` the coordinator cannot serve (no such bundle). */
  | { type: 'bundleUnavailable'; hash: string; error: WireError }
  /** The answer to `getPackages`: they are in the host's packages folder (`error`: they cannot be put there). */
  | { type: 'packages'; hash: string; error?: WireError }
  | { type: 'batch'; jobId: string; index: number; start: number; end: number; attempt: number; wantSample: boolean }
  /** Several batches of one job in one frame, to a worker whose hello said `batchFrames`; the same as one `batch` frame each, in order. */
  | { type: 'batches'; jobId: string; batches: BatchAssignment[] }
  | { type: 'endJob'; jobId: string; reason: 'done' | 'cancelled' | 'failed' }
  /**
   * The batch was taken away from this worker (it timed out, a copy elsewhere won, or it was
   * not started in time): stop the (hung or stale) mapper process holding it.
   */
  | { type: 'abortBatch'; jobId: string; index: number; attempt: number }
  /**
   * Give this batch back if its mapper has not started it (the job's tail: another worker has
   * nothing to do): answered with `batchReleased`, or, when it has started, by its report as usual.
   */
  | { type: 'releaseBatch'; jobId: string; index: number; attempt: number }
  | { type: 'shutdown' }
  /** A refused frame: not valid, or a report on a batch or job this connection does not hold. */
  | { type: 'error'; error: WireError };

/** The WebSocket close code for a worker the coordinator fenced off (a stale launch): it exits instead of reconnecting. */
export const FENCED_CLOSE_CODE = 4001;

/**
 * How many batches a worker holds at once before a job's batch times are known, and at least:
 * one running and one prefetched. Short batches get more (`JobRun.credit`).
 */
export const WORKER_CREDIT = 2;
/**
 * The most batches a worker holds at once, however short its batches (and only as many as
 * 100 ms of its work: `BatchClock.credit`). At 32, no-op batches left every process of the
 * round trip waking for a few dozen batches at a time; 128 cut the agents' CPU per batch by
 * a quarter and the coordinator's by a sixth (docs/bench.md).
 */
export const MAX_WORKER_CREDIT = 128;
/**
 * The most batches of one job all its workers hold at once. Each leased batch is a live
 * record in the coordinator, so the credit alone would let them grow with the pool: 128,000
 * at 1,000 workers, 1.28M (about 200 MB) at 10,000. Each worker's credit is cut to its share
 * of this (never below `WORKER_CREDIT`); 16,384 in flight cover well over 100 ms of the fastest
 * dispatch measured, and at 1,000 workers cost no measurable rate (4,096 did: docs/bench.md).
 */
export const MAX_JOB_IN_FLIGHT = 16_384;
