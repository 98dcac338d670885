import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkybatchError } from '../../formats/common/errors.js';
import { errorFd } from '../control/error-channel.js';

const REGISTER_HOOKS = new URL('./register-hooks.js', import.meta.url).href;

/**
 * `skybatch run script.ts [args]`: runs a TypeScript (or JavaScript) script with top-level
 * await and no build step (tsx), with `import 'skybatch'` resolving to this installation.
 * Resolves with the script's exit code.
 */
export async function runScript(script: string, args: string[]): Promise<number> {
  const file = path.resolve(script);
  if (!fs.existsSync(file)) throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `script ${file} does not exist`, { context: { path: file } });
  const tsx = import.meta.resolve('tsx');
  // The script reports its own uncaught error on the caller's error channel (register-hooks.ts).
  const fd = errorFd();
  const stdio = Array.from({ length: Math.max(3, (fd ?? 0) + 1) }, (_, i) => (i < 3 ? 'inherit' : i === fd ? fd : 'ignore'));
  const child = spawn(process.execPath, ['--enable-source-maps', '--import', tsx, '--import', REGISTER_HOOKS, file, ...args], { stdio });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 2 : 1))));
}
