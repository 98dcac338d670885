import * as path from 'node:path';
import { OutputWriter } from '../../formats/output-writer.js';

/**
 * Stands in, in the coordinator's reduce, for a user's writer whose class overrides neither
 * `reduceResults` nor `cleanup` (FormatSpec.noReduceStep): it runs OutputWriter's no-ops and
 * nothing of the job's bundle. Its constructor bears the user's class name, so labels
 * (`ClassName(path)`) in the report, the journal and messages are the reduce process's.
 * `cwd` is the job's directory: a writer path of '' means the reduce process's current
 * directory (it runs in the job's `cwd`), never the coordinator's.
 */
export interface NoReduceWriter extends OutputWriter<object> {
  readonly cwd: string;
}

class StandIn extends OutputWriter<object> {
  uploadBatch(): string {
    throw new Error('a stand-in writer stores nothing');
  }
}

const standIns = new WeakSet<object>();

export function noReduceWriter(className: string, writerPath: string, cwd: string): NoReduceWriter {
  class Named extends StandIn {}
  Object.defineProperty(Named, 'name', { value: className });
  const w = Object.assign(new Named(writerPath), { cwd });
  standIns.add(w);
  return w;
}

export function isNoReduceWriter(w: OutputWriter<object>): w is NoReduceWriter {
  return standIns.has(w);
}

/** `p` as the reduce process would read it: a relative local path is in the job's directory. */
export function inJobDir(w: OutputWriter<object>, p: string): string {
  return isNoReduceWriter(w) && !/^(s3|gs):\/\//.test(p) && !path.isAbsolute(p) ? path.resolve(w.cwd, p) : p;
}
