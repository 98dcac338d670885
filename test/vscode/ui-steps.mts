import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Frame, FrameLocator, Page } from 'playwright-core';
import type { TestResult } from './host-run.mjs';

export interface UiContext {
  page: Page;
  shots: string;
  log: (l: string) => void;
  /** Names the run in test titles: `ui` unless told. */
  label?: string;
  /** The workspace folder VS Code has open. */
  ws?: string;
}

const T = 60_000;

/** The notebook's output webview (two frames down). */
function outputs(page: Page): FrameLocator {
  return page.frameLocator('.notebook-editor iframe.webview.ready').frameLocator('#active-frame');
}

async function palette(page: Page, title: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10_000 });
  await page.keyboard.press('Enter');
}

async function openFile(page: Page, name: string): Promise<void> {
  const input = page.locator('.quick-input-widget input');
  // Quick Open closes when it loses focus: right after a command that moves focus (Close All
  // Editors) it once closed as it opened (CI: "resolved to hidden" for 10 s). Press again then.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('Control+P');
    try {
      await input.waitFor({ state: 'visible', timeout: 5_000 });
      break;
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
  await input.fill(name);
  // Click the row itself: Enter takes the top row, which may still be a recently opened file
  // while the list catches up with the query.
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().click({ timeout: 10_000 });
}

/** Scrolls the notebook to its end, where the run cell shows the job (outputs render only when in view). */
async function toBottom(page: Page): Promise<void> {
  // Not there yet (a reload restores the notebook in 6–30 s): the caller's deadline decides, not the locator's own 30 s wait.
  const box = await page.locator('.notebook-editor.notebookOverlay').first().boundingBox({ timeout: 1000 }).catch(() => null);
  if (!box) return;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, 20_000);
}

/** Scrolls the notebook to its start. */
async function toTop(page: Page): Promise<void> {
  // Not there yet (a reload restores the notebook in 6–30 s): the caller's deadline decides, not the locator's own 30 s wait.
  const box = await page.locator('.notebook-editor.notebookOverlay').first().boundingBox({ timeout: 1000 }).catch(() => null);
  if (!box) return;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -20_000);
}

/** Waits for `sel` in the notebook's outputs, scrolling to the end (or the start) meanwhile. */
async function waitOutput(page: Page, sel: string, timeout: number, where: 'end' | 'start' = 'end'): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    await (where === 'end' ? toBottom(page) : toTop(page));
    if (await outputs(page).locator(sel).first().isVisible().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`the notebook output did not show ${sel} within ${timeout / 1000} s`);
    await page.waitForTimeout(500);
  }
}

/** Runs all cells; picks the Sky Batch kernel if VS Code asks which one. */
async function runAll(page: Page): Promise<void> {
  await page.locator('.notebook-toolbar-container a[aria-label="Run All"]').first().click();
  const kernel = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Sky Batch' });
  if (await kernel.first().isVisible({ timeout: 1500 }).catch(() => false)) await kernel.first().click();
}

/**
 * Clicks a link in a cell output. Scrolled to the notebook's end, a link near the output's top
 * can sit under the notebook toolbar, which then takes the click: scroll up a little and retry.
 */
async function clickInOutput(page: Page, link: ReturnType<FrameLocator['locator']>): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await link.click({ timeout: 3000 });
      return;
    } catch (err) {
      if (i >= 8) throw err;
      const box = await page.locator('.notebook-editor.notebookOverlay').first().boundingBox({ timeout: 1000 }).catch(() => null);
      if (box) await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.wheel(0, -150);
    }
  }
}

/** Runs one cell as a person does: click into its editor and press Shift+Enter (picks the Sky Batch kernel if asked). */
async function runCellByKeys(page: Page, text: string): Promise<void> {
  await toTop(page);
  const cell = page.locator('.notebook-editor .code-cell-row', { hasText: text }).first();
  await cell.locator('.monaco-editor').first().click({ timeout: T });
  await page.keyboard.press('Shift+Enter');
  const kernel = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Sky Batch' });
  if (await kernel.first().isVisible({ timeout: 1500 }).catch(() => false)) await kernel.first().click();
}

/**
 * The frame of a job panel's page (a webview panel: an iframe holding #active-frame): any
 * panel's, or the one whose script shows job `job` (a panel may be opened anew while it loads).
 */
