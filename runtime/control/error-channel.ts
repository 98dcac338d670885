import * as fs from 'node:fs';
import { SkybatchError, toWireError, type WireError } from '../../formats/common/errors.js';
import { wireError } from '../protocol-guards.js';

/**
 * How a process that runs `skybatch` (the extension) gets its failure as a structured
 * error rather than text to parse: it opens a pipe, names its fd in this variable, and the
 * CLI, or the script `skybatch run` runs, writes one JSON `WireError` there before it
 * exits. Stderr stays for people.
 */
export const ERROR_FD_ENV = 'SKYBATCH_ERROR_FD';

/** The fd named by `SKYBATCH_ERROR_FD`, when it names one this process holds. */
export function errorFd(): number | undefined {
  const fd = Number(process.env[ERROR_FD_ENV]);
  if (!Number.isInteger(fd) || fd < 3) return undefined;
  try {
    fs.fstatSync(fd);
    return fd;
  } catch {
    return undefined;
  }
}

/**
 * Writes `err` to the error channel, if there is one. A SkybatchError keeps its code and
 * context; any other error (a script's own bug) is SKYBATCH_E_SCRIPT with its name and message.
 */
export function reportError(err: unknown): void {
  const fd = errorFd();
  if (fd === undefined) return;
  const w: WireError =
    err instanceof SkybatchError ? toWireError(err)
    : err instanceof Error ? { code: 'SKYBATCH_E_SCRIPT', message: `${err.name}: ${err.message}`, stack: err.stack, retryable: false }
    : { code: 'SKYBATCH_E_SCRIPT', message: `non-Error value thrown: ${String(err)}`, retryable: false };
  try {
    fs.writeSync(fd, JSON.stringify(w) + '\n');
  } catch {
    // the reader went away: stderr still has it
  }
}

/** The error a child wrote to its error channel (the last well-formed line), if any. */
export function readReportedError(text: string): WireError | undefined {
  let found: WireError | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const parsed = wireError.safeParse(JSON.parse(line));
      if (parsed.success) found = parsed.data;
    } catch {
      // not JSON: a channel is only ever written whole lines of JSON, so this is noise
    }
  }
  return found;
}
