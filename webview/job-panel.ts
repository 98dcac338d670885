import { applyEvent, isTerminal, settleBatches } from '../runtime/job-events.js';
import type { BatchState, JobEvent, JobSummary, WorkerSummary } from '../runtime/protocol.js';
import type { BatchDetail, FromPanel, PanelSnapshot, PanelState, ToPanel } from './messages.js';

declare function acquireVsCodeApi(): { postMessage(m: FromPanel): void; setState(s: PanelState): void; getState(): PanelState | undefined };

const vscode = acquireVsCodeApi();
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const MAX_POINTS = 120;
const MAX_IMAGES = 48;

interface Model {
  job?: JobSummary;
  batchSize: number;
  batches: BatchState[];
  details: (BatchDetail | undefined)[];
  workers: Map<string, WorkerSummary>;
  samples: { index: number; value: unknown }[];
  points: { t: number; rate: number }[];
  live: boolean;
}

const m: Model = { batchSize: 1, batches: [], details: [], workers: new Map(), samples: [], points: [], live: false };

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...kids: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
}

function isImage(v: unknown): v is { $image: string } {
  return !!v && typeof v === 'object' && typeof (v as { $image?: unknown }).$image === 'string' && /^data:image\/png;base64,/.test((v as { $image: string }).$image);
}

function renderHeader(): void {
  const j = m.job;
  if (!j) return;
  $('title').textContent = `Job ${j.jobId} · pool ${j.pool}`;
  const badge = $('status');
  badge.textContent = j.status;
  badge.className = `status ${j.status}`;
  const pct = j.batchesTotal ? Math.floor((100 * j.batchesDone) / j.batchesTotal) : 0;
  $('bar').style.width = `${j.status === 'SUCCEEDED' ? 100 : pct}%`;
  $('bar').className = j.status;
  $('numbers').textContent = `${j.batchesDone}/${j.batchesTotal} batches · ${j.itemsDone}/${j.itemsTotal} items · ${j.retries} retries · ${m.batches.filter((b) => b === 'failed').length} failed`;
  $('ring').hidden = !(m.live && (j.status === 'RUNNING' || j.status === 'PENDING'));
  $('cancel').hidden = !(j.status === 'RUNNING' || j.status === 'PENDING');
  $('recover').hidden = !(j.status === 'FAILED' || j.status === 'CANCELLED');
  // A cancel is what someone asked for: said plainly, not as an error.
  const cancelled = j.status === 'CANCELLED';
  $('error').textContent = j.error ? (cancelled ? `Cancelled: ${j.error.message}` : `[${j.error.code}] ${j.error.message}`) : '';
  $('error').className = cancelled ? 'note' : '';
}

function renderGrid(): void {
  const grid = $('grid');
  while (grid.children.length < m.batches.length) {
    const square = el('div', { className: 'batch pending', tabIndex: -1 });
    square.setAttribute('role', 'listitem');
    grid.append(square);
  }
  // One tab stop for the whole grid (the batch last focused); arrow keys move between batches.
  if (grid.children.length && ![...grid.children].some((c) => (c as HTMLElement).tabIndex === 0)) (grid.children[0] as HTMLElement).tabIndex = 0;
  grid.setAttribute('aria-label', `Batches: ${m.batches.length}`);
  m.batches.forEach((s, i) => {
    const c = grid.children[i] as HTMLElement;
    c.className = `batch ${s}`;
    const d = m.details[i];
    const start = d?.start ?? i * m.batchSize;
    const end = d?.end ?? Math.min(start + m.batchSize, m.job?.itemsTotal ?? start + m.batchSize) - 1;
    const extra = d ? `${d.attempt > 1 ? ` · attempt ${d.attempt}` : ''}${d.worker && (s === 'queued' || s === 'running' || s === 'retrying') ? ` · on ${d.worker}` : ''}` : '';
    c.title = `batch ${i}: items [${start}, ${end}] · ${s}${extra}`;
    c.setAttribute('aria-label', c.title);
  });
  const counts = ['pending', 'queued', 'running', 'retrying', 'done', 'failed', 'split', 'skipped']
    .map((s) => [s, m.batches.filter((b) => b === s).length] as const)
    .filter(([s, n]) => n > 0 || !(s === 'split' || s === 'skipped'))
    .map(([s, n]) => `${n} ${s}`);
  $('grid-legend').textContent = counts.join(' · ');
}

