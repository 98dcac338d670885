import { formatEta } from '../../runtime/job-events.js';
import { jobMs, type JobViewState, type SampleRow } from './job-tracker.js';

/** The mime of a job's HTML cell output, drawn by the extension's renderer `skybatch.job-output`. */
export const JOB_OUTPUT_MIME = 'application/vnd.skybatch.job-output';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const PNG_URL = /^data:image\/png;base64,[A-Za-z0-9+/=]+$/;

export function imageOf(v: unknown): string | undefined {
  const url = v && typeof v === 'object' ? (v as { $image?: unknown }).$image : undefined;
  return typeof url === 'string' && PNG_URL.test(url) ? url : undefined;
}

const LINK_STYLE = 'color: var(--vscode-textLink-foreground, #3794ff); text-decoration: underline; cursor: pointer';

/**
 * A link the Sky Batch output renderer acts on (webview/output-renderer.ts): notebook
 * outputs may not run extension commands through `command:` links, so the renderer posts
 * the `data-*` attributes to the extension instead.
 */
function link(text: string, data: Record<string, string>, tag: 'a' | 'code' = 'a'): string {
  const attrs = Object.entries(data).map(([k, v]) => ` data-skybatch-${k}="${esc(v)}"`).join('');
  // Monospace without <code>: a theme's code background (dark in High Contrast Light) under link blue is unreadable.
  const inner = tag === 'code' ? `<span style="font-family: var(--vscode-editor-font-family, monospace)">${esc(text)}</span>` : esc(text);
  return `<a class="skybatch-link" role="link" tabindex="0"${attrs} style="${LINK_STYLE}">${inner}</a>`;
}

function percent(s: JobViewState): number {
  if (s.status === 'SUCCEEDED') return 100;
  return s.batchesTotal ? Math.floor((100 * s.batchesDone) / s.batchesTotal) : 0;
}

function statusLine(s: JobViewState): string {
  const parts = [`${s.batchesDone}/${s.batchesTotal || '?'} batches`, `${s.itemsDone}/${s.itemsTotal || '?'} items`, `${s.itemsPerSec.toFixed(1)} items/s`];
  if (s.status === 'RUNNING' || s.status === 'PENDING') parts.push(`ETA ${formatEta(s.itemsTotal - s.itemsDone, s.itemsPerSec)}`);
  parts.push(`${s.retries} retries`, `${s.failed} failed`);
  return parts.join(' · ');
}

/** What the sample table holds: "first 9 of 12" items, or "9 of 12" when they are not the first ones. */
export function samplesCaption(s: JobViewState): string {
  const n = s.samples.length;
  const first = s.samples.every((r, i) => r.index === i);
  if (s.itemsTotal && s.itemsTotal <= n && first) return `all ${n}`;
  return `${first ? 'first ' : ''}${n} of ${s.itemsTotal || '?'}`;
}

function headline(s: JobViewState): string {
  const who = s.jobId ? `Job ${s.jobId}` : 'Job';
  const took = s.finishedAt ? ` in ${(jobMs(s) / 1000).toFixed(1)} s` : '';
  return `${who} on pool ${s.pool}: ${s.status}${took}`;
}

export function cellText(v: unknown): string {
  if (v && typeof v === 'object' && '$binary' in v) return `<${(v as { $binary: number }).$binary} bytes>`;
  const t = typeof v === 'string' ? v : JSON.stringify(v);
  return t === undefined ? '' : t.length > 120 ? t.slice(0, 120) + '…' : t;
}

function columnsOf(rows: SampleRow[]): string[] {
  const cols: string[] = [];
  for (const r of rows) {
    const keys = r.value && typeof r.value === 'object' && !Array.isArray(r.value) ? Object.keys(r.value) : ['value'];
    for (const k of keys) if (!cols.includes(k)) cols.push(k);
  }
  return cols.slice(0, 8);
}

function field(r: SampleRow, col: string): unknown {
  return r.value && typeof r.value === 'object' && !Array.isArray(r.value) ? (r.value as Record<string, unknown>)[col] : col === 'value' ? r.value : undefined;
}

/** The job's cell output as plain text: what tests read and what screen readers get. */
export function renderText(s: JobViewState): string {
  const out = [headline(s), `progress ${percent(s)}% · ${statusLine(s)}`];
  if (s.error) out.push(s.status === 'CANCELLED' ? `cancelled: ${s.error.message}` : `error [${s.error.code}]: ${s.error.message}`);
  if (s.errorAt) out.push(`raised in the ${s.errorAt.label}, line ${s.errorAt.line + 1}`);
  if (s.recoverCommand && s.status !== 'SUCCEEDED') out.push(`recover finished batches: ${s.recoverCommand} (or "Sky Batch: Recover Partial Results"); run the rest: "Sky Batch: Resume Job"`);
  if (s.samples.length) {
    const cols = columnsOf(s.samples);
    out.push(`sample outputs (${samplesCaption(s)}):`, ['#', ...cols].join('\t'));
    for (const r of s.samples) out.push([String(r.index), ...cols.map((c) => (imageOf(field(r, c)) ? '[image]' : cellText(field(r, c))))].join('\t'));
  }
  if (s.status === 'SUCCEEDED' && s.outputs.length) out.push(`outputs: ${s.outputs.join(', ')}`);
  return out.join('\n');
}

