import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sandbox } from '../harness.js';

/**
 * Debian's python3 (with python3-pil and python3-numpy, which scripts/test.sh installs) is
 * /usr/bin/python3; a developer machine may put another python3 (pyenv) first on PATH.
 * Pools get this PATH from `pool apply`, as a pool started by hand would.
 */
export const DEBIAN_PYTHON_PATH = { PATH: `/usr/bin:${process.env.PATH}` };

export const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `t${i}` }));

/** Python mapper processes (`python -m skybatch._worker`) still running under `home`. */
export function pythonMappers(home: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('skybatch._worker')) continue;
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (fs.readlinkSync(`/proc/${d}/cwd`).startsWith(home) && stat[stat.lastIndexOf(')') + 2] !== 'Z') out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export interface PythonJobOptions {
  /** The function's name; default: the file's only remote function. */
  fn?: string;
  /** Input file under the sandbox folder (default in8.jsonl). */
  input?: string;
  batchSize?: number;
  /** More map() options, as source text starting with a comma. */
  extra?: string;
  /** The output writer(s), as source text; default a JsonWriter to `<name>/out.jsonl`. */
  output?: string;
}

/** Writes `name.py` and a `name.ts` that maps it over the input on `pool`; returns the script. */
export function pythonJob(sb: Sandbox, pool: string, name: string, py: string, opts: PythonJobOptions = {}): string {
  sb.file(`${name}.py`, py);
  const output = opts.output ?? `new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, name, 'out.jsonl'))})`;
  return sb.file(
    `${name}.ts`,
    `import * as sky from 'skybatch';
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, opts.input ?? 'in8.jsonl'))}));
const job = await ds.map(sky.pythonFunction('${name}.py'${opts.fn ? `, '${opts.fn}'` : ''}), { poolName: ${JSON.stringify(pool)}, batchSize: ${opts.batchSize ?? 2}, output: ${output}, retryBaseMs: 50 ${opts.extra ?? ''} });
console.log('RESULT', job.jobId, job.status);
`,
  );
}
