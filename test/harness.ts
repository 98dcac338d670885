import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinatorClient } from '../runtime/client/connection.js';
import type { JobEvent, PoolSummary } from '../runtime/protocol.js';

export type BatchEvent = Extract<JobEvent, { kind: 'batch' }>;

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'bin', 'skybatch.js');

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Waits for `probe` to return a value, polling; fails after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A private skybatch world for one test file: its own SKYBATCH_HOME, work folder and
 * pools, driven through the real CLI; `cleanup()` stops every process it started.
 */
export class Sandbox {
  readonly home: string;
  readonly dir: string;
  private readonly pools = new Set<string>();
  private readonly procs = new Set<ChildProcess>();

  constructor(name: string) {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), `skybatch-${name}-`));
    this.home = path.join(base, 'home');
    this.dir = path.join(base, 'work');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return { ...process.env, SKYBATCH_HOME: this.home, ...extra };
  }

  /** Starts the CLI; resolves when it exits. */
  cli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<Result> {
    const proc = this.spawnCli(args, opts);
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d) => (stdout += d));
    proc.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => killGroup(proc), opts.timeoutMs ?? 120_000);
    return new Promise((resolve) =>
      proc.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      }),
    );
  }

  spawnCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): ChildProcess {
    // its own process group: a CLI that hangs is killed with the script process it runs
    const proc = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? this.dir, env: this.env(opts.env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.procs.add(proc);
    proc.on('exit', () => this.procs.delete(proc));
    return proc;
  }

  file(rel: string, content: string | Buffer): string {
    const p = path.join(this.dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
    return p;
  }

  read(rel: string): string {
    return fs.readFileSync(path.join(this.dir, rel), 'utf8');
  }

  async applyPool(name: string, yaml: string, env?: Record<string, string>): Promise<Result> {
    const file = this.file(`${name}.pool.yaml`, yaml);
    this.pools.add(name);
    const r = await this.cli(['pool', 'apply', file, '--pool', name, '-y'], { env });
    if (r.code !== 0) throw new Error(`pool apply ${name} failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
    return r;
  }

  coordinator(pool: string): { url: string; pid: number; token: string } {
    const dir = path.join(this.home, 'pools', pool);
    const info = JSON.parse(fs.readFileSync(path.join(dir, 'coordinator.json'), 'utf8'));
    return { ...info, token: fs.readFileSync(path.join(dir, 'token'), 'utf8').trim() };
  }

  /** The pool's status, asked of its coordinator as a client asks (its pinned certificate too, for a wss:// pool). */
  async status(pool: string): Promise<PoolSummary> {
    const c = this.coordinator(pool) as { url: string; token: string; ca?: string };
    const client = await CoordinatorClient.connect(c.url, c.token, c.ca);
    try {
      return await client.request({ type: 'status' });
    } finally {
      client.close();
    }
  }

  /** A client of the pool's coordinator subscribed to every job's events, pushing the per-batch ones into `into`. Close it when done. */
  async watchBatches(pool: string, into: BatchEvent[]): Promise<CoordinatorClient> {
    const c = this.coordinator(pool) as { url: string; token: string; ca?: string };
    const client = await CoordinatorClient.connect(c.url, c.token, c.ca);
    client.onEvent((e) => e.kind === 'batch' && into.push(e));
    await client.request({ type: 'subscribe' });
    return client;
  }

  /** Pids of the pool's local worker processes (found by their working directory, adopted ones too). */
  workerPids(pool: string): number[] {
    const marker = path.join(this.home, 'pools', pool, 'workers') + '/';
    const out: number[] = [];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (cmd.includes('worker/main.js') && cmd.includes(marker) && stat[stat.lastIndexOf(')') + 2] !== 'Z') out.push(Number(d));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  run(script: string, env: Record<string, string> = {}, args: string[] = []): Promise<Result> {
    return this.cli(['run', script, ...args], { env });
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) killGroup(p);
    for (const pool of this.pools) {
      try {
        const { pid } = this.coordinator(pool);
        const workers = this.workerPids(pool);
        process.kill(pid, 'SIGTERM');
        await waitFor(`coordinator ${pool} to stop`, () => {
          try {
            process.kill(pid, 0);
            return undefined;
          } catch {
            return true;
          }
        }, 10_000).catch(() => process.kill(pid, 'SIGKILL'));
        for (const w of workers) {
          try {
            process.kill(w, 'SIGKILL');
          } catch {
            // gone
          }
        }
      } catch {
        // pool already down
      }
    }
    fs.rmSync(path.dirname(this.home), { recursive: true, force: true });
  }
}

/** A two-line mapper script for tests: `body` is the inside of the `for await` loop over `batch`. */
export function mapperScript(opts: { body: string; before?: string; prelude?: string; input: string; output: string; pool: string; batchSize?: number; extra?: string }): string {
  return `import * as sky from 'skybatch';
${opts.prelude ?? ''}
const mapper = sky.remoteFunction(async function mapper() {
  ${opts.before ?? ''}
  for await (const batch of sky.load()) {
    ${opts.body}
  }
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(opts.input)}));
const job = await ds.map(mapper, { poolName: ${JSON.stringify(opts.pool)}, batchSize: ${opts.batchSize ?? 2}, output: new sky.JsonWriter(${JSON.stringify(opts.output)}), retryBaseMs: 50 ${opts.extra ?? ''} });
console.log('RESULT', job.jobId, job.status);
`;
}

/** Mapper-script code that waits until `file` exists (the test's gate); the script must import `fs`. */
export function untilFileExists(file: string, pollMs = 50): string {
  return `while (!fs.existsSync(${JSON.stringify(file)})) await new Promise((r) => setTimeout(r, ${pollMs}));`;
}

export function jsonl(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

export function readJsonl(file: string): unknown[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** Every file under `dir`, relative, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

/** `promise`'s value, or undefined when it takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function killGroup(proc: ChildProcess): void {
  try {
    process.kill(-proc.pid!, 'SIGKILL');
  } catch {
    proc.kill('SIGKILL');
  }
}

/** Whether a process runs (a zombie does not). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** Live processes whose command line contains `marker` (optionally: children of `parents` only). */
export function pidsMatching(marker: string, parents?: number[]): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (!cmd.includes(marker) || fields[0] === 'Z') continue;
      if (parents && !parents.includes(Number(fields[1]))) continue;
      out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
