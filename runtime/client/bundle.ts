import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { isBuiltin } from 'node:module';
import * as path from 'node:path';
import type { Plugin } from 'esbuild';
import { SkybatchError } from '../../formats/common/errors.js';
import { headerLine, type BundleHeader } from '../bundle-header.js';
import { RUNTIME_KEY } from '../bundle-loader.js';
import { loadPackageApi } from '../package-api.js';
import { buildId } from '../build-id.js';
import { skybatchHome } from '../store/pool-store.js';
import { projectOf } from './project.js';
import type { FormatRoot, MapperRoot } from './prune.js';

export interface Bundle {
  code: string;
  hash: string;
  /** Things to tell the user at submission (see PruneResult.notes). */
  notes: string[];
}

export interface BundleRequest {
  /** The user's script. */
  entry: string;
  /**
   * The job's mapper: its name, where it was created, and which of the mappers created there.
   * Absent for a Python mapper (`pythonFunction`), which is not in the script.
   */
  mapper?: MapperRoot & { ordinal: number };
  /** The reader and writer types of the job. */
  formats: FormatRoot[];
  /** Bare specifiers to leave external even if they resolve to the user's own source. */
  external?: string[];
}

const cache = new Map<string, Promise<Bundle>>();

/**
 * Bundles what workers run of the user's script into one ESM file: the user's own source
 * (the entry pruned to what the job needs, see prune.ts, and the modules it imports by
 * path), with every package left external. Hosts resolve those packages from the user's
 * script, as the user's own run does (runtime/host-packages.ts), so native addons,
 * packages that read files next to their code and symlinked layouts load from where they
 * are installed. `skybatch` itself resolves to the runtime of the host that loads the bundle.
 */
