import type { BatchState, JobEvent, JobSummary, WorkerSummary } from '../runtime/protocol.js';

export interface BatchDetail {
  start: number;
  end: number;
  attempt: number;
  worker?: string;
}

/** What the job panel is first told: the job as known now, then live events follow. */
export interface PanelSnapshot {
  job: JobSummary;
  batchSize: number;
  /** State of every batch by index. */
  batches: BatchState[];
  /** Each batch's items, attempt and worker, by index, as the coordinator or the job's journal tells them (split batches' single-item batches follow the original ones). */
  details?: BatchDetail[];
  workers: WorkerSummary[];
  samples: { index: number; value: unknown }[];
  /** Where the batch states came from: the coordinator's `batches` answer, or the journal on disk. */
  seededFrom?: 'coordinator' | 'journal';
  /** Whether events will follow (the pool runs). */
  live: boolean;
}

export type ToPanel = { type: 'snapshot'; snapshot: PanelSnapshot } | { type: 'event'; event: JobEvent } | { type: 'disconnected'; reason: string };

export type FromPanel = { type: 'ready' } | { type: 'cancel'; jobId: string } | { type: 'recover'; jobId: string };

/** What the panel keeps in `vscode.setState`, so VS Code can restore it after a reload. */
export interface PanelState {
  pool: string;
  jobId: string;
}

/** Job cell output → extension: what a clicked link in the output asks for (webview/output-renderer.ts). */
export type FromOutput =
  | { type: 'open'; path: string }
  | { type: 'reveal'; path: string }
  | { type: 'command'; command: 'recover' | 'resume' | 'panel'; jobId: string }
  | { type: 'goto'; cell: number; line: number };
