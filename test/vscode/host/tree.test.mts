import assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { quickNotebook, SLOW_MAPPER } from './controller.test.mjs';
import { api, defineSuite, openNotebook, POOL, runAll, waitFor } from './helpers.mjs';

export const treeSuite = defineSuite('pools view', (t) => {
  t.test('lists pools, their workers with state and their jobs with status and progress', async () => {
    const { tree } = await api();
    await tree.refresh();
    const pools = tree.getChildren();
    const pool = pools.find((n) => n.type === 'pool' && n.pool === POOL);
    assert.ok(pool, `pool ${POOL} listed: ${JSON.stringify(pools.map((p) => p.type === 'pool' && p.pool))}`);
    const item = tree.getTreeItem(pool);
    assert.equal(item.contextValue, 'pool-running');
    assert.match(String(item.description), /running · 2\/2 workers/);
    const [workers, jobs] = tree.getChildren(pool);
    const ws = tree.getChildren(workers).map((n) => tree.getTreeItem(n));
    assert.equal(ws.length, 2);
    // each worker's host, the coordinator's state of it, and what its backend's engine says
    for (const w of ws) assert.match(String(w.description), /^\S+ · (idle|busy)\b.* · engine running$/);
    const js = tree.getChildren(jobs).map((n) => tree.getTreeItem(n));
    const states = js.map((j) => j.contextValue);
    assert.ok(states.includes('job-SUCCEEDED') && states.includes('job-CANCELLED') && states.includes('job-FAILED'), String(states));
    const ok = js.find((j) => j.contextValue === 'job-SUCCEEDED')!;
    assert.match(String(ok.description), /SUCCEEDED · (\d+)\/\1 batches · 100%/);
    assert.equal(ok.command?.command, 'skybatch.showJobPanel');
  });

  t.test('Show Job Panel opens a webview for a job', async () => {
    const { tree, panels } = await api();
    const pool = tree.getChildren().find((n) => n.type === 'pool' && n.pool === POOL)!;
    const job = tree.getChildren(tree.getChildren(pool)[1])[0];
    assert.equal(job.type, 'job');
    const id = await vscode.commands.executeCommand<string>('skybatch.showJobPanel', job);
    assert.ok(id && panels.panelFor(id), 'the panel is open');
    assert.match(panels.panelFor(id)!.webview.html, /Content-Security-Policy" content="default-src 'none'; .*script-src 'nonce-/);
    // Loaded before the next test opens an editor. code-server's webview service worker
    // sometimes answers a resource request only at its 30 s timeout, hence the long wait.
    await waitFor('the panel to load its page and get its snapshot', () => panels.snapshotFor(id), 60_000);
  });

  t.test('follows a running pool live: job progress and busy workers arrive as events, not by polling', async () => {
    const { tree } = await api();
    await tree.refresh();
    await waitFor('the view to follow the pool', () => tree.following().includes(POOL));
    // Progress between a job's start and end can only come from the pool's events: the
    // controller refreshes the view when a job starts and ends, the poll runs every 5 s.
    const progress = new Set<number>();
    let busy = false;
    const sub = tree.onDidChangeTreeData(() => {
      const status = tree.current().pools.find((p) => p.pool === POOL)?.status;
      for (const j of status?.jobs ?? []) if (j.status === 'RUNNING' && j.batchesDone > 0 && j.batchesDone < j.batchesTotal) progress.add(j.batchesDone);
      busy ||= !!status?.workers.some((w) => w.state === 'busy' && w.batches.length > 0);
    });
    try {
      const editor = await openNotebook(quickNotebook('live-tree', { mapper: SLOW_MAPPER, settings: `pool: ${POOL}\nbatchSize: 1`, items: 16 }));
      assert.match(await runAll(editor, 90_000), /: SUCCEEDED/);
    } finally {
      sub.dispose();
    }
    assert.ok(progress.size >= 3, `the view showed ${progress.size} intermediate progress values: ${[...progress].join(', ')}`);
    assert.ok(busy, 'the view showed a busy worker with its batch');
  });

  t.after(async () => {
    await vscode.commands.executeCommand('skybatch.tearDownPool', POOL, { confirm: false });
  });
});
