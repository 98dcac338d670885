import type { ChildProcess } from 'node:child_process';
import type { JobSpec } from '../protocol.js';
import type { MapperChild, MapperProc } from './mapper-supervisor.js';

const KILL_GRACE_MS = 3_000;
/** How long a next job waits for the warm process to return from the last one before it starts a fresh one. */
const WARM_WAIT_MS = 2_000;
/** How often a warm process waiting for a next job is asked whether it still answers; one that missed an answer is stopped. */
const WARM_PING_MS = 5_000;

/**
 * The mapper process a finished job left warm for a next job of the same bundle and
 * environment, and the warm processes stopped before it (a fresh process waits for them).
 */
export class WarmMapper {
  /** The process a finished job left for the next one (it may still be returning from that job). */
  host?: MapperProc;
  /**
   * Settles once the warm processes this supervisor stopped have exited. A fresh process
   * starts only after: a warm one may hold what the next needs (GPU memory, a port), which
   * a process that ended with its job had given back before the next job came.
   */
  private retired: Promise<void> = Promise.resolve();

  constructor(private readonly log: (line: string) => void) {}

  /** Settles once every warm process stopped so far has exited. */
  get exited(): Promise<void> {
    return this.retired;
  }

  /** Stops the warm process `warm`, and makes the next fresh start wait for its exit. */
  retire(warm: MapperProc): void {
    if (this.host === warm) this.host = undefined;
    stopPinging(warm);
    const gone = terminate(warm.proc);
    const before = this.retired;
    this.retired = Promise.all([before, gone]).then(() => {});
  }

  /** Runs job `spec` in the warm process `host`, which already imported its bundle. */
  reuse(host: MapperProc, child: MapperChild, spec: JobSpec, bundlePath: string, cacheDir: string): void {
    this.log(`job ${spec.jobId} runs in the warm mapper process ${host.proc.pid}`);
    stopPinging(host);
    host.idle = host.settleIdle = undefined;
    host.stderrTail = [];
    host.job = child;
    child.host = host;
    child.reused = true;
    host.send({ type: 'start', spec, bundlePath, cacheDir });
  }

  /**
   * A warm process holds what its job loaded (a model, GPU memory) until a next job comes,
   * which may be never: one that stops answering (hung, or stopped with SIGSTOP) is stopped
   * now rather than found out by the next job's batch timeout.
   */
  keepPinging(host: MapperProc): void {
    stopPinging(host);
    host.pinger = setInterval(() => {
      if (host.unanswered) {
        this.log(`stopping the warm mapper process ${host.proc.pid}: it did not answer for ${WARM_PING_MS / 1000} s (hung or stopped)`);
        this.retire(host);
        return;
      }
      host.unanswered = true;
      host.send({ type: 'ping' });
    }, WARM_PING_MS);
    host.pinger.unref();
  }
}

/**
 * Whether `warm` is ready for a next job: it returned from its last one. One still busy
 * returning after `WARM_WAIT_MS` is not waited for longer: it is stopped and a fresh
 * process starts.
 */
export function untilIdle(warm: MapperProc): Promise<boolean> {
  const idle = warm.idle ?? Promise.resolve(false);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), WARM_WAIT_MS)));
  return Promise.race([idle, late]).then((ok) => {
    clearTimeout(timer);
    return ok;
  });
}

export function stopPinging(host: MapperProc): void {
  if (host.pinger) clearInterval(host.pinger);
  host.pinger = undefined;
  host.unanswered = false;
}

/** SIGTERM, then SIGKILL after a grace; settles once the process exited. */
export function terminate(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  proc.kill('SIGCONT'); // a stopped process acts on SIGTERM only once it runs
  const timer = setTimeout(() => proc.kill('SIGKILL'), KILL_GRACE_MS);
  proc.once('exit', () => clearTimeout(timer));
  return exited;
}
