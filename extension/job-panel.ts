import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { BatchState, JobEvent } from '../runtime/protocol.js';
import type { FromPanel, PanelSnapshot, PanelState, ToPanel } from '../webview/messages.js';
import type { Engine } from './engine.js';
import type { JobRecords } from './job-records.js';
import { watchPool } from './job-watch.js';

export const PANEL_TYPE = 'skybatch.jobPanel';

/** The panel's page: strict CSP, a nonce on each script, every resource from the extension's out/webview. */
export function panelHtml(webview: vscode.Webview, media: vscode.Uri, nonce: string): string {
  const src = (f: string) => webview.asWebviewUri(vscode.Uri.joinPath(media, f)).toString();
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource}`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en"><head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${src('job-panel.css')}">
<script type="module" nonce="${nonce}" src="${src('toolkit.min.js')}"></script>
<title>Sky Batch job</title>
</head><body>
<header>
  <h1 id="title">Job</h1>
  <vscode-badge id="status" class="status">…</vscode-badge>
  <vscode-progress-ring id="ring" hidden></vscode-progress-ring>
  <span class="spacer"></span>
  <vscode-button id="cancel" appearance="secondary" hidden>Cancel Job</vscode-button>
  <vscode-button id="recover" hidden>Recover Partial Results</vscode-button>
</header>
<div class="progress"><div id="bar"></div></div>
<div id="numbers" class="muted"></div>
<pre id="error"></pre>
<div id="note" class="muted"></div>
<vscode-divider></vscode-divider>
<section><h2>Batches</h2><div id="grid" class="grid" role="list" aria-label="Batches"></div><div id="grid-legend" class="muted" aria-live="polite"></div>
<div class="legend" aria-hidden="true"><span class="item"><span class="batch pending"></span>pending</span> <span class="item"><span class="batch queued"></span>queued</span> <span class="item"><span class="batch running"></span>running</span> <span class="item"><span class="batch retrying"></span>retrying</span> <span class="item"><span class="batch done"></span>done</span> <span class="item"><span class="batch failed"></span>failed</span> <span class="item"><span class="batch split"></span>split</span> <span class="item"><span class="batch skipped"></span>skipped</span></div></section>
<section class="two">
  <div><h2>Workers</h2><vscode-data-grid id="workers" aria-label="Workers" grid-template-columns="1fr 1fr 0.7fr 2fr"></vscode-data-grid></div>
  <div><h2>Throughput</h2><svg id="chart" viewBox="0 0 480 160" role="img" aria-label="Throughput over time, items per second"></svg><div id="chart-label" class="muted"></div></div>
</section>
<section id="gallery-section" hidden><h2>Images</h2><div id="gallery" class="gallery"></div></section>
<section><h2>Sample outputs</h2><table id="samples"></table></section>
<script nonce="${nonce}" src="${src('job-panel.js')}"></script>
</body></html>`;
}

/**
 * The job as the panel first shows it: numbers and every batch's state, attempt and worker
 * from the coordinator when the pool runs (its `batches` answer, asked after subscribing, so
 * the live events that follow apply on top); else the batch table as the job's journal
 * records it (committed, split, skipped, and the failure that ended a failed job).
 *
 * Live events that arrive before the snapshot is posted are held, and `release` posts them
 * after it: posted as they came, the ones that followed the `batches` answer reached the panel
 * before its snapshot and were lost under it (batches that stayed 'running' after the job
 * succeeded). Held events from before the answer replay what it already says, then the later
 * ones for the same batch bring it back up to date: each batch ends at its last event.
 */
