import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const LOCKFILES = ['package-lock.json', 'npm-shrinkwrap.json', 'pnpm-lock.yaml', 'yarn.lock', 'bun.lock', 'bun.lockb'];

/**
 * The user's project around a script: the nearest folder with a package.json (or a
 * node_modules), and the nearest lockfile at or above it (a workspace keeps one at its root).
 */
export function projectOf(script: string): { root?: string; lockfile?: { path: string; sha256: string } } {
  let root: string | undefined;
  for (let dir = path.dirname(script); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) || fs.existsSync(path.join(dir, 'node_modules'))) {
      root = dir;
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  if (!root) return {};
  for (let dir = root; ; dir = path.dirname(dir)) {
    for (const name of LOCKFILES) {
      const file = path.join(dir, name);
      if (fs.existsSync(file)) return { root, lockfile: { path: file, sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex') } };
    }
    if (path.dirname(dir) === dir) return { root };
  }
}
