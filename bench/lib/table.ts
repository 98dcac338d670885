/** One line of the bench's table: a figure of skybatch, its peer, their ratio and the target. */
export interface Row {
  figure: string;
  skybatch: string;
  peer: string;
  /** How the ratio reads, e.g. "2.1x" or "0.74x"; empty when there is none. */
  ratio: string;
  target: string;
  /** undefined: no target, printed for context. */
  met?: boolean;
}

export const x = (v: number) => `${v.toFixed(2)}x`;
export const s = (v: number) => `${v.toFixed(2)} s`;
export const mb = (v: number) => `${v.toFixed(0)} MB`;
/** A growth: "+4 MB", "-6 MB", "0 MB" (never "+-0 MB"). */
export const signedMb = (v: number) => {
  const r = Math.round(v) || 0; // never -0
  return `${r > 0 ? '+' : ''}${r} MB`;
};
/** Seconds of several runs, e.g. "0.64 0.70 0.81". */
export const list = (v: number[]) => v.map((n) => n.toFixed(2)).join(' ');
export const median = (v: number[]) => {
  const o = [...v].sort((a, b) => a - b);
  return o.length % 2 ? o[(o.length - 1) / 2] : (o[o.length / 2 - 1] + o[o.length / 2]) / 2;
};
export const rate = (v: number, unit = 'batches/s') => `${Math.round(v).toLocaleString('en-US')} ${unit}`;

export function printTable(rows: Row[], write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  const head: Row = { figure: 'figure', skybatch: 'skybatch', peer: 'peer', ratio: 'ratio', target: 'target', met: undefined };
  const cells = (r: Row) => [r.figure, r.skybatch, r.peer, r.ratio, r.target, r === head ? 'met' : r.met === undefined ? '-' : r.met ? 'yes' : 'NO'];
  const all = [head, ...rows].map(cells);
  const widths = all[0].map((_, i) => Math.max(...all.map((c) => c[i].length)));
  const line = (c: string[]) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  write(line(all[0]));
  write(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of all.slice(1)) write(line(c));
}
