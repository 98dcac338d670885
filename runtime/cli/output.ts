/** What a command prints for its caller (stdout) and for the person watching (stderr). */
export const say = (line: string) => process.stdout.write(line + '\n');
export const note = (line: string) => process.stderr.write(line + '\n');

/** Columns padded to their widest cell, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}