async function panelFrame(page: Page, job?: string): Promise<Frame> {
  const shows = async (f: Frame) =>
    job === undefined
      ? (await f.locator('#grid').count().catch(() => 0)) > 0
      : ((await f.locator('#title').first().textContent({ timeout: 200 }).catch(() => '')) ?? '').startsWith(`Job ${job} `);
  const deadline = Date.now() + T;
  for (;;) {
    for (const f of page.frames()) if (await shows(f)) return f;
    if (Date.now() > deadline) throw new Error(job === undefined ? 'the job panel did not appear' : `no job panel showed job ${job}`);
    await page.waitForTimeout(200);
  }
}

async function percentOf(page: Page): Promise<number> {
  return parseInt(await outputs(page).locator('.skybatch-percent').first().innerText(), 10);
}


/** Picks a colour theme through "Preferences: Color Theme" and waits until the workbench wears it. */
async function setTheme(page: Page, label: string, bodyClass: 'vs' | 'hc-light' | 'vs-dark'): Promise<void> {
  // Clicked, not Enter: "Preferences: Browse Color Themes in Marketplace" may rank first.
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill('>Preferences: Color Theme');
  await page.locator('.quick-input-list .monaco-list-row').filter({ hasText: /Preferences: Color Theme/ }).filter({ hasNotText: 'Marketplace' }).first().click({ timeout: 10_000 });
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(label);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first().click({ timeout: 10_000 });
  await page.locator(`.monaco-workbench.${bodyClass}`).waitFor({ timeout: T });
}

/**
 * Each legend swatch of a job panel against the panel's background: the best contrast of its
 * fill (over the background), its border and its inset ring, which WCAG asks to be 3:1 for
 * the parts of a graphic one needs to tell states apart.
 */
async function swatchContrasts(panel: Frame): Promise<{ state: string; ratio: number }[]> {
  return panel.evaluate(() => {
    const parse = (c: string): [number, number, number, number] | undefined => {
      const m = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)/.exec(c);
      if (m) return [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])];
      const h = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(c.trim());
      return h ? [parseInt(h[1].slice(0, 2), 16), parseInt(h[1].slice(2, 4), 16), parseInt(h[1].slice(4, 6), 16), h[2] ? parseInt(h[2], 16) / 255 : 1] : undefined;
    };
    const lum = ([r, g, b]: number[]) => {
      const f = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const over = (c: number[], bg: number[]) => [0, 1, 2].map((i) => c[i] * c[3] + bg[i] * (1 - c[3]));
    const ratio = (a: number[], b: number[]) => {
      const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
      return (x + 0.05) / (y + 0.05);
    };
    const bg = parse(getComputedStyle(document.documentElement).getPropertyValue('--vscode-editor-background'))!;
    return [...document.querySelectorAll<HTMLElement>('.legend .batch')].map((e) => {
      const cs = getComputedStyle(e);
      const edges = [cs.backgroundColor];
      if (parseFloat(cs.borderTopWidth) >= 1) edges.push(cs.borderTopColor);
      const ring = /(rgba?\([^)]*\))[^,]*inset/.exec(cs.boxShadow);
      if (ring) edges.push(ring[1]);
      const best = Math.max(...edges.map(parse).filter((c): c is [number, number, number, number] => !!c && c[3] > 0).map((c) => ratio(over(c, bg), bg)), 1);
      return { state: e.className.replace('batch ', ''), ratio: Math.round(best * 100) / 100 };
    });
  });
}

