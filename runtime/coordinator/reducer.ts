import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WinnerScope } from '../../formats/attempts.js';
import { SkybatchError } from '../../formats/common/errors.js';
import { forEachLine } from '../lines.js';
import type { JobSpec } from '../protocol.js';
import type { ReduceReport } from '../reduce-step.js';
import { readSpec } from '../store/job-store.js';

const REDUCE_PROCESS = fileURLToPath(new URL('../reduce-process.js', import.meta.url));

const REPORT_PREFIX = 'SKYBATCH_REDUCE ';

/**
 * Runs every writer's `reduceResults` then `cleanup` for a job, in a process of its own:
 * writers may be the user's classes, and user code never runs inside the coordinator. A job
 * whose writers are all built-in (and local) reduces in the coordinator's own process
 * instead (builtin-reduce.ts), and so does one whose user writers have no reduce step.
 * The same step serves a finished job and (`recover: true`) `skybatch recover`; it is
 * idempotent, and waits for another reduce of the same job to finish (see reduce-step.ts).
 */
export async function runReduce(
  jobId: string,
  onLine: (line: string) => void,
  opts: { cleanup?: boolean; recover?: boolean; inCoordinator?: JobSpec; mergedAhead?: WinnerScope['mergedAhead'] } = {},
): Promise<ReduceReport> {
  // Only the coordinator reduces in its own process; `recover` (the CLI, the VS Code
  // extension's host) starts a reduce process. It passes the spec it holds: job.json also
  // carries the reader's line index (MBs to parse).
  const spec = opts.inCoordinator ?? readSpec(jobId);
  if (opts.inCoordinator) {
    // loaded on first use: the writers (pngjs) and the reduce step stay out of the coordinator's start
    const { builtinWriters, reduceInProcess } = await import('./builtin-reduce.js');
    const builtin = await builtinWriters(spec);
    if (builtin) return reduceInProcess(spec, builtin, onLine, opts);
  }
  const args = ['--enable-source-maps', REDUCE_PROCESS, jobId, ...(opts.recover ? ['--recover'] : []), ...(opts.cleanup === false ? ['--no-cleanup'] : [])];
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...spec.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let errorJson = '';
  let report: ReduceReport | undefined;
  const tail: string[] = [];
  forEachLine(proc.stdout, (line) => {
    if (line.startsWith(REPORT_PREFIX)) report = JSON.parse(line.slice(REPORT_PREFIX.length)) as ReduceReport;
    else onLine(line);
  });
  forEachLine(proc.stderr, (line) => {
    if (line.startsWith('SKYBATCH_ERROR ')) errorJson = line.slice('SKYBATCH_ERROR '.length);
    else {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      onLine(line);
    }
  });
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  if (code === 0 && report) return report;
  if (errorJson) {
    const w = JSON.parse(errorJson) as { code: string; message: string; stack?: string };
    const err = new SkybatchError(w.code as never, w.message, { context: { jobId } });
    if (w.stack) err.stack = w.stack;
    throw err;
  }
  throw new SkybatchError('SKYBATCH_E_REDUCE', `job ${jobId}: the reduce step exited with code ${code}:\n${tail.join('\n')}`, { context: { jobId } });
}
