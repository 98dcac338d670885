/**
 * Module resolve hooks of a host process (a worker's mapper process, a reduce step),
 * registered by host-packages.ts before it imports a job's bundle. The bundle lives in the
 * worker's folder, but the packages its code imports are the user's: a bare specifier
 * imported by the bundle resolves as if imported by the user's script (so from the user's
 * project, symlinks and all), then from the worker's own folder (where a pool's `setup`
 * may install packages). `skybatch` is always this host's runtime.
 */
import * as fs from 'node:fs';
import { isBuiltin } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface HookData {
  bundleUrl: string;
  entryUrl: string;
  cwdUrl: string;
  /** The job's packages shipped to this host (`SKYBATCH_PACKAGES`), tried after the project and before the worker's folder. */
  packagesUrl?: string;
  runtimeUrl: string;
  /** "worker local-0", for messages. */
  who: string;
}

interface Context {
  parentURL?: string;
  conditions?: string[];
  [k: string]: unknown;
}
type NextResolve = (specifier: string, context: Context) => Promise<{ url: string; format?: string | null; shortCircuit?: boolean }>;

let data: HookData | undefined;

export async function initialize(d: HookData): Promise<void> {
  data = d;
}

export async function resolve(specifier: string, context: Context, next: NextResolve): Promise<{ url: string; format?: string | null; shortCircuit?: boolean }> {
  if (!data) return next(specifier, context);
  if (specifier === 'skybatch') return { url: data.runtimeUrl, format: 'module', shortCircuit: true };
  if (context.parentURL !== data.bundleUrl || !isPackageSpecifier(specifier) || isBuiltin(specifier)) return next(specifier, context);
  for (const parentURL of resolveBases(data)) {
    try {
      return await next(specifier, { ...context, parentURL });
    } catch (err) {
      // A package that is there but broken (a file missing inside it) is its own error, not "missing".
      if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND' || isInstalledFor(specifier, parentURL)) throw err;
    }
  }
  throw packageMissing(specifier, data);
}

/** Where a job's bare imports resolve from, in order: the user's script, the packages shipped to this host, the worker's folder. */
export function resolveBases(d: Pick<HookData, 'entryUrl' | 'packagesUrl' | 'cwdUrl'>): string[] {
  return d.packagesUrl ? [d.entryUrl, d.packagesUrl, d.cwdUrl] : [d.entryUrl, d.cwdUrl];
}

export function isPackageSpecifier(s: string): boolean {
  return !/^(\.|\/|[a-z][a-z0-9+.-]*:)/i.test(s);
}

/** Whether `node_modules/<package>` exists in the folder of `fromUrl` or above it (or `#imports` and self-references: always). */
export function isInstalledFor(specifier: string, fromUrl: string): boolean {
  if (specifier.startsWith('#')) return true;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  for (let dir = path.dirname(fileURLToPath(fromUrl)); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'node_modules', name))) return true;
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === name) return true;
    } catch {
      // no package.json here
    }
    if (path.dirname(dir) === dir) return false;
  }
}

export function packageMissing(specifier: string, d: Pick<HookData, 'entryUrl' | 'cwdUrl' | 'packagesUrl' | 'who'>): Error & { code: string } {
  const entry = fileURLToPath(d.entryUrl);
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  const project = path.dirname(entry);
  const here = fs.existsSync(project);
  const where = here ? `in ${project} or the folders above it` : `because the script's folder ${project} does not exist on this machine`;
  const shipped = d.packagesUrl ? `, nor among the project's packages copied to this host (${path.dirname(fileURLToPath(d.packagesUrl))})` : '';
  const fix = here
    ? `Install it in the script's project (npm install ${name}), or, for workers on another machine, install the project's packages there in the pool's setup.`
    : `This worker runs on another machine than the script: skybatch copies there the packages installed in the script's project, and '${name}' is not one of them. Install it in the project (npm install ${name}), or on the hosts in the pool's setup (packages in the worker's folder are found too, e.g. setup: npm install ${name}), or keep the project in a folder every host mounts (pool.shared_fs).`;
  const err = new Error(`package '${name}', imported by the job's script ${entry}, cannot be found on ${d.who}: not installed ${where}${shipped}, nor in the worker's folder ${path.dirname(fileURLToPath(d.cwdUrl))}. ${fix}`) as Error & {
    code: string;
  };
  err.code = 'SKYBATCH_E_PACKAGE_MISSING';
  return err;
}
