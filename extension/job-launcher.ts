import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EVENT_PREFIX } from '../runtime/job-events.js';
import { importSite } from '../runtime/import-site.js';
import type { JobEvent } from '../runtime/protocol.js';
import { cliError, runCli } from './cli-process.js';
import type { JobScript } from './core/job-script.js';
import { withoutMarkers } from './core/cell-console.js';
import type { Engine } from './engine.js';

export interface LaunchOptions {
  engine: Pick<Engine, 'cli' | 'errors'>;
  notebookPath: string;
  script: JobScript;
  env?: Record<string, string>;
  /** Where to write the script (default `scriptPathFor(notebookPath)`): a cell run uses its own, so it never meets a running job's. */
  scriptPath?: string;
  onEvent: (e: JobEvent) => void;
  onOutput: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface LaunchResult {
  code: number;
  /** The script's failure as the CLI or Node printed it, when it exited non-zero. */
  error?: { code: string; message: string; scriptLine?: number; stack?: string };
}

/** The generated script's path: hidden, next to the notebook, so relative imports and paths mean what they mean in the notebook. */
export function scriptPathFor(notebookPath: string): string {
  return path.join(path.dirname(notebookPath), `.${path.basename(notebookPath)}.ts`);
}

/**
 * Runs a notebook's generated script as `skybatch run` with `SKYBATCH_EVENTS=jsonl`, so
 * the engine's own `Dataset.map` bundles it, submits it and reports every job event as a
 * `SKYBATCH_EVENT {json}` line. The script is removed when the run ends.
 */
export class JobLauncher {
  private proc?: ChildProcess;
  private killed = false;
  readonly scriptPath: string;

  constructor(private readonly opts: LaunchOptions) {
    this.scriptPath = opts.scriptPath ?? scriptPathFor(opts.notebookPath);
  }

  async run(): Promise<LaunchResult> {
    const python = this.opts.script.python && path.join(path.dirname(this.scriptPath), this.opts.script.python.file);
    fs.writeFileSync(this.scriptPath, this.opts.script.code);
    // The script reads it when it submits the job (sky.pythonFunction), so it goes with the script.
    if (python) fs.writeFileSync(python, this.opts.script.python!.source);
    try {
      const r = await runCli(this.opts.engine, ['run', this.scriptPath], {
        cwd: path.dirname(this.opts.notebookPath),
        env: { SKYBATCH_EVENTS: 'jsonl', ...this.opts.env },
        onSpawn: (p) => {
          this.proc = p;
          if (this.killed) p.kill('SIGTERM');
        },
        onStdoutLine: (line) => {
          if (line.startsWith(EVENT_PREFIX)) {
            let e: JobEvent | undefined;
            try {
              e = JSON.parse(line.slice(EVENT_PREFIX.length)) as JobEvent;
            } catch {
              this.opts.onOutput(line, 'stdout');
            }
            if (e) this.opts.onEvent(e);
          } else {
            this.opts.onOutput(line, 'stdout');
          }
        },
        onStderrLine: (line) => this.opts.onOutput(line, 'stderr'),
      });
      if (r.code === 0) return { code: 0 };
      const error = cliError({ ...r, stderr: withoutMarkers(r.stderr) });
      const missing = this.missingPackage(error.message);
      if (missing) return { code: r.code, error: missing };
      return { code: r.code, error: { code: error.code, message: error.message, stack: error.stack, scriptLine: error.stack ? this.scriptLine(error.stack) : undefined } };
    } finally {
      fs.rmSync(this.scriptPath, { force: true });
      if (python) fs.rmSync(python, { force: true });
    }
  }

  /** Stops the script before it submitted anything (bundling, reading the input length). */
  kill(): void {
    this.killed = true;
    this.proc?.kill('SIGTERM');
  }

  /**
   * Node's own error for a package the script imports statically and that is not installed
   * (the script fails to load, before the engine sees anything): as SKYBATCH_E_PACKAGE_MISSING
   * with the import's line, so it lands on the cell and line that import it, and the fix.
   */
  private missingPackage(text: string): LaunchResult['error'] | undefined {
    const m = /Cannot find package '([^']+)' imported from (.+?)\s*$/m.exec(text);
    if (!m || path.resolve(m[2].replace(/^file:\/\//, '')) !== path.resolve(this.scriptPath)) return undefined;
    const name = m[1].startsWith('@') ? m[1].split('/').slice(0, 2).join('/') : m[1].split('/')[0];
    const site = importSite(this.opts.script.code, name);
    const dir = path.dirname(this.scriptPath);
    const message = `package '${name}' is not installed in ${dir} or the folders above it. Install it there: cd ${JSON.stringify(dir)} && npm install ${name}`;
    const frame = site ? `\n    at ${this.scriptPath}:${site.line + 1}:${site.column + 1}` : '';
    return { code: 'SKYBATCH_E_PACKAGE_MISSING', message, scriptLine: site?.line, stack: `SkybatchError [SKYBATCH_E_PACKAGE_MISSING]: ${message}${frame}` };
  }

  /** The generated script's line (0-based) that the first frame in it names. */
  private scriptLine(stack: string): number | undefined {
    const base = path.basename(this.scriptPath);
    for (const line of stack.split('\n')) {
      const i = line.indexOf(`${base}:`);
      if (i >= 0) return Number.parseInt(line.slice(i + base.length + 1), 10) - 1;
    }
    return undefined;
  }
}