async function snapshotOf(
  engine: Engine,
  state: PanelState,
  records: JobRecords,
  onLive: (close: () => void) => void,
  post: (m: ToPanel) => void,
): Promise<{ snapshot: PanelSnapshot; release: () => void }> {
  let held: JobEvent[] | undefined = [];
  const release = () => {
    const events = held ?? [];
    held = undefined;
    for (const event of events) post({ type: 'event', event });
  };
  const view = engine.jobs.jobView(state.jobId);
  let job = view.summary;
  let batches: BatchState[] = view.batches.map((b) => b.state);
  let seededFrom: PanelSnapshot['seededFrom'] = 'journal';
  // Ranges as the journal numbers them: after a split they are not index × batchSize.
  let details: PanelSnapshot['details'] = view.batches.map(({ start, end, attempt }) => ({ start, end, attempt }));
  let workers: PanelSnapshot['workers'] = [];
  let live = false;
  if (engine.pools.poolRunning(state.pool)) {
    try {
      const w = await watchPool(engine, state.pool, (event) => (held ? held.push(event) : post({ type: 'event', event })), () => post({ type: 'disconnected', reason: `the connection to pool '${state.pool}' closed` }));
      onLive(w.close);
      job = w.status.jobs.find((j) => j.jobId === state.jobId) ?? job;
      workers = w.status.workers;
      live = true;
      const infos = await w.batches(state.jobId);
      if (infos) {
        batches = infos.map((b) => b.state);
        seededFrom = 'coordinator';
        details = infos.map(({ start, end, attempt, worker }) => ({ start, end, attempt, ...(worker ? { worker } : {}) }));
      } else {
        // A coordinator that cannot list batches: what its workers hold runs.
        for (const wk of workers) {
          if (wk.jobId !== state.jobId) continue;
          for (const [start] of wk.batches) {
            const i = engine.jobs.batchOfItem(view.batches, start);
            if (i !== undefined && batches[i] === 'pending') batches[i] = 'running';
          }
        }
      }
    } catch {
      // not reachable: show what the disk says
    }
  }
  const samples = records.byJob(state.jobId)?.state.samples ?? [];
  return { snapshot: { job, batchSize: view.spec.batchSize, batches, details, workers, samples, live, seededFrom }, release };
}

const OPEN_KEY = 'skybatch.openJobPanels';
/** How long a visible panel may take to load its page before it is opened anew. */
const LOAD_TIMEOUT_MS = 8000;

function panelTitle(state: PanelState): string {
  return `Job ${state.jobId} · ${state.pool}`;
}

/** The job a panel titled by `panelTitle` shows. */
export function panelStateFromTitle(title: string): PanelState | undefined {
  const m = /^Job (\S+) · (\S+)$/.exec(title);
  return m ? { jobId: m[1], pool: m[2] } : undefined;
}

/**
 * Job panels: one per job. After a reload VS Code restores them through the serializer
 * below; the panels open when the window went away are also kept in workspace state, so
 * that the ones VS Code did not bring back (code-server may lose a webview tab opened
 * shortly before a page reload) are opened again by `restoreMissing`.
 */
export class JobPanels implements vscode.Disposable {
  private readonly open = new Map<string, vscode.WebviewPanel>();
  private readonly snapshots = new Map<string, PanelSnapshot>();
  private closing = false;

  constructor(
    private readonly media: vscode.Uri,
    private readonly engine: () => Promise<Engine>,
    private readonly records: JobRecords,
    private readonly memento: vscode.Memento,
  ) {}