/** The job's cell output as HTML for the notebook's built-in renderer: no scripts, images as data URLs. */
export function renderHtml(s: JobViewState): string {
  const pct = percent(s);
  // The theme's colours (notebook outputs get VS Code's variables): fixed dark-theme colours fade on a light background.
  const color = s.status === 'FAILED' ? 'var(--vscode-testing-iconFailed, #f14c4c)' : s.status === 'CANCELLED' ? 'var(--vscode-editorWarning-foreground, #cca700)' : s.status === 'SUCCEEDED' ? 'var(--vscode-charts-green, #89d185)' : 'var(--vscode-progressBar-background, #3794ff)';
  const h: string[] = [];
  h.push(`<div class="skybatch-job" data-job="${esc(s.jobId ?? '')}" data-status="${esc(s.status)}" style="font-family: var(--vscode-font-family, sans-serif); font-size: 13px; line-height: 1.5">`);
  h.push(`<div style="font-weight: 600">${esc(headline(s))}</div>`);
  h.push(
    `<div style="display: flex; align-items: center; gap: 8px; margin: 4px 0">` +
      `<div role="progressbar" aria-valuenow="${pct}" aria-valuemin="0" aria-valuemax="100" style="flex: 0 0 320px; height: 10px; border-radius: 5px; background: rgba(128,128,128,.25); overflow: hidden">` +
      `<div style="width: ${pct}%; height: 100%; background: ${color}"></div></div>` +
      `<span class="skybatch-percent">${pct}%</span></div>`,
  );
  h.push(`<div class="skybatch-stats">${esc(statusLine(s))}</div>`);
  if (s.error && s.status === 'CANCELLED') h.push(`<div class="skybatch-note" style="margin: 6px 0; opacity: .85">Cancelled: ${esc(s.error.message)}</div>`);
  else if (s.error) h.push(`<pre class="skybatch-error" style="white-space: pre-wrap; color: var(--vscode-errorForeground, #f14c4c); margin: 6px 0">${esc(`[${s.error.code}] ${s.error.message}`)}</pre>`);
  if (s.errorAt) h.push(`<div class="skybatch-error-at">Raised in ${link(`the ${s.errorAt.label}, line ${s.errorAt.line + 1}`, { goto: String(s.errorAt.cell), line: String(s.errorAt.line) })} (the traceback is under that cell).</div>`);
  if (s.jobId && s.recoverCommand && s.status !== 'SUCCEEDED') {
    h.push(
      `<div class="skybatch-actions" style="margin: 4px 0">${link('Recover partial results', { command: 'recover', job: s.jobId })} (merge the finished batches into the outputs, like <code>${esc(s.recoverCommand)}</code>) · ` +
        `${link('Resume', { command: 'resume', job: s.jobId })} (run the batches that did not finish) · ${link('Show job panel', { command: 'panel', job: s.jobId })}</div>`,
    );
  }
  const images = s.samples.flatMap((r) => columnsOf([r]).map((c) => ({ index: r.index, url: imageOf(field(r, c)) })).filter((x) => x.url));
  if (images.length) {
    h.push(`<div style="margin-top: 8px; font-weight: 600">Image previews</div><div class="skybatch-gallery" style="display: flex; flex-wrap: wrap; gap: 6px">`);
    for (const im of images) h.push(`<figure style="margin: 0; text-align: center"><img class="skybatch-image" src="${im.url}" alt="item ${im.index}" width="96" height="96" style="image-rendering: pixelated; border-radius: 3px"><figcaption style="font-size: 11px; opacity: .7">#${im.index}</figcaption></figure>`);
    h.push(`</div>`);
  }
  if (s.samples.length) {
    const cols = columnsOf(s.samples);
    h.push(`<div class="skybatch-samples-caption" style="margin-top: 8px; font-weight: 600">Sample outputs <span style="font-weight: normal; opacity: .8">(${esc(samplesCaption(s))})</span></div><table class="skybatch-samples" style="border-collapse: collapse; font-size: 12px">`);
    h.push(`<tr>${['#', ...cols].map((c) => `<th style="text-align: left; padding: 2px 8px; border-bottom: 1px solid rgba(128,128,128,.4)">${esc(c)}</th>`).join('')}</tr>`);
    for (const r of s.samples) {
      const tds = cols.map((c) => {
        const v = field(r, c);
        const url = imageOf(v);
        return `<td style="padding: 2px 8px; vertical-align: top; text-align: left">${url ? `<img src="${url}" alt="item ${r.index} ${esc(c)}" width="32" height="32">` : esc(cellText(v))}</td>`;
      });
      h.push(`<tr><td style="padding: 2px 8px; opacity: .7">${r.index}</td>${tds.join('')}</tr>`);
    }
    h.push(`</table>`);
  }
  if (s.status === 'SUCCEEDED' && s.outputs.length) {
    // Cloud objects have no local file to open: they stay text.
    const one = (o: string) => (/^(s3|gs):\/\//.test(o) ? `<code>${esc(o)}</code>` : `${link(o, { open: o }, 'code')} (${link('show in folder', { reveal: o })})`);
    h.push(`<div class="skybatch-outputs" style="margin-top: 6px">Outputs: ${s.outputs.map(one).join(', ')}</div>`);
  }
  if (s.logs.length) h.push(`<details style="margin-top: 6px"><summary>Log (${s.logs.length} lines)</summary><pre style="white-space: pre-wrap; font-size: 12px">${esc(s.logs.join('\n'))}</pre></details>`);
  h.push(`</div>`);
  return h.join('\n');
}
