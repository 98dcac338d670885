import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before } from 'node:test';
import type { JobSpec } from '../../runtime/protocol.js';

/** Gives the enclosing describe a SKYBATCH_HOME of its own: a temp folder, removed after, the old value put back. */
export function useTempHome(): void {
  let home = '';
  let saved: string | undefined;
  before(() => {
    saved = process.env.SKYBATCH_HOME;
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-unit-'));
    process.env.SKYBATCH_HOME = home;
  });
  after(() => {
    if (saved === undefined) delete process.env.SKYBATCH_HOME;
    else process.env.SKYBATCH_HOME = saved;
    fs.rmSync(home, { recursive: true, force: true });
  });
}

/** A job of `total` items in batches of `batchSize`, with no journal: pure bookkeeping. */
export function spec(over: Partial<JobSpec> = {}): JobSpec {
  return {
    jobId: '1', pool: 'unit', createdAt: '2026-01-01T00:00:00.000Z', scriptPath: 'job.ts', mapperId: 'm', bundleHash: 'h',
    reader: { type: 'jsonl', path: '/in' }, writers: [{ type: 'jsonl', path: '/out' }],
    batchSize: 10, total: 30, env: {}, argv: [], cwd: '/', ...over,
  } as JobSpec;
}
