/** The 0-based line and column where `script` imports or requires `pkg` (or a path inside it). */
export function importSite(source: string, pkg: string): { line: number; column: number } | undefined {
  const q = pkg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`(?:\\bfrom\\s*|\\bimport\\s*\\(\\s*|\\bimport\\s+|\\brequire\\s*\\(\\s*)(['"\`])${q}(?:/[^'"\`]*)?\\1`);
  const lines = source.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = re.exec(lines[i]);
    if (m) return { line: i, column: m.index };
  }
  return undefined;
}