export function bundleScript(req: BundleRequest): Promise<Bundle> {
  const key = JSON.stringify(req);
  let p = cache.get(key);
  if (!p) {
    p = cachedBuild(req);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** One file (or folder) the bundle was built from, as it was then; `missing` for one whose appearing would change the build. */
interface InputStamp {
  file: string;
  size?: number;
  mtimeNs?: string;
  ctimeNs?: string;
  missing?: true;
}

interface CachedBundle extends Bundle {
  inputs: InputStamp[];
}

function stamp(file: string): InputStamp {
  try {
    const st = fs.statSync(file, { bigint: true });
    return { file, size: Number(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
  } catch {
    return { file, missing: true };
  }
}

/** The code that turns a script into a bundle: a rebuilt skybatch whose bundler changed must not serve old bundles. */
const BUNDLER_FILES = ['./bundle.js', './prune.js', './script-ast.js', './import-meta.js', '../bundle-header.js', '../../index.js'];

/**
 * Files besides esbuild's inputs whose change could change the bundle: the folders of the
 * inputs (a file added next to one can change what an import resolves to), and every
 * package.json, tsconfig.json and jsconfig.json from the entry's folder up (resolution,
 * `paths`, module type), present or not; the project's lockfile (installed packages).
 */
function watchedFiles(entry: string, inputs: string[], lockfile: string | undefined): string[] {
  const out = new Set<string>(inputs);
  for (const f of inputs) out.add(path.dirname(f));
  for (let dir = path.dirname(entry); ; dir = path.dirname(dir)) {
    for (const name of ['package.json', 'tsconfig.json', 'jsconfig.json']) out.add(path.join(dir, name));
    if (path.dirname(dir) === dir) break;
  }
  if (lockfile) out.add(lockfile);
  return [...out];
}

/**
 * A repeated run of an unchanged script reuses its bundle from `$SKYBATCH_HOME/cache/bundles`
 * instead of parsing, pruning and bundling again (about 0.15 s of every `map()`, with
 * @babel/parser and esbuild loaded only for a build). An entry is keyed by the request, the
 * project and skybatch's bundler code, and serves only while every file esbuild read (its
 * metafile inputs) and `watchedFiles` have the size, mtime and ctime they had, or are
 * still missing.
 */
async function cachedBuild(req: BundleRequest): Promise<Bundle> {
  const entry = fs.realpathSync(req.entry);
  const project = projectOf(entry);
  const key = createHash('sha256').update(JSON.stringify([buildId(), entry, req, project]));
  for (const f of BUNDLER_FILES) key.update(fs.readFileSync(new URL(f, import.meta.url)));
  const dir = path.join(skybatchHome(), 'cache', 'bundles');
  const file = path.join(dir, `${key.digest('hex')}.json`);
  try {
    const hit = JSON.parse(fs.readFileSync(file, 'utf8')) as CachedBundle;
    const same = hit.inputs.every((was) => JSON.stringify(stamp(was.file)) === JSON.stringify(was));
    if (same && createHash('sha256').update(hit.code).digest('hex') === hit.hash) return { code: hit.code, hash: hit.hash, notes: hit.notes };
  } catch {
    // no entry, or a torn one: build
  }
  // Stamped before the build: a file changed while esbuild reads it fails the next run's check.
  const before = new Map<string, InputStamp>();
  const { bundle, inputs } = await build(req, (f) => before.set(f, stamp(f)));
  const stamps = watchedFiles(entry, inputs, project.lockfile?.path).map((f) => before.get(f) ?? stamp(f));
  try {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ ...bundle, inputs: stamps } satisfies CachedBundle));
    fs.renameSync(tmp, file);
    trimCache(dir);
  } catch {
    // a cache that cannot be written only costs the next run a build
  }
  return bundle;
}

/** How many bundles the cache keeps: every edit of a script adds one. */
export const BUNDLE_CACHE_ENTRIES = 200;

/** Drops the oldest entries (by when they were built) beyond `BUNDLE_CACHE_ENTRIES`. */
function trimCache(dir: string): void {
  const names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
  if (names.length <= BUNDLE_CACHE_ENTRIES) return;
  const byAge = names.map((n) => ({ n, at: fs.statSync(path.join(dir, n)).mtimeMs })).sort((a, b) => a.at - b.at);
  for (const { n } of byAge.slice(0, names.length - BUNDLE_CACHE_ENTRIES)) fs.rmSync(path.join(dir, n), { force: true });
}

const BANNER = `const require = globalThis[Symbol.for('skybatch.host')]?.require ?? ((id) => { throw new Error('this bundle runs inside a skybatch host process only (require ' + id + ')'); });`;
const INNER = Symbol('skybatch-resolve');
const HEADER_SLOT = '// skybatch-bundle-header';

async function build(req: BundleRequest, reading: (file: string) => void = () => {}): Promise<{ bundle: Bundle; inputs: string[] }> {
  // Loaded here, not at the top: every host process imports this module through the package
  // API, and @babel/parser alone cost a mapper process's start about 0.15 s of CPU.
  const [esbuild, { pruneEntry }, { rewriteImportMeta }] = await Promise.all([import('esbuild'), import('./prune.js'), import('./import-meta.js')]);
  const entry = fs.realpathSync(req.entry);
  // Pruning first, outside esbuild, so its errors reach the user as they are.
  reading(entry);
  const pruned = pruneEntry(entry, fs.readFileSync(entry, 'utf8'), req.mapper, req.formats);
  const project = projectOf(entry);
  const external = new Set(req.external ?? []);
  const imported = new Map<string, Set<string>>(); // package specifier → how it is imported (esbuild's import kinds)
  const runtime = await loadPackageApi();
  const names = Object.keys(runtime).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
  const key = RUNTIME_KEY.description;
  const shim: Plugin = {
    name: 'skybatch-runtime',
    setup(b) {
      b.onResolve({ filter: /^skybatch$/ }, () => ({ path: 'skybatch', namespace: 'skybatch-runtime' }));
      b.onLoad({ filter: /.*/, namespace: 'skybatch-runtime' }, () => ({
        loader: 'js',
        contents:
          `const sky = globalThis[Symbol.for(${JSON.stringify(key)})];\n` +
          `if (!sky) throw new Error('this bundle runs inside a skybatch host process only');\n` +
          names.map((n) => `export const ${n} = sky.${n};`).join('\n') +
          '\nexport default sky;\n',
      }));
    },
  };
  const packages: Plugin = {
    name: 'skybatch-packages',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === INNER || args.namespace !== 'file') return undefined;
        if (isBuiltin(args.path)) return { path: args.path, external: true };
        const leave = () => {
          imported.set(args.path, (imported.get(args.path) ?? new Set()).add(args.kind));
          return { path: args.path, external: true };
        };
        if (external.has(packageName(args.path)) || external.has(args.path)) return leave();
        const r = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: INNER });
        // Not installed here (maybe only where the workers are), or an installed package: the host resolves it.
        if (r.errors.length || r.external || !r.path || isInstalled(r.path)) return leave();
        // The user's own source under a package name (a workspace link, a tsconfig path): bundled like any of their files.
        return { path: r.path, namespace: r.namespace, sideEffects: r.sideEffects };
      });
    },
  };
  const source: Plugin = {
    name: 'skybatch-source',
    setup(b) {
      b.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (args) => {
        if (args.namespace !== 'file' || isInstalled(args.path)) return undefined;
        const isEntry = args.path === entry;
        if (!isEntry) reading(args.path);
        const text = isEntry ? pruned.code : await fs.promises.readFile(args.path, 'utf8');
        if (!isEntry && !text.includes('import.meta')) return undefined;
        return { contents: rewriteImportMeta(text, args.path), loader: loaderFor(args.path), resolveDir: path.dirname(args.path) };
      });
    },
  };
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      outfile: path.join(path.dirname(entry), '__skybatch_bundle.mjs'),
      sourcemap: 'external',
      sourcesContent: false,
      keepNames: true, // mapper ids include the function's name
      metafile: true,
      logLevel: 'silent',
      plugins: [shim, packages, source],
      banner: { js: `${HEADER_SLOT}\n${BANNER}` },
    });
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }).errors ?? [];
    const lines = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text));
    throw new SkybatchError('SKYBATCH_E_SCRIPT_LOAD', `cannot bundle ${req.entry} for the workers:\n${lines.join('\n') || (err as Error).message}`, {
      context: { path: req.entry, line: errors[0]?.location?.line },
      cause: err,
    });
  }
  // Workers keep the bundle in their own folder: point the source map at absolute paths of
  // the user's files, so stack traces name the files the user wrote.
  const js = result.outputFiles.find((f) => f.path.endsWith('.mjs'))!;
  const mapFile = result.outputFiles.find((f) => f.path.endsWith('.map'))!;
  const map = JSON.parse(mapFile.text) as { sources: string[] };
  map.sources = map.sources.map((s) => (s.startsWith('skybatch-runtime:') ? s : path.resolve(path.dirname(entry), s)));
  const body = js.text.replace(/\/\/# sourceMappingURL=.*\s*$/, '');
  const pkgs = [...imported.keys()].sort();
  const header: BundleHeader = {
    v: 1,
    entry,
    ...(project.root ? { projectRoot: project.root } : {}),
    ...(project.lockfile ? { lockfile: project.lockfile } : {}),
    ...(pkgs.length ? { packages: pkgs } : {}),
    // ESM imports of packages need the hosts' resolve hooks, which cost a thread: only when used.
    // An `import(expr)` esbuild could not follow may name a package too.
    esmImports: [...imported.values()].some((kinds) => kinds.has('import-statement') || kinds.has('dynamic-import')) || /\bimport\((?!\s*["'])/.test(body),
    ...(req.mapper ? { mapper: { name: req.mapper.name, site: req.mapper.site, ordinal: req.mapper.ordinal } } : {}),
  };
  // The header takes the banner's first line, which is one line whatever it holds: the source map stays right.
  const code = body.replace(HEADER_SLOT, headerLine(header)) + `//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify(map)).toString('base64')}\n`;
  // Every file esbuild read (namespace 'file'; the runtime shim is not one), absolute.
  const inputs = Object.keys(result.metafile.inputs)
    .filter((f) => !f.includes(':'))
    .map((f) => path.resolve(f));
  return { bundle: { code, hash: createHash('sha256').update(code).digest('hex'), notes: pruned.notes }, inputs: [entry, ...inputs] };
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
export function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** A file of an installed package (through symlinks too: pnpm's store is under node_modules/.pnpm). */
function isInstalled(file: string): boolean {
  let real = file;
  try {
    real = fs.realpathSync(file);
  } catch {
    // keep the path as given
  }
  return /[\\/]node_modules[\\/]/.test(real) || /[\\/]node_modules[\\/]/.test(file);
}

function loaderFor(file: string): 'ts' | 'tsx' | 'js' | 'jsx' {
  if (/\.[cm]?ts$/.test(file)) return 'ts';
  if (file.endsWith('.tsx')) return 'tsx';
  if (file.endsWith('.jsx')) return 'jsx';
  return 'js';
}
