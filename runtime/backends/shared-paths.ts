import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkybatchError } from '../../formats/common/errors.js';
import type { PoolConfig } from '../pool-config.js';
import type { JobRequest } from '../protocol.js';

/** Whether a pool's workers run on machines other than the coordinator's. */
export function hasRemoteWorkers(config: PoolConfig): boolean {
  return config.pool.backend === 'ssh' || config.pool.backend === 'slurm';
}

/** The absolute local path a reader or writer path names, or undefined for a URL (s3://, gs://, ...) or no path. */
export function localPathOf(p: string, cwd: string): string | undefined {
  if (!p) return undefined;
  if (p.startsWith('file://')) return fileURLToPath(p);
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(p)) return undefined;
  return path.resolve(cwd, p);
}

/**
 * Refuses a job whose input or outputs are paths on the coordinator's machine when the
 * pool's workers run elsewhere: they would read nothing, or write where nobody looks. A
 * folder every host mounts at the same path (`pool.shared_fs`) is allowed.
 */
export function assertWorkersCanReach(req: Pick<JobRequest, 'reader' | 'writers' | 'cwd'>, config: PoolConfig, pool: string): void {
  if (!hasRemoteWorkers(config)) return;
  const shared = config.pool.shared_fs;
  const machines = config.pool.backend === 'slurm' ? `Slurm jobs${config.slurm?.partition ? ` in partition ${config.slurm.partition}` : ''}` : `ssh: ${(config.hosts ?? []).map((h) => h.name ?? h.address).join(', ')}`;
  const where = `pool '${pool}' runs its workers on other machines (${machines})`;
  const uses: [string, string][] = [['input', req.reader.path], ...req.writers.map((w, i): [string, string] => [req.writers.length > 1 ? `output ${i + 1}` : 'output', w.path])];
  for (const [field, p] of uses) {
    const local = localPathOf(p, req.cwd);
    if (local === undefined) continue;
    if (shared && isInside(local, shared)) continue;
    const fix = shared
      ? `which see only pool.shared_fs (${shared}) of this machine's files: keep the data under it, or use s3:// or gs:// paths`
      : "which cannot read this machine's files: use s3:// or gs:// paths, or declare a folder every host mounts at the same path as pool.shared_fs in the pool file and keep the data under it";
    throw new SkybatchError('SKYBATCH_E_PATH_NOT_SHARED', `job refused: its ${field} ${p} is a path on this machine${shared ? ` outside pool.shared_fs` : ''}, and ${where}, ${fix}`, {
      context: { path: p, field: field.startsWith('output') ? 'output' : 'input' },
    });
  }
}

function isInside(p: string, dir: string): boolean {
  const rel = path.relative(path.resolve(dir), p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
