import { ChildProcess, spawn } from 'node:child_process';
import { SkybatchError } from '../../formats/common/errors.js';
import { forEachLine } from '../lines.js';

/** After SIGTERM, how long a timed-out setup's process group gets before SIGKILL. */
const TERM_GRACE_MS = 2000;
/** Output can trail the exit of `bash`; wait this long for the pipes to close. */
const OUTPUT_GRACE_MS = 500;

export interface SetupOptions {
  script: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  worker: string;
  onLine: (stream: 'stdout' | 'stderr', line: string) => void;
}

/**
 * One run of a pool's `setup`, in a process group of its own so that everything it starts
 * (a package manager, a download in the background) can be stopped with it: on timeout,
 * when the worker stops, or when a new `setup` replaces it.
 */
export class SetupProcess {
  /** Resolves with the error that failed setup, or undefined when it succeeded. */
  readonly result: Promise<SkybatchError | undefined>;
  private readonly proc: ChildProcess;
  private exited = false;
  private stopping?: 'timeout' | 'stopped';

  constructor(private readonly opts: SetupOptions) {
    this.proc = spawn('bash', ['-c', opts.script], { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const tail: string[] = [];
    const onLine = (stream: 'stdout' | 'stderr') => (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      opts.onLine(stream, line);
    };
    forEachLine(this.proc.stdout, onLine('stdout'));
    forEachLine(this.proc.stderr, onLine('stderr'));
    const timer = setTimeout(() => this.stop('timeout'), opts.timeoutMs);
    this.result = new Promise((resolve) => {
      let settled = false;
      const settle = (code: number | null, signal: NodeJS.Signals | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(this.outcome(code, signal, tail));
      };
      this.proc.on('error', (err) => {
        tail.push(err.message);
        settle(null, null);
      });
      // A daemon started by setup may keep the pipes open: the exit of bash decides.
      this.proc.on('exit', (code, signal) => {
        this.exited = true;
        const grace = setTimeout(() => settle(code, signal), OUTPUT_GRACE_MS);
        this.proc.on('close', () => {
          clearTimeout(grace);
          settle(code, signal);
        });
      });
    });
  }

  private outcome(code: number | null, signal: NodeJS.Signals | null, tail: string[]): SkybatchError | undefined {
    if (code === 0 && !this.stopping) return undefined;
    const { worker, timeoutMs } = this.opts;
    const output = tail.length ? `; last output:\n${tail.join('\n')}` : '';
    const why =
      this.stopping === 'timeout'
        ? `did not finish within ${timeoutMs / 1000} s (setup_timeout in the pool file); it was stopped with every process it started`
        : this.stopping === 'stopped'
          ? 'was stopped before it finished'
          : signal
            ? `was killed by ${signal}`
            : `exited with code ${code}`;
    return new SkybatchError('SKYBATCH_E_SETUP_FAILED', `setup on worker ${worker} ${why}${output}`, { context: { worker } });
  }

  /**
   * Stops setup and every process in its group: SIGTERM then SIGKILL on timeout; at once
   * with SIGKILL otherwise (the worker is going away and must not leave it behind).
   */
  stop(why: 'timeout' | 'stopped' = 'stopped'): void {
    if (this.exited || this.stopping) {
      if (!this.exited) this.signal('SIGKILL');
      return;
    }
    this.stopping = why;
    if (why === 'stopped') {
      this.signal('SIGKILL');
      return;
    }
    this.signal('SIGTERM');
    this.signal('SIGCONT');
    setTimeout(() => this.signal('SIGKILL'), TERM_GRACE_MS).unref();
  }

  get running(): boolean {
    return !this.exited;
  }

  private signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.proc.pid!, sig);
    } catch {
      // the group is gone
    }
  }
}