export function uiSteps(opts: { pool: string }) {
  const steps: [string, (c: UiContext) => Promise<void>][] = [
    [
      'the workbench shows the Sky Batch activity bar entry',
      async ({ page }) => {
        await page.locator('.monaco-workbench').waitFor({ timeout: T });
        await page.locator('.activitybar .action-item a[aria-label="Sky Batch"]').waitFor({ timeout: T });
      },
    ],
    [
      'the image sample opens as a Batch Job notebook with its cell roles',
      async ({ page }) => {
        await openFile(page, 'images.skybatch');
        await page.locator('.notebook-editor.notebookOverlay .code-cell-row').first().waitFor({ timeout: T });
        await page.locator('.cell-statusbar-container', { hasText: 'mapper' }).first().waitFor({ timeout: T });
      },
    ],
    [
      "running the reader cell on its own (Shift+Enter) previews its first items",
      async ({ page }) => {
        await runCellByKeys(page, "new sky.JsonReader('prompts.jsonl')");
        await waitOutput(page, 'table.skybatch-preview', T, 'start');
        await outputs(page).getByText(/Reader preview: first \d+ of \d+ items/).first().waitFor({ timeout: T });
      },
    ],
    [
      'running the mapper cell shows one sample batch of images from a dry run, with no pool running',
      async ({ page }) => {
        await runCellByKeys(page, 'for await (const batch of sky.load())');
        await waitOutput(page, 'table.skybatch-dry-run img.skybatch-image', 90_000, 'start');
        const img = outputs(page).locator('table.skybatch-dry-run img.skybatch-image').first();
        if (!((await img.evaluate((e) => (e as HTMLImageElement).naturalWidth)) > 0)) throw new Error('the dry-run image did not load');
        await outputs(page).getByText(/Dry run: items \[0, \d+\] of \d+ on this machine, no pool/).first().waitFor({ timeout: T });
        await img.scrollIntoViewIfNeeded();
        // Leave the cell editor: VS Code shows no extension toasts to someone typing, and the next step waits for one.
        await page.keyboard.press('Escape');
      },
    ],
    [
      'Run All offers to start the pool that is not running',
      async ({ page }) => {
        await runAll(page);
        const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `Pool '${opts.pool}' is not running` });
        await toast.waitFor({ timeout: T });
      },
    ],
    [
      'after Apply Pool the job runs and its progress reaches 100%',
      async ({ page }) => {
        await page.locator('.notifications-toasts .notification-toast a.monaco-button', { hasText: 'Apply Pool' }).click();
        const out = outputs(page);
        await waitOutput(page, '.skybatch-job[data-status="SUCCEEDED"]', 120_000);
        const pct = await out.locator('.skybatch-percent').innerText();
        if (pct.trim() !== '100%') throw new Error(`progress shows ${pct}`);
        await out.locator('.skybatch-job').scrollIntoViewIfNeeded();
      },
    ],
    [
      'the output shows generated images as inline previews and a sample table',
      async ({ page }) => {
        const out = outputs(page);
        const img = out.locator('img.skybatch-image').first();
        await img.waitFor({ timeout: T });
        const w = await img.evaluate((e) => (e as HTMLImageElement).naturalWidth);
        if (!(w > 0)) throw new Error('the preview image did not load');
        await out.locator('table.skybatch-samples').waitFor({ timeout: T });
        await img.scrollIntoViewIfNeeded();
      },
    ],
    [
      'the job panel shows the batch grid, workers, throughput and the image gallery',
      async ({ page }) => {
        await palette(page, 'Sky Batch: Show Job Panel');
        const f = await panelFrame(page);
        await f.locator('#grid .batch.done').first().waitFor({ timeout: T });
        if (await f.locator('#grid .batch:not(.done)').count()) throw new Error('not every batch is done in the grid');
        await f.locator('#gallery img').first().waitFor({ timeout: T });
        await f.locator('vscode-data-grid#workers vscode-data-grid-row').nth(1).waitFor({ timeout: T });
        // The job ended before the panel opened: its throughput is drawn on axes, as its average.
        // (attached, not visible: a horizontal line has no height, which Playwright calls hidden)
        await f.locator('#chart line.axis').nth(1).waitFor({ state: 'attached', timeout: T });
        await f.locator('#chart path.series.average').waitFor({ state: 'attached', timeout: T });
        if ((await f.locator('#chart text.tick').count()) < 4) throw new Error('the throughput chart has no axis labels');
      },
    ],
    [
      'the Pools explorer lists the pool, its workers and its jobs',
      async ({ page }) => {
        await page.locator('.activitybar .action-item a[aria-label="Sky Batch"]').click();
        const rows = page.locator('.pane-body .monaco-list-row');
        await rows.filter({ hasText: opts.pool }).first().waitFor({ timeout: T });
        await rows.filter({ hasText: /job \d+\s*SUCCEEDED/ }).first().waitFor({ timeout: T });
        await rows.filter({ hasText: /local-\d+\s*\S+ · idle · engine running/ }).first().waitFor({ timeout: T });
      },
    ],
    [
      'a deliberately failing job ends FAILED with its recovery hint',
      async ({ page }) => {
        await palette(page, 'View: Close All Editors');
        await page.locator('.notebook-editor').first().waitFor({ state: 'detached', timeout: T });
        await openFile(page, 'failing.skybatch');
        await page.locator('.notebook-editor.notebookOverlay .code-cell-row').first().waitFor({ timeout: T });
        await runAll(page);
        const out = outputs(page);
        await waitOutput(page, '.skybatch-job[data-status="FAILED"]', 90_000);
        await out.getByText('Recover partial results').first().waitFor({ timeout: T });
        await out.getByText('raised in the mapper cell, line 2').first().waitFor({ timeout: T });
      },
    ],
    [
      "the mapper's error is under the mapper cell, which shows failed, and its link goes to the line",
      async ({ page }) => {
        const out = outputs(page);
        const mapperRow = page.locator('.notebook-editor .code-cell-row.focused', { hasText: 'for await (const batch of sky.load())' }).first();
        // The run cell's output names the cell by role; the link (the extension's output renderer) goes there.
        await waitOutput(page, 'a.skybatch-link[data-skybatch-goto]', 60_000);
        await out.locator('a.skybatch-link[data-skybatch-goto]').first().click();
        await mapperRow.waitFor({ timeout: T });
        // VS Code's error renderer draws the traceback; its "Cell In[n], line m" is a link to the cell's line.
        await waitOutput(page, 'a[href*="execution_count"]', 60_000, 'start');
        await out.getByText('mapper cell, line 2, in mapper:').first().waitFor({ timeout: T });
        await out.getByText('deliberate failure on item 7').first().waitFor({ timeout: T });
        const mapperCell = page.locator('.notebook-editor .code-cell-row', { hasText: 'for await (const batch of sky.load())' }).first();
        await mapperCell.locator('.codicon-notebook-state-error').first().waitFor({ timeout: T });
        // VS Code's own "Go To" (most recently failed cell) knows it too.
        await page.locator('.notebook-toolbar-container .action-item', { hasText: 'Go To' }).first().waitFor({ timeout: T });
        // Away from the mapper cell (into the one-line writers cell's text: a click on the run cell's
        // row could land on its output, which took no focus once), then back through the traceback's link.
        await page.locator('.notebook-editor .code-cell-row', { hasText: 'sky.JsonWriter(' }).first().locator('.view-line').first().click();
        await mapperRow.waitFor({ state: 'detached', timeout: T });
        await out.locator('a[href*="execution_count"]').first().click();
        await mapperRow.waitFor({ timeout: T });
        await out.getByText('mapper cell, line 2, in mapper:').first().scrollIntoViewIfNeeded();
        // Leave the cell's text editor: VS Code shows no extension toasts to someone typing, and the next step waits for one.
        await page.keyboard.press('Escape');
      },
    ],
    [
      'Recover Partial Results merges the failed job and opens its output',
      async ({ page }) => {
        await palette(page, 'Sky Batch: Recover Partial Results');
        const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'FAILED' }).first();
        await row.waitFor({ timeout: T });
        await row.click();
        await page.locator('.notifications-toasts .notification-toast', { hasText: /Job \d+: recovered \d+ row/ }).waitFor({ timeout: T });
        await page.locator('.tabs-container .tab', { hasText: 'output.jsonl' }).waitFor({ timeout: T });
      },
    ],
    [
      'recovering a failed job over the output a newer job wrote asks first',
      async ({ page, ws, shots }) => {
        // The failing job again (its batches not merged yet), then the fixed job succeeds into the same output.
        await palette(page, 'View: Close All Editors');
        await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: T });
        await openFile(page, 'failing.skybatch');
        await page.locator('.notebook-editor.notebookOverlay .code-cell-row').first().waitFor({ timeout: T });
        // Its last run's output comes back with the notebook (reattach): that job was recovered already.
        await waitOutput(page, '.skybatch-job[data-status="FAILED"]', 60_000);
        const before = await outputs(page).locator('.skybatch-job').first().getAttribute('data-job');
        await runAll(page);
        await waitOutput(page, `.skybatch-job[data-status="FAILED"][data-job]:not([data-job=""]):not([data-job="${before}"])`, 90_000);
        const failed = await outputs(page).locator('.skybatch-job[data-status="FAILED"]').first().getAttribute('data-job');
        await palette(page, 'View: Close All Editors');
        await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: T });
        await openFile(page, 'fixed.skybatch');
        await page.locator('.notebook-editor.notebookOverlay .code-cell-row').first().waitFor({ timeout: T });
        await runAll(page);
        await waitOutput(page, '.skybatch-job[data-status="SUCCEEDED"]', 90_000);
        const newer = await outputs(page).locator('.skybatch-job[data-status="SUCCEEDED"]').first().getAttribute('data-job');
        const file = path.join(ws!, 'samples', 'failing', 'output', 'output.jsonl');
        const full = fs.readFileSync(file, 'utf8');
        if (full.trim().split('\n').length !== 12) throw new Error(`the fixed job wrote ${full.trim().split('\n').length} rows, not 12`);
        // The output path is a link that opens the file.
        await clickInOutput(page, outputs(page).locator('.skybatch-outputs a.skybatch-link').first());
        await page.locator('.tabs-container .tab', { hasText: 'output.jsonl' }).waitFor({ timeout: T });
        await palette(page, 'Sky Batch: Recover Partial Results');
        const row = page.locator('.quick-input-list .monaco-list-row', { hasText: `job ${failed}` }).first();
        await row.waitFor({ timeout: T });
        await row.click();
        const dialog = page.locator('.monaco-dialog-box', { hasText: `Replace the output of the newer job ${newer} with job ${failed}'s partial results?` });
        await dialog.waitFor({ timeout: T });
        await page.screenshot({ path: path.join(shots, '11-a-recover-asks-before-replacing-a-newer-output.png') });
        await dialog.locator('.dialog-buttons a.monaco-button', { hasText: 'Cancel' }).click();
        await dialog.waitFor({ state: 'detached', timeout: T });
        if (fs.readFileSync(file, 'utf8') !== full) throw new Error('the newer output was replaced although the question was declined');
      },
    ],
    [
      "the Pools view title's Apply Pool asks which pool the file creates or changes",
      async ({ page, shots }) => {
        // The view's only pane has no header of its own: its title actions sit in the side bar's title.
        const sidebar = page.locator('.part.sidebar');
        const row = sidebar.locator('.monaco-list-row', { hasText: opts.pool }).first();
        if (!(await row.isVisible().catch(() => false))) await page.locator('.activitybar .action-item a[aria-label="Sky Batch"]').click();
        // A selected pool used to be the target of the title action, without a question.
        await row.click();
        await sidebar.hover();
        await sidebar.locator('a.action-label[aria-label="Apply Pool"]').first().click();
        const input = page.locator('.quick-input-widget input');
        await page.locator('.quick-input-widget input[placeholder="Apply which pool file?"]').waitFor({ timeout: T });
        await input.fill('images/pool.yaml');
        await page.locator('.quick-input-list .monaco-list-row', { hasText: 'images/pool.yaml' }).first().click();
        await page.locator('.quick-input-widget input[placeholder="Which pool does pool.yaml create or change?"]').waitFor({ timeout: T });
        await page.locator('.quick-input-list .monaco-list-row', { hasText: 'New pool' }).first().waitFor({ timeout: T });
        await page.locator('.quick-input-list .monaco-list-row', { hasText: opts.pool }).first().waitFor({ timeout: T });
        await page.screenshot({ path: path.join(shots, '12-a-apply-pool-asks-which-pool.png') });
        await page.keyboard.press('Escape');
        await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: T });
      },
    ],
    [
      'a notebook whose pool is not running and has no pool file offers create / pick / use a running pool; declining says "Not started"',
      async ({ page, shots }) => {
        await palette(page, 'View: Close All Editors');
        await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: T });
        await openFile(page, 'nopool.skybatch');
        await page.locator('.notebook-editor.notebookOverlay .code-cell-row').first().waitFor({ timeout: T });
        await runAll(page);
        const toast = page.locator('.notifications-toasts .notification-toast', { hasText: "Pool 'nowhere-pool' is not running and there is no pool file" });
        await toast.waitFor({ timeout: 90_000 });
        for (const b of ['Create a local pool.yaml', 'Pick a pool file…', 'Use a running pool…']) await toast.locator('a.monaco-button', { hasText: b }).waitFor({ timeout: T });
        await page.screenshot({ path: path.join(shots, '15-a-no-pool-file-offers-three-ways.png') });
        await toast.hover();
        await toast.locator('.codicon-notifications-clear').first().click();
        await waitOutput(page, '.skybatch-not-started', 60_000);
        const run = page.locator('.notebook-editor .code-cell-row', { hasText: 'nowhere-pool' }).first();
        if (await run.locator('.codicon-notebook-state-error').count()) throw new Error('declining is shown as a failure');
      },
    ],
    [
      'after a page reload mid-job the cell output and the job panel reattach and follow the job to 100%',
      async ({ page, log, shots }) => {
        await palette(page, 'View: Close All Editors');
        await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: T });
        await openFile(page, 'slow.skybatch');
        await page.locator('.notebook-editor.notebookOverlay .code-cell-row').first().waitFor({ timeout: T });
        await runAll(page);
        await waitOutput(page, '.skybatch-job[data-status="RUNNING"][data-job]:not([data-job=""])', 60_000);
        const job = await outputs(page).locator('.skybatch-job').first().getAttribute('data-job');
        await palette(page, 'Sky Batch: Show Job Panel');
        await (await panelFrame(page)).locator('#grid .batch.done').first().waitFor({ timeout: T });
        const before = await percentOf(page);
        if (before >= 100) throw new Error('the job finished before the reload');
        await page.reload();
        await page.locator('.monaco-workbench').waitFor({ timeout: T });
        // The restored output follows the same job while it still runs...
        await waitOutput(page, `.skybatch-job[data-job="${job}"][data-status="RUNNING"]`, 60_000);
        const after = await percentOf(page);
        if (after >= 100) throw new Error(`the reattached output first showed ${after}%`);
        // ...and so does the restored panel: its batch grid has done and unfinished batches.
        const panel = await panelFrame(page, job!);
        await panel.locator('#grid .batch.done').first().waitFor({ timeout: T });
        const open = await panel.locator('#grid .batch:not(.done)').count();
        log(`    reload at ${before}%, reattached output first seen at ${after}%, restored panel with ${open} unfinished batches`);
        await page.screenshot({ path: path.join(shots, '13-a-reattached-while-the-job-runs.png') });
        await waitOutput(page, `.skybatch-job[data-job="${job}"][data-status="SUCCEEDED"]`, 120_000);
        const pct = await outputs(page).locator('.skybatch-percent').first().innerText();
        if (pct.trim() !== '100%') throw new Error(`progress shows ${pct}`);
        await panel.locator('#status', { hasText: 'SUCCEEDED' }).waitFor({ timeout: T });
        const left = await panel.locator('#grid .batch:not(.done)').count();
        if (left) throw new Error(`the restored panel shows ${left} batches not done after the job succeeded`);
      },
    ],
    [
      'after another reload the finished job\'s summary and panel are still there',
      async ({ page }) => {
        const job = await outputs(page).locator('.skybatch-job').first().getAttribute('data-job');
        await page.reload();
        await page.locator('.monaco-workbench').waitFor({ timeout: T });
        await waitOutput(page, `.skybatch-job[data-job="${job}"][data-status="SUCCEEDED"]`, 60_000);
        const pct = await percentOf(page);
        if (pct !== 100) throw new Error(`the restored summary shows ${pct}%`);
        const panel = await panelFrame(page, job!);
        await panel.locator('#status', { hasText: 'SUCCEEDED' }).waitFor({ timeout: T });
        await panel.locator('#grid .batch.done').first().waitFor({ timeout: T });
        const left = await panel.locator('#grid .batch:not(.done)').count();
        if (left) throw new Error(`the restored panel shows ${left} batches not done`);
      },
    ],
    [
      'a job cancelled from its panel leaves no running or queued batch there, and its cell shows the cancel as no error',
      async ({ page }) => {
        await runAll(page);
        await waitOutput(page, '.skybatch-job[data-status="RUNNING"][data-job]:not([data-job=""])', 60_000);
        const job = await outputs(page).locator('.skybatch-job[data-status="RUNNING"]').first().getAttribute('data-job');
        await palette(page, 'Sky Batch: Show Job Panel');
        const panel = await panelFrame(page, job!);
        await panel.locator('#grid .batch.running').first().waitFor({ timeout: T });
        await panel.locator('#cancel').click();
        await panel.locator('#status', { hasText: 'CANCELLED' }).waitFor({ timeout: T });
        const busy = await panel.locator('#grid .batch.running, #grid .batch.queued, #grid .batch.retrying').count();
        if (busy) throw new Error(`the cancelled job's panel still shows ${busy} running or queued batches`);
        await panel.locator('#bar.CANCELLED').waitFor({ timeout: T });
        await panel.locator('#error.note', { hasText: 'Cancelled: ' }).waitFor({ timeout: T });
        await waitOutput(page, `.skybatch-job[data-job="${job}"][data-status="CANCELLED"]`, 60_000);
        if (await outputs(page).locator('.skybatch-job .skybatch-error').count()) throw new Error('the cancel is shown as an error');
        await outputs(page).locator('.skybatch-note', { hasText: 'Cancelled' }).first().waitFor({ timeout: T });
      },
    ],
    [
      'a notebook whose mapper cell is Python runs on the pool to exact output',
      async ({ page, ws }) => {
        await palette(page, 'View: Close All Editors');
        await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: T });
        await openFile(page, 'python.skybatch');
        await page.locator('.notebook-editor .code-cell-row', { hasText: '@sky.batch.remote_function' }).first().waitFor({ timeout: T });
        await runAll(page);
        await waitOutput(page, '.skybatch-job[data-status="SUCCEEDED"]', 120_000);
        const file = path.join(ws!, 'samples', 'python', 'output', 'output.jsonl');
        const got = fs.readFileSync(file, 'utf8');
        const want = ['hellohello', 'worldworld', 'skysky', 'batchbatch'].map((output) => JSON.stringify({ output })).join('\n') + '\n';
        if (got !== want) throw new Error(`the Python mapper wrote ${JSON.stringify(got)}`);
        await outputs(page).locator('.skybatch-samples-caption', { hasText: '(all 4)' }).first().waitFor({ timeout: T });
      },
    ],
    [
      'in a light theme the cell output and the job panel keep their contrast, and batch squares are focusable with labels',
      async ({ page, shots, log }) => {
        for (const [theme, cls, name] of [['Light Modern', 'vs', 'light-modern'], ['Light High Contrast', 'hc-light', 'light-high-contrast']] as const) {
          await setTheme(page, theme, cls);
          await waitOutput(page, '.skybatch-job[data-status="SUCCEEDED"]', 60_000);
          await outputs(page).locator('.skybatch-job').first().scrollIntoViewIfNeeded();
          await page.screenshot({ path: path.join(shots, `17-a-${name}-cell-output.png`) });
          await palette(page, 'Sky Batch: Show Job Panel');
          const panel = await panelFrame(page);
          await panel.locator('#grid .batch.done').first().waitFor({ timeout: T });
          await panel.locator(cls === 'vs' ? 'body.vscode-light' : 'body.vscode-high-contrast, body.vscode-high-contrast-light').first().waitFor({ state: 'attached', timeout: T });
          const ratios = await swatchContrasts(panel);
          log(`    ${theme}: legend contrast ${ratios.map((r) => `${r.state} ${r.ratio}`).join(', ')}`);
          const low = ratios.filter((r) => r.ratio < 3);
          if (ratios.length < 8 || low.length) throw new Error(`${theme}: legend swatches below 3:1 against the panel: ${JSON.stringify(low)}`);
          // One tab stop for the grid; arrow keys move between labelled squares.
          await panel.locator('#grid .batch[tabindex="0"]').first().focus();
          await page.keyboard.press('ArrowRight');
          const label = await panel.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '');
          if (!/^batch 1: items \[\d+, \d+\] · done/.test(label)) throw new Error(`the focused batch square says ${JSON.stringify(label)}`);
          await page.screenshot({ path: path.join(shots, `17-b-${name}-job-panel.png`) });
          // The panel stays open beside the notebook: the next theme recolours both.
        }
        await setTheme(page, 'Dark Modern', 'vs-dark');
      },
    ],
    [
      'typing `new sky.` in a cell completes the skybatch API, with its types and parameter hints',
      async ({ page, shots }) => {
        // The first code cell is the reader (by position: its text changes below).
        const reader = page.locator('.notebook-editor .code-cell-row').first();
        // Wheel over the notebook's left gutter (over an output the wheel scrolls the output's frame) until the cell is in view.
        const nb = (await page.locator('.notebook-editor.notebookOverlay').first().boundingBox())!;
        const line = reader.locator('.view-line').first();
        for (let i = 0; i < 30; i++) {
          const b = await line.boundingBox();
          if (b && b.y > nb.y + 60 && b.y + b.height < nb.y + nb.height - 20) break;
          await page.mouse.move(nb.x + 12, nb.y + nb.height / 2);
          await page.mouse.wheel(0, b && b.y > nb.y + 60 ? 250 : -250);
          await page.waitForTimeout(150);
        }
        await line.click();
        await page.keyboard.press('Control+A');
        await page.keyboard.type('new sky.');
        // The list is long (every export of skybatch) and drawn only where it shows: filter it.
        const suggest = page.locator('.editor-widget.suggest-widget .monaco-list-row');
        await suggest.filter({ hasText: 'JsonWriter' }).first().waitFor({ timeout: T });
        await page.waitForTimeout(300);
        await page.screenshot({ path: path.join(shots, '18-a-typed-cell-completion.png') }).catch(() => undefined);
        await page.keyboard.type('saveR');
        await suggest.filter({ hasText: 'saveResults' }).first().waitFor({ timeout: T });
        await page.keyboard.press('Escape');
        for (let i = 0; i < 'saveR'.length; i++) await page.keyboard.press('Backspace');
        await page.keyboard.type('JsonWriter(');
        await page.locator('.parameter-hints-widget', { hasText: 'path' }).first().waitFor({ timeout: T });
        await page.keyboard.press('Escape');
        // Back to the cell as it was (inserted, not typed: typing would auto-close brackets and quotes).
        await line.click();
        await page.keyboard.press('Control+A');
        await page.keyboard.insertText("new sky.JsonReader('data.jsonl')");
        // Monaco draws spaces as no-break spaces.
        const restored = async () => ((await reader.innerText()).replace(/\u00a0/g, ' ').includes("new sky.JsonReader('data.jsonl')") ? true : undefined);
        for (let i = 0; i < 20 && !(await restored()); i++) await page.waitForTimeout(250);
        if (!(await restored())) throw new Error('the reader cell did not get its text back');
      },
    ],
  ];
  return steps;
}

