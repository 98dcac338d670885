/**
 * Module hooks for `skybatch run`: `import 'skybatch'` in a user's script resolves to this
 * installation wherever the script lives, and the user's own TypeScript files load as ES
 * modules (so top-level await works) even outside a `"type": "module"` package.
 */
import { PACKAGE_API_URL as INDEX } from '../package-api.js';

interface Context {
  format?: string | null;
  [k: string]: unknown;
}
type NextResolve = (specifier: string, context: Context) => Promise<{ url: string; format?: string | null }>;
type NextLoad = (url: string, context: Context) => Promise<{ format: string; source?: unknown }>;

export async function resolve(specifier: string, context: Context, next: NextResolve): Promise<{ url: string; format?: string | null; shortCircuit?: boolean }> {
  if (specifier === 'skybatch') return { url: INDEX, format: 'module', shortCircuit: true };
  const r = await next(specifier, context);
  if (isUserTs(r.url)) return { ...r, format: 'module' };
  return r;
}

export async function load(url: string, context: Context, next: NextLoad): Promise<{ format: string; source?: unknown }> {
  return next(url, isUserTs(url) ? { ...context, format: 'module' } : context);
}

function isUserTs(url: string): boolean {
  return url.startsWith('file:') && /\.tsx?$/.test(url.split('?')[0]) && !url.includes('/node_modules/');
}
