import { createRequire, register } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SkybatchError } from '../formats/common/errors.js';
import type { BundleHeader } from './bundle-header.js';
import { PACKAGE_API_URL } from './package-api.js';
import { isInstalledFor, isPackageSpecifier, packageMissing, resolveBases, type HookData } from './package-hooks.js';

export const HOST_KEY = Symbol.for('skybatch.host');

interface ImportMeta {
  url: string;
  filename: string;
  dirname: string;
  main: boolean;
  resolve(specifier: string): string;
}

/** "worker local-0", or where a reduce step runs. */
function who(): string {
  return process.env.SKYBATCH_WORKER ? `worker ${process.env.SKYBATCH_WORKER}` : `the reduce step of job ${process.env.SKYBATCH_JOB_ID ?? '?'}`;
}

/**
 * Makes a host process resolve the packages of a job's bundle as the user's script does
 * (see package-hooks.ts): ESM imports through resolve hooks, CommonJS `require` (the
 * bundle's banner reads it from here) through a require rooted at the script, and
 * `import.meta` of the user's files (rewritten by the client, see import-meta.ts).
 */
export function installHost(bundleFile: string, header: BundleHeader, runtime: object): void {
  const entryUrl = pathToFileURL(header.entry).href;
  const cwdUrl = pathToFileURL(path.join(process.cwd(), 'noop.js')).href;
  const shipped = process.env.SKYBATCH_PACKAGES;
  const packagesUrl = shipped ? pathToFileURL(path.join(shipped, 'noop.js')).href : undefined;
  const data: HookData = { bundleUrl: pathToFileURL(bundleFile).href, entryUrl, cwdUrl, ...(packagesUrl ? { packagesUrl } : {}), runtimeUrl: PACKAGE_API_URL, who: who() };
  // The hooks run in a thread of their own, which costs a process ~0.2 s to start: only bundles that import packages as ES modules need them.
  if (header.esmImports !== false) {
    if (typeof register !== 'function') {
      throw new SkybatchError('SKYBATCH_E_SCRIPT_LOAD', `the job's script imports packages, which ${who()} resolves with module.register(): Node ${process.version} lacks it; use Node 20.6 or newer`);
    }
    register(new URL('./package-hooks.js', import.meta.url), { data });
  }
  (globalThis as Record<symbol, unknown>)[HOST_KEY] = { require: requireFor(data, runtime), meta: metaFor() };
}

function requireFor(d: HookData, runtime: object): NodeJS.Require {
  const urls = resolveBases(d);
  const bases = urls.map((u) => createRequire(u));
  const find = <T>(id: string, how: (r: NodeJS.Require) => T): T => {
    let first: unknown;
    for (const [i, r] of bases.entries()) {
      try {
        return how(r);
      } catch (err) {
        first ??= err;
        const from = urls[i];
        if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND' || !isPackageSpecifier(id) || isInstalledFor(id, from)) throw err;
      }
    }
    throw isPackageSpecifier(id) ? asPackageError(packageMissing(id, d)) : first;
  };
  const req = ((id: string) => (id === 'skybatch' ? runtime : find(id, (r) => r(id)))) as NodeJS.Require;
  req.resolve = ((id: string, opts?: { paths?: string[] }) => find(id, (r) => r.resolve(id, opts))) as NodeJS.RequireResolve;
  req.resolve.paths = (id: string) => bases[0].resolve.paths(id);
  req.cache = bases[0].cache;
  req.extensions = bases[0].extensions;
  req.main = bases[0].main;
  return req;
}

function metaFor(): (url: string) => ImportMeta {
  const cache = new Map<string, ImportMeta>();
  return (url) => {
    let m = cache.get(url);
    if (!m) {
      const filename = fileURLToPath(url);
      const req = createRequire(url);
      m = {
        url,
        filename,
        dirname: path.dirname(filename),
        main: false,
        resolve: (s) => (isPackageSpecifier(s) ? pathToFileURL(req.resolve(s)).href : new URL(s, url).href),
      };
      cache.set(url, m);
    }
    return m;
  };
}

/** A missing package reported by the resolve hooks (another thread: only the code survives) as the SkybatchError it is. */
export function asPackageError(err: unknown): unknown {
  if (err instanceof SkybatchError || (err as { code?: string } | undefined)?.code !== 'SKYBATCH_E_PACKAGE_MISSING') return err;
  return new SkybatchError('SKYBATCH_E_PACKAGE_MISSING', (err as Error).message, { cause: err });
}
