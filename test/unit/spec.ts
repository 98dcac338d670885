import type { JobSpec } from '../../runtime/protocol.js';

/** A job of `total` items in batches of `batchSize`, with no journal: pure bookkeeping. */
export function spec(over: Partial<JobSpec> = {}): JobSpec {
  return {
    jobId: '1', pool: 'unit', createdAt: '2026-01-01T00:00:00.000Z', scriptPath: 'job.ts', mapperId: 'm', bundleHash: 'h',
    reader: { type: 'jsonl', path: '/in' }, writers: [{ type: 'jsonl', path: '/out' }],
    batchSize: 10, total: 30, env: {}, argv: [], cwd: '/', ...over,
  } as JobSpec;
}