/** Arrow keys, Home and End move the focus between batch squares (a roving tab stop). */
function gridKeys(ev: KeyboardEvent): void {
  const grid = $('grid');
  const squares = [...grid.children] as HTMLElement[];
  const from = squares.indexOf(document.activeElement as HTMLElement);
  if (from < 0 || !squares.length) return;
  const perRow = Math.max(1, Math.round(grid.clientWidth / (squares[0].offsetWidth + 3)));
  const to = { ArrowRight: from + 1, ArrowLeft: from - 1, ArrowDown: from + perRow, ArrowUp: from - perRow, Home: 0, End: squares.length - 1 }[ev.key];
  if (to === undefined) return;
  ev.preventDefault();
  const next = squares[Math.min(Math.max(0, to), squares.length - 1)];
  squares[from].tabIndex = -1;
  next.tabIndex = 0;
  next.focus();
}

function renderWorkers(): void {
  const grid = $('workers') as HTMLElement & { rowsData: unknown[] };
  grid.rowsData = [...m.workers.values()]
    .filter((w) => w.state !== 'gone')
    .map((w) => ({ Worker: w.name, Host: w.host, State: w.state, Doing: w.batches.length ? `job ${w.jobId}: ${w.batches.map((b) => `[${b[0]}, ${b[1]}]`).join(' ')}` : w.jobId ? `job ${w.jobId}` : '—' }));
}

const SVG = 'http://www.w3.org/2000/svg';
const CHART = { w: 480, h: 160, left: 46, right: 14, top: 22, bottom: 26 };

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A round step for about `n` ticks over [0, max]. */
function tickStep(max: number, n = 3): number {
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? raw;
}

const fmt = (v: number) => (v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1));

/**
 * Throughput over time with its axes: the live rate while the panel follows the job; for a
 * job that ended before the panel opened, its average rate over its whole run (the journal
 * keeps no times per batch).
 */
