/**
 * Module resolution hook for `skybatch run`: `import 'skybatch'` in a user's script
 * resolves to this installation, wherever the script lives.
 */
const INDEX = new URL('../../index.js', import.meta.url).href;

type Next = (specifier: string, context: unknown) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: unknown, next: Next): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === 'skybatch') return { url: INDEX, shortCircuit: true };
  return next(specifier, context);
}
