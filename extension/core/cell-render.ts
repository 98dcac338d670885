import { cellText, imageOf } from './output-render.js';

/** What the engine's `runCell` reports for a cell run on its own (runtime/client/cell-run.ts), as plain JSON. */
export type CellRunOutcome =
  | { kind: 'definitions' }
  | { kind: 'reader'; type: string; path: string; total: number; items: unknown[]; ms: number }
  | { kind: 'mapper'; total: number; start: number; end: number; results: unknown[]; ms: number }
  | { kind: 'writers'; writers: { type: string; className: string; path: string; where: string; exists: boolean; columns?: string[] }[] }
  | { kind: 'pack'; total: number; batches: number; packages: string[]; notes: string[] };

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function columnsOf(rows: unknown[]): string[] {
  const cols: string[] = [];
  for (const r of rows) for (const k of r && typeof r === 'object' && !Array.isArray(r) ? Object.keys(r) : ['value']) if (!cols.includes(k)) cols.push(k);
  return cols.slice(0, 8);
}

function field(r: unknown, col: string): unknown {
  return r && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, unknown>)[col] : col === 'value' ? r : undefined;
}

function tableText(rows: unknown[], first: number): string[] {
  const cols = columnsOf(rows);
  return [['#', ...cols].join('\t'), ...rows.map((r, i) => [String(first + i), ...cols.map((c) => (imageOf(field(r, c)) ? '[image]' : cellText(field(r, c))))].join('\t'))];
}

function tableHtml(rows: unknown[], first: number, cls: string): string {
  const cols = columnsOf(rows);
  const th = (c: string) => `<th style="text-align: left; padding: 2px 8px; border-bottom: 1px solid rgba(128,128,128,.4)">${esc(c)}</th>`;
  const body = rows.map((r, i) => {
    const tds = cols.map((c) => {
      const v = field(r, c);
      const url = imageOf(v);
      return `<td style="padding: 2px 8px; vertical-align: top; text-align: left">${url ? `<img class="skybatch-image" src="${url}" alt="item ${first + i} ${esc(c)}" width="64" height="64" style="image-rendering: pixelated">` : esc(cellText(v))}</td>`;
    });
    return `<tr><td style="padding: 2px 8px; opacity: .7">${first + i}</td>${tds.join('')}</tr>`;
  });
  return `<table class="${cls}" style="border-collapse: collapse; font-size: 12px"><tr>${['#', ...cols].map(th).join('')}</tr>${body.join('')}</table>`;
}

/** The headline and body of a cell run's output, as plain text (tests, screen readers). */
export function cellRunText(o: CellRunOutcome, logs: readonly string[] = []): string {
  const out: string[] = [];
  if (o.kind === 'definitions') out.push('Definitions loaded. They run where the notebook runs, and on the workers with the mapper (and the custom formats) that use them.');
  if (o.kind === 'reader') out.push(`Reader preview: first ${o.items.length} of ${o.total} items (${o.type}${o.path ? ` ${o.path}` : ''})`, ...tableText(o.items, 0));
  if (o.kind === 'mapper') out.push(`Dry run: the mapper ran on this machine on items [${o.start}, ${o.end}] of ${o.total}, no pool, nothing written (${(o.ms / 1000).toFixed(1)} s)`, ...tableText(o.results, o.start));
  if (o.kind === 'writers') {
    out.push(`Writers: ${o.writers.length} valid; the run cell's job will write:`);
    for (const w of o.writers) out.push(`${w.className} (${w.type})${w.columns ? ` columns ${w.columns.join(', ')}` : ''} → ${w.where}${w.exists ? ' (exists: the job replaces it)' : ''}`);
  }
  if (o.kind === 'pack') out.push(`The job packs for the workers: ${o.total} items in ${o.batches} batches${o.packages.length ? `; packages: ${o.packages.join(', ')}` : ''}`, ...o.notes);
  if (logs.length) out.push('console:', ...logs);
  return out.join('\n');
}

/** The same as HTML for the Sky Batch output renderer: tables, image previews, output paths. */
export function cellRunHtml(o: CellRunOutcome, logs: readonly string[] = []): string {
  const h: string[] = [`<div class="skybatch-cell-run" data-kind="${o.kind}" style="font-family: var(--vscode-font-family, sans-serif); font-size: 13px; line-height: 1.5">`];
  const head = (t: string) => h.push(`<div style="font-weight: 600">${esc(t)}</div>`);
  if (o.kind === 'definitions') head(cellRunText(o));
  if (o.kind === 'reader') {
    head(`Reader preview: first ${o.items.length} of ${o.total} items`);
    h.push(`<div style="opacity: .8">${esc(o.type)}${o.path ? ` <code>${esc(o.path)}</code>` : ''}</div>`, tableHtml(o.items, 0, 'skybatch-preview'));
  }
  if (o.kind === 'mapper') {
    head(`Dry run: items [${o.start}, ${o.end}] of ${o.total} on this machine, no pool, nothing written (${(o.ms / 1000).toFixed(1)} s)`);
    h.push(tableHtml(o.results, o.start, 'skybatch-dry-run'));
  }
  if (o.kind === 'writers') {
    head(`Writers: ${o.writers.length} valid. The job will write:`);
    h.push('<ul class="skybatch-writers" style="margin: 4px 0">');
    for (const w of o.writers) h.push(`<li>${esc(w.className)} (${esc(w.type)})${w.columns ? ` columns ${esc(w.columns.join(', '))}` : ''} → <code>${esc(w.where)}</code>${w.exists ? ' <em>(exists: the job replaces it)</em>' : ''}</li>`);
    h.push('</ul>');
  }
  if (o.kind === 'pack') head(cellRunText(o));
  if (logs.length) h.push(`<details open style="margin-top: 6px"><summary>Console (${logs.length} lines)</summary><pre style="white-space: pre-wrap; font-size: 12px">${esc(logs.join('\n'))}</pre></details>`);
  h.push('</div>');
  return h.join('\n');
}