/** The other shipped samples, run from the installed .vsix in a workspace with no node_modules (the image sample runs in the first steps). */
export function vsixSampleSteps(): ReturnType<typeof uiSteps> {
  const sample = (file: string, pool: string, check: (ws: string) => void): ReturnType<typeof uiSteps>[number] => [
    `the ${file} sample runs as shipped, with no node_modules in the workspace`,
    async ({ page, ws }) => {
      await palette(page, 'View: Close All Editors');
      await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: T });
      await openFile(page, file);
      await page.locator('.notebook-editor.notebookOverlay .code-cell-row').first().waitFor({ timeout: T });
      await runAll(page);
      const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `Pool '${pool}' is not running` });
      await toast.waitFor({ timeout: 90_000 });
      await toast.locator('a.monaco-button', { hasText: 'Apply Pool' }).click();
      await waitOutput(page, '.skybatch-job[data-status="SUCCEEDED"]', 120_000);
      check(ws!);
    },
  ];
  return [
    sample('quickstart.skybatch', 'my-pool', (ws) => {
      const rows = fs.readFileSync(path.join(ws, 'samples', 'quickstart', 'output', 'output.jsonl'), 'utf8').trim().split('\n');
      if (rows.length < 2) throw new Error(`quickstart wrote ${rows.length} rows`);
    }),
    sample('custom-formats.skybatch', 'custom-fmt-pool', (ws) => {
      const out = path.join(ws, 'samples', 'custom-formats', 'output');
      const yaml = fs.readFileSync(path.join(out, 'metadata.yaml'), 'utf8').trim().split('\n');
      if (yaml.length !== 20) throw new Error(`metadata.yaml has ${yaml.length} entries, not 20`);
      if (fs.readdirSync(path.join(out, 'texts')).length !== 20) throw new Error('not 20 text files');
    }),
  ];
}

