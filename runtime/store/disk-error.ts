import { SkybatchError } from '../../formats/common/errors.js';
import { writeFully } from '../../formats/local-concat.js';

/**
 * A failed write to skybatch's own files (journal, locks) as the error a user can act on:
 * the file and what ran out, coded like a writer's failure on a local disk. A full disk is
 * retryable (space can be freed, and the job resumed); a read-only or failing one is not.
 */
export function diskError(err: unknown, file: string, op: string): SkybatchError {
  if (err instanceof SkybatchError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const why =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? `disk full while trying to ${op}`
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? `not writable (${code}) while trying to ${op}`
        : `${op} failed: ${(err as Error)?.message ?? String(err)}`;
  const full = code === 'ENOSPC' || code === 'EDQUOT';
  return new SkybatchError(code === 'EACCES' || code === 'EPERM' ? 'SKYBATCH_E_ACCESS_DENIED' : 'SKYBATCH_E_STORAGE', `${file}: ${why}`, { context: { path: file }, cause: err, retryable: full });
}

/** Writes all of `text` (a short write, as on a disk that fills up, is followed by the rest or by the error); returns the bytes written. */
export function writeAll(fd: number, text: string): number {
  const buf = Buffer.from(text);
  writeFully(fd, buf);
  return buf.length;
}
