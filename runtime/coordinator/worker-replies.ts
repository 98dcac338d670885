import * as fs from 'node:fs';
import { SkybatchError } from '../../formats/common/errors.js';
import { bundleFile } from '../store/job-store.js';
import type { WorkerEntry } from './worker-table.js';

/** Refuses a worker's report (`SKYBATCH_E_NOT_LEASED`), noting it in the coordinator's log. */
export function refuse(w: WorkerEntry, log: (line: string) => void, message: string): void {
  const err = new SkybatchError('SKYBATCH_E_NOT_LEASED', `refused ${message}`, { context: { worker: w.name } });
  log(err.message);
  w.link.send({ type: 'error', error: { code: err.code, message: err.message, retryable: false, context: err.context } });
}

/** Answers a worker's `getBundle`: the bundle, or why it cannot have it. */
export function sendBundle(w: WorkerEntry, hash: string, log: (line: string) => void): void {
  let code: string;
  try {
    code = fs.readFileSync(bundleFile(hash), 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    const message = `bundle ${hash} ${missing ? 'is not on this coordinator' : `cannot be read: ${(err as Error).message}`}`;
    log(`worker ${w.name} asked for ${message}`);
    w.link.send({ type: 'bundleUnavailable', hash, error: { code: 'SKYBATCH_E_NOT_FOUND', message, retryable: false } });
    return;
  }
  w.link.send({ type: 'bundle', hash, code });
}