function renderChart(): void {
  const chart = $('chart') as unknown as SVGSVGElement;
  const { w, h, left, right, top, bottom } = CHART;
  const pw = w - left - right;
  const ph = h - top - bottom;
  const j = m.job;
  const took = j?.finishedAt ? (Date.parse(j.finishedAt) - Date.parse(j.createdAt)) / 1000 : 0;
  const pts = m.points;
  let series: { t: number; rate: number }[] = [];
  let average = false;
  if (pts.length) series = pts.map((p) => ({ t: (p.t - pts[0].t) / 1000, rate: p.rate }));
  else if (j && took > 0 && j.itemsDone > 0) {
    series = [{ t: 0, rate: j.itemsDone / took }, { t: took, rate: j.itemsDone / took }];
    average = true;
  }
  const peak = Math.max(0, ...series.map((p) => p.rate));
  const yStep = tickStep(Math.max(peak, 1));
  const yMax = Math.ceil(Math.max(peak, 1) / yStep) * yStep;
  const span = Math.max(1, series.length ? series[series.length - 1].t : took || 10);
  const xStep = tickStep(span);
  const x = (t: number) => left + (t / span) * pw;
  const y = (r: number) => top + ph - (r / yMax) * ph;
  const kids: SVGElement[] = [];
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    kids.push(svg('line', { class: 'grid-line', x1: left, x2: left + pw, y1: y(v), y2: y(v) }));
    kids.push(svg('text', { class: 'tick', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  for (let t = 0; t <= span + 1e-9; t += xStep) kids.push(svg('text', { class: 'tick', x: x(t), y: top + ph + 16, 'text-anchor': 'middle' }, `${fmt(t)} s`));
  kids.push(svg('line', { class: 'axis', x1: left, x2: left, y1: top, y2: top + ph }));
  kids.push(svg('line', { class: 'axis', x1: left, x2: left + pw, y1: top + ph, y2: top + ph }));
  kids.push(svg('text', { class: 'axis-title', x: left, y: top - 10, 'text-anchor': 'middle' }, 'items/s'));
  if (series.length) {
    const d = series.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join(' ');
    kids.push(svg('path', { class: average ? 'series average' : 'series', d }));
  } else {
    kids.push(svg('text', { class: 'empty', x: left + pw / 2, y: top + ph / 2, 'text-anchor': 'middle' }, 'no throughput yet'));
  }
  chart.replaceChildren(...kids);
  $('chart-label').textContent = pts.length
    ? `${pts[pts.length - 1].rate.toFixed(1)} items/s ${j && isTerminal(j.status) ? 'at the end' : 'now'} · peak ${peak.toFixed(1)} items/s`
    : average && j
      ? `finished before this panel opened: ${j.itemsDone} items in ${took.toFixed(1)} s (${(j.itemsDone / took).toFixed(1)} items/s on average, drawn dashed)`
      : 'no throughput yet';
}

function renderSamples(): void {
  const table = $('samples');
  table.replaceChildren();
  const cols: string[] = [];
  for (const s of m.samples) for (const k of s.value && typeof s.value === 'object' ? Object.keys(s.value) : ['value']) if (!cols.includes(k)) cols.push(k);
  if (!m.samples.length) {
    table.append(el('tr', {}, el('td', { textContent: 'No sample outputs yet.' })));
  } else {
    table.append(el('tr', {}, ...['#', ...cols].map((c) => el('th', { textContent: c }))));
    for (const s of m.samples) {
      const row = el('tr', {}, el('td', { textContent: String(s.index) }));
      for (const c of cols) {
        const v = s.value && typeof s.value === 'object' ? (s.value as Record<string, unknown>)[c] : s.value;
        row.append(el('td', {}, isImage(v) ? el('img', { src: v.$image, width: 32, height: 32, alt: `item ${s.index}` }) : typeof v === 'string' ? v : JSON.stringify(v) ?? ''));
      }
      table.append(row);
    }
  }
  const gallery = $('gallery');
  gallery.replaceChildren();
  const images = m.samples.flatMap((s) => (s.value && typeof s.value === 'object' ? Object.values(s.value).filter(isImage).map((v) => ({ index: s.index, url: v.$image })) : []));
  for (const im of images.slice(0, MAX_IMAGES)) gallery.append(el('figure', {}, el('img', { src: im.url, alt: `item ${im.index}` }), el('figcaption', { textContent: `#${im.index}` })));
  $('gallery-section').hidden = images.length === 0;
}

function apply(e: JobEvent): void {
  const before = m.job;
  if (before) m.job = applyEvent(before, e);
  switch (e.kind) {
    case 'jobSubmitted':
      break;
    case 'jobFinished':
      if (m.job === before) return;
      endJob();
      break;
    case 'progress':
      if (m.job === before) return;
      m.points.push({ t: Date.now(), rate: e.itemsPerSec });
      if (m.points.length > MAX_POINTS) m.points.shift();
      renderChart();
      break;
    case 'batch':
      if (e.jobId !== m.job?.jobId) return;
      m.batches[e.index] = e.state;
      m.details[e.index] = { start: e.start, end: e.end, attempt: e.attempt, ...(e.worker ? { worker: e.worker } : {}) };
      renderGrid();
      break;
    case 'worker':
      m.workers.set(e.worker.workerId, e.worker);
      renderWorkers();
      break;
    case 'sample':
      if (e.jobId !== m.job?.jobId) return;
      e.results.forEach((value, k) => m.samples.some((s) => s.index === e.start + k) || m.samples.push({ index: e.start + k, value }));
      m.samples.sort((a, b) => a.index - b.index);
      renderSamples();
      break;
    default:
      return;
  }
  renderHeader();
}

/** The job ended (cancelled, failed or done): see `settleBatches`. */
function endJob(): void {
  m.batches = settleBatches(m.batches);
  m.live = false;
  renderGrid();
  renderChart();
}

function load(s: PanelSnapshot): void {
  m.job = s.job;
  m.batchSize = s.batchSize;
  m.batches = s.batches;
  m.details = s.details ?? [];
  m.workers = new Map(s.workers.map((w) => [w.workerId, w]));
  m.samples = s.samples;
  m.live = s.live;
  if (isTerminal(s.job.status)) m.batches = settleBatches(m.batches);
  vscode.setState({ pool: s.job.pool, jobId: s.job.jobId });
  renderHeader();
  renderGrid();
  renderWorkers();
  renderChart();
  renderSamples();
}

window.addEventListener('message', (ev: MessageEvent<ToPanel>) => {
  const msg = ev.data;
  if (msg.type === 'snapshot') load(msg.snapshot);
  else if (msg.type === 'event') apply(msg.event);
  else if (msg.type === 'disconnected') {
    m.live = false;
    $('note').textContent = msg.reason;
    renderHeader();
  }
});
$('grid').addEventListener('keydown', gridKeys);
$('cancel').addEventListener('click', () => m.job && vscode.postMessage({ type: 'cancel', jobId: m.job.jobId }));
$('recover').addEventListener('click', () => m.job && vscode.postMessage({ type: 'recover', jobId: m.job.jobId }));
vscode.postMessage({ type: 'ready' });
