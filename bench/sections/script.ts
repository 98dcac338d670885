import * as path from 'node:path';
import { ROOT, type Sandbox } from '../../test/harness.js';

export const SCRIPTS = path.join(ROOT, 'bench', 'scripts');

/** Runs a bench script with `skybatch run` and returns the JSON object of its last stdout line. */
export async function runScript<T>(sb: Sandbox, name: string, env: Record<string, string>, timeoutMs = 30 * 60_000): Promise<T> {
  const r = await sb.cli(['run', path.join(SCRIPTS, name)], { env, timeoutMs });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !last.startsWith('{')) throw new Error(`bench/scripts/${name} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-1000)}`);
  return JSON.parse(last) as T;
}
