import { spawn, type ChildProcess } from 'node:child_process';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
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

/**
 * Runs `skybatch <args>` in a child Node process. In desktop VS Code the extension host's
 * `process.execPath` is Electron, which ELECTRON_RUN_AS_NODE turns into plain Node; in
 * code-server it is Node already and the variable is ignored. A child process also keeps
 * user code (readers, custom formats) and the engine's process-wide state (format
 * registries, mapper ids, module hooks) out of the extension host.
 */
export function runCli(cli: string, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const proc = spawn(process.execPath, [cli, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', FORCE_COLOR: '0', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  opts.onSpawn?.(proc);
  let stdout = '';
  let stderr = '';
  lines(proc.stdout, opts.onStdoutLine, (s) => (stdout += s));
  lines(proc.stderr, opts.onStderrLine, (s) => (stderr += s));
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 + 15 : 1), stdout, stderr }));
  });
}

/** The last `error [CODE]: message` the CLI printed, else the tail of stderr. */
export function cliError(r: CliResult): { code: string; message: string } {
  const m = /error \[([A-Z_]+)\]: ([\s\S]*)$/.exec(r.stderr);
  if (m) return { code: m[1], message: m[2].trim() };
  const tail = r.stderr.trim().split('\n').slice(-15).join('\n');
  return { code: 'SKYBATCH_E_SCRIPT', message: tail || `exited with code ${r.code}` };
}