  show(state: PanelState, opts: { preserveFocus?: boolean; restored?: boolean } = {}): vscode.WebviewPanel {
    const existing = this.open.get(state.jobId);
    if (existing) {
      existing.reveal(undefined, opts.preserveFocus);
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(PANEL_TYPE, panelTitle(state), { viewColumn: vscode.ViewColumn.Beside, preserveFocus: opts.preserveFocus }, this.options());
    this.attach(panel, state, { restored: opts.restored });
    return panel;
  }

  /** Opens the panels that were open before the window went away and have no tab now. */
  restoreMissing(): PanelState[] {
    const tabs = new Set(
      vscode.window.tabGroups.all.flatMap((g) => g.tabs).flatMap((t) => (t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith(PANEL_TYPE) ? [t.label] : [])),
    );
    const missing = this.remembered().filter((s) => !this.open.has(s.jobId) && !tabs.has(panelTitle(s)));
    for (const s of missing) this.show(s, { preserveFocus: true, restored: true });
    return missing;
  }

  private remembered(): PanelState[] {
    return this.memento.get<PanelState[]>(OPEN_KEY, []);
  }

  private remember(state: PanelState, open: boolean): void {
    const rest = this.remembered().filter((s) => s.jobId !== state.jobId);
    void this.memento.update(OPEN_KEY, open ? [...rest, { jobId: state.jobId, pool: state.pool }] : rest);
  }

  options(): vscode.WebviewOptions & vscode.WebviewPanelOptions {
    return { enableScripts: true, localResourceRoots: [this.media], retainContextWhenHidden: true };
  }

  /**
   * Shows job `state` in `panel`. A `restored` panel (after a reload) that never says
   * `ready` while visible is opened anew, at most twice: code-server can revive a webview
   * whose resource service worker is gone, so its CSS and scripts never load.
   */
  attach(panel: vscode.WebviewPanel, state: PanelState, opts: { restored?: boolean; reopened?: number } = {}): void {
    const other = this.open.get(state.jobId);
    if (other && other !== panel) {
      // VS Code restored a panel that restoreMissing had already opened again.
      panel.dispose();
      return;
    }
    this.open.set(state.jobId, panel);
    this.remember(state, true);
    panel.title = panelTitle(state);
    panel.iconPath = vscode.Uri.joinPath(this.media, 'icon.svg');
    panel.webview.options = this.options();
    const nonce = randomBytes(16).toString('base64');
    panel.webview.html = panelHtml(panel.webview, this.media, nonce);
    const closers: (() => void)[] = [];
    let disposed = false;
    let ready = false;
    let replacing = false;
    const reopened = opts.reopened ?? 0;
    const watchdog = (): NodeJS.Timeout =>
      setTimeout(() => {
        if (ready || disposed) return;
        if (!panel.visible) return void (timer = watchdog());
        const viewColumn = panel.viewColumn ?? vscode.ViewColumn.Beside;
        replacing = true;
        this.open.delete(state.jobId);
        panel.dispose();
        if (reopened < 2) this.attach(vscode.window.createWebviewPanel(PANEL_TYPE, panelTitle(state), { viewColumn, preserveFocus: true }, this.options()), state, { restored: true, reopened: reopened + 1 });
      }, LOAD_TIMEOUT_MS);
    let timer = opts.restored ? watchdog() : undefined;
    // The live connection may report its close after the panel is gone: drop such messages.
    const post = (m: ToPanel) => {
      if (!disposed) void panel.webview.postMessage(m);
    };
    const subs = [
      panel.webview.onDidReceiveMessage(async (msg: FromPanel) => {
        if (msg.type === 'ready') {
          ready = true;
          clearTimeout(timer);
          closers.splice(0).forEach((c) => c());
          try {
            await this.sendSnapshot(state, closers, post);
          } catch (err) {
            post({ type: 'disconnected', reason: (err as Error).message });
          }
        } else if (msg.type === 'cancel') {
          await vscode.commands.executeCommand('skybatch.cancelJob', msg.jobId);
        } else if (msg.type === 'recover') {
          await vscode.commands.executeCommand('skybatch.recoverPartialResults', msg.jobId);
          closers.splice(0).forEach((c) => c());
          await this.sendSnapshot(state, closers, post);
        }
      }),
      panel.onDidDispose(() => {
        disposed = true;
        clearTimeout(timer);
        if (this.open.get(state.jobId) === panel) {
          this.open.delete(state.jobId);
          this.snapshots.delete(state.jobId);
        }
        // Closed by the user: not reopened after a reload. (Panels closing with the window stay remembered.)
        if (!this.closing && !replacing) this.remember(state, false);
        closers.forEach((c) => c());
        subs.forEach((s) => s.dispose());
      }),
    ];
  }

  private async sendSnapshot(state: PanelState, closers: (() => void)[], post: (m: ToPanel) => void): Promise<void> {
    const { snapshot, release } = await snapshotOf(await this.engine(), state, this.records, (c) => closers.push(c), post);
    this.snapshots.set(state.jobId, snapshot);
    post({ type: 'snapshot', snapshot });
    release();
  }

  /** The last snapshot an open panel was sent (tests check what a panel attached with). */
  snapshotFor(jobId: string): PanelSnapshot | undefined {
    return this.snapshots.get(jobId);
  }

  panelFor(jobId: string): vscode.WebviewPanel | undefined {
    return this.open.get(jobId);
  }

  dispose(): void {
    this.closing = true;
    for (const p of this.open.values()) p.dispose();
  }
}

/**
 * Restores job panels after a reload. The webview's state names the job; when the window
 * went away before VS Code saved that state (code-server saves editors before the page
 * unloads, not always after the panel's last `setState`), the restored title does.
 */
export function registerJobPanels(panels: JobPanels): vscode.Disposable {
  return vscode.window.registerWebviewPanelSerializer(PANEL_TYPE, {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, saved: PanelState | undefined) {
      const state = saved?.jobId && saved.pool ? saved : panelStateFromTitle(panel.title);
      if (state) panels.attach(panel, state, { restored: true });
      else panel.dispose();
    },
  });
}
