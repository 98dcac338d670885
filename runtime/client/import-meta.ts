import { pathToFileURL } from 'node:url';
import { parseScript, walk } from './script-ast.js';

const NAME = '__sbMeta_';

/**
 * `import.meta` in the user's own files means that file, not the bundle a worker loads.
 * Each `import.meta` becomes a call of the same length (`__sbMeta_()`, 11 characters) to a
 * function appended after the last line, so no kept token moves: the host answers with the
 * original file's url, filename, dirname and resolve.
 */
export function rewriteImportMeta(source: string, file: string): string {
  if (!source.includes('import.meta')) return source;
  const ranges: [number, number][] = [];
  walk(parseScript(source, file).program, (n) => {
    if (n.type === 'MetaProperty' && n.meta.name === 'import' && n.property.name === 'meta') ranges.push([n.start!, n.end!]);
  });
  if (!ranges.length) return source;
  let out = '';
  let at = 0;
  for (const [start, end] of ranges) {
    const text = source.slice(start, end);
    if (/[\n\r]/.test(text.slice(0, NAME.length + 1))) continue; // `import\n.meta`: too odd to rewrite in place
    out += source.slice(at, start) + NAME + '(' + text.slice(NAME.length + 1, -1).replace(/[^\n\r]/g, ' ') + ')';
    at = end;
  }
  out += source.slice(at);
  return `${out}\n;function ${NAME}() { return globalThis[Symbol.for('skybatch.host')].meta(${JSON.stringify(pathToFileURL(file).href)}); }\n`;
}
