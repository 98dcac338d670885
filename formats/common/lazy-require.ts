import { createRequire } from 'node:module';

/**
 * `require` for the engine's ESM modules. A CommonJS package (`ws`, `yaml`, `pngjs`) imported
 * from ESM goes through the ESM loader and cjs-module-lexer: `ws` costs ~50 ms of CPU that
 * way against ~18 ms required; a restarted coordinator pays it before it listens.
 */
export const requireCjs = createRequire(import.meta.url) as <T>(name: string) => T;

/**
 * A CommonJS package loaded on first use instead of at import. The coordinator imports
 * modules that need `yaml` or `pngjs` only on some paths (a pool.yaml to parse, an image to
 * write); loading them at start cost a restarted coordinator ~40 ms of CPU before it listens.
 */
export function lazyRequire<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= requireCjs<T>(name));
}