/** Runs the steps in order, one screenshot each; after a failure the rest are reported failed without running. */
export async function runUiSteps(ctx: UiContext, steps: ReturnType<typeof uiSteps>): Promise<TestResult[]> {
  const results: TestResult[] = [];
  const label = ctx.label ?? 'ui';
  let broken: string | undefined;
  for (const [i, [title, fn]] of steps.entries()) {
    const shot = path.join(ctx.shots, `${String(i + 1).padStart(2, '0')}-${title.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase().slice(0, 60)}.png`);
    if (broken) {
      results.push({ state: 'failed', title: `${label}: ${title}`, error: `skipped: an earlier step failed (${broken})` });
      continue;
    }
    const t0 = Date.now();
    try {
      await fn(ctx);
      await ctx.page.waitForTimeout(300);
      await ctx.page.screenshot({ path: shot });
      results.push({ state: 'passed', title: `${label}: ${title}`, ms: Date.now() - t0 });
      ctx.log(`  ok   ${label}: ${title} (${Date.now() - t0} ms) → ${path.basename(shot)}`);
    } catch (err) {
      await ctx.page.screenshot({ path: shot.replace(/\.png$/, '-FAILED.png') }).catch(() => undefined);
      results.push({ state: 'failed', title: `${label}: ${title}`, error: String((err as Error).stack ?? err) });
      ctx.log(`  FAIL ${label}: ${title}: ${(err as Error).message.split('\n')[0]}`);
      broken = title;
    }
  }
  return results;
}
