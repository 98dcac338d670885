import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { Plugin } from 'esbuild';
import { SkybatchError } from '../../formats/errors.js';
import { RUNTIME_KEY } from '../bundle-loader.js';

export interface Bundle {
  code: string;
  hash: string;
}

const cache = new Map<string, Promise<Bundle>>();

/**
 * Bundles the user's script (TypeScript or JavaScript) into one ESM file for workers:
 * everything it imports is included, except `skybatch` itself, which resolves to the
 * runtime of whatever process loads the bundle, and packages listed in `external`,
 * which workers resolve from their working directory (installed by the pool's setup).
 */
export function bundleScript(entry: string, external: string[] = []): Promise<Bundle> {
  const key = `${entry}\0${external.join(',')}`;
  let p = cache.get(key);
  if (!p) {
    p = build(entry, external);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function build(entry: string, external: string[]): Promise<Bundle> {
  const esbuild = await import('esbuild');
  const runtime = (await import('../../index.js')) as Record<string, unknown>;
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
      logLevel: 'silent',
      external,
      plugins: [shim],
      // CommonJS packages inside an ESM bundle still need `require`.
      banner: { js: "import { createRequire as __skybatchRequire } from 'node:module'; const require = __skybatchRequire(import.meta.url);" },
    });
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }).errors ?? [];
    const lines = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ${e.text}` : e.text));
    throw new SkybatchError('SKYBATCH_E_SCRIPT_LOAD', `cannot bundle ${entry} for the workers:\n${lines.join('\n') || (err as Error).message}`, {
      context: { path: entry, line: errors[0]?.location?.line },
      cause: err,
    });
  }
  // Workers keep the bundle in their own folder: point the source map at absolute paths of
  // the user's files, so stack traces name the files the user wrote.
  const js = result.outputFiles.find((f) => f.path.endsWith('.mjs'))!;
  const mapFile = result.outputFiles.find((f) => f.path.endsWith('.map'))!;
  const map = JSON.parse(mapFile.text) as { sources: string[] };
  map.sources = map.sources.map((s) => (s.startsWith('skybatch-runtime:') ? s : path.resolve(path.dirname(entry), s)));
  const code = js.text.replace(/\/\/# sourceMappingURL=.*\s*$/, '') + `//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify(map)).toString('base64')}\n`;
  return { code, hash: createHash('sha256').update(code).digest('hex') };
}
