import { spawn, type ChildProcess } from 'node:child_process';
import type { WireError } from '../formats/common/errors.js';
import type { Engine } from './engine.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** What the CLI (or the script `skybatch run` ran) reported on its error channel. */
  error?: WireError;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string>;
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
  onSpawn?: (proc: ChildProcess) => void;
}

function lines(stream: NodeJS.ReadableStream | null, each: ((l: string) => void) | undefined, all: (s: string) => void): void {
  let rest = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    all(chunk);
    rest += chunk;
    const parts = rest.split('\n');
    rest = parts.pop()!;
    for (const p of parts) each?.(p);
  });
  stream?.on('end', () => rest && each?.(rest));
}

/** The child's fd for its error channel (runtime/control/error-channel.ts). */
const ERROR_FD = 3;

/**
 * Runs `skybatch <args>` in a child Node process. In desktop VS Code the extension host's
 * `process.execPath` is Electron, which ELECTRON_RUN_AS_NODE turns into plain Node; in
 * code-server it is Node already and the variable is ignored. A child process also keeps
 * user code (readers, custom formats) and the engine's process-wide state (format
 * registries, mapper ids, module hooks) out of the extension host. Its failure comes back
 * as a structured error on a pipe of its own (fd 3), not as text on stderr.
 */
export function runCli(engine: Pick<Engine, 'cli' | 'errors'>, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const proc = spawn(process.execPath, [engine.cli, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', FORCE_COLOR: '0', ...opts.env, [engine.errors.ERROR_FD_ENV]: String(ERROR_FD) },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  opts.onSpawn?.(proc);
  let stdout = '';
  let stderr = '';
  let channel = '';
  lines(proc.stdout, opts.onStdoutLine, (s) => (stdout += s));
  lines(proc.stderr, opts.onStderrLine, (s) => (stderr += s));
  lines(proc.stdio[ERROR_FD] as NodeJS.ReadableStream, undefined, (s) => (channel += s));
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      const error = engine.errors.readReportedError(channel);
      resolve({ code: code ?? (signal ? 128 + 15 : 1), stdout, stderr, ...(error ? { error } : {}) });
    });
  });
}

/**
 * The CLI's failure: what it reported on its error channel; else (it crashed, or was
 * killed, before it could) the tail of its stderr.
 */
export function cliError(r: CliResult): Pick<WireError, 'code' | 'message'> & Partial<WireError> {
  if (r.error) return r.error;
  const tail = r.stderr.trim().split('\n').slice(-15).join('\n');
  return { code: 'SKYBATCH_E_SCRIPT', message: tail || `exited with code ${r.code}` };
}
