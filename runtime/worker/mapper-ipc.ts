import type { WireError } from '../../formats/common/errors.js';
import type { BatchAssignment, DeadLetter, JobSpec } from '../protocol.js';

/** Agent → mapper process (Node IPC). */
export type AgentToMapper =
  /** `dryRun`: a notebook's mapper cell run on its own (client/dry-run.ts): nothing is written, every result comes back as the sample. */
  | { type: 'start'; spec: JobSpec; bundlePath: string; cacheDir: string; dryRun?: boolean }
  /**
   * Batches, in order: the list of the coordinator's `batch` or `batches` frame, passed on as
   * it was checked. One shape for one batch or many: the agent and its mapper process are
   * one build (mapper-env.ts `SKYBATCH_AGENT_BUILD`), so no older peer sends another.
   */
  | { type: 'batches'; batches: BatchAssignment[] }
  /** No more batches: let `load()` finish so the mapper returns. `keep`: then wait for a next job of the same bundle (`idle`) instead of exiting. */
  | { type: 'end'; keep?: boolean }
  /** Give this batch back if `load()` has not yielded it yet (answered with `batchReleased`); ignored once it has. */
  | { type: 'release'; index: number; attempt: number }
  /** Are you there? (asked of a warm process waiting for a next job; answered with `pong`) */
  | { type: 'ping' };

/** Mapper process → agent. */
export type MapperToAgent =
  | { type: 'batchStarted'; index: number; attempt: number }
  | { type: 'batchDone'; index: number; attempt: number; items: number; sample?: unknown[]; deadLetters?: DeadLetter[] }
  /** `prefetchError`: its download, started ahead, had already failed (the batch runs again elsewhere; the job log says why). */
  | { type: 'batchReleased'; index: number; attempt: number; prefetchError?: WireError }
  | { type: 'batchFailed'; index: number; attempt: number; error: WireError; input?: unknown[] }
  /** The job cannot run on this worker at all (script failed to load, mapper threw before its first batch). */
  | { type: 'fatal'; error: WireError }
  /** Its job's mapper returned cleanly after `end` with `keep`: it waits for a next `start`. */
  | { type: 'idle' }
  | { type: 'pong' };
