import * as vscode from 'vscode';
import { applyToJobs, applyToWorkers } from '../runtime/job-events.js';
import type { BackendWorkerSummary, JobEvent, JobSummary, PoolSummary, WorkerSummary } from '../runtime/protocol.js';
import type { Engine } from './engine.js';
import { watchPool } from './job-watch.js';

export type PoolsNode =
  | { type: 'pool'; pool: string; running: boolean; status?: PoolSummary }
  | { type: 'group'; pool: string; group: 'workers' | 'jobs'; count: number }
  | { type: 'worker'; pool: string; worker: WorkerSummary; engine?: BackendWorkerSummary }
  /** A worker its backend started that has not joined (pending on its engine, starting, gone). */
  | { type: 'engineWorker'; pool: string; engine: BackendWorkerSummary }
  | { type: 'job'; pool: string; job: JobSummary }
  | { type: 'message'; text: string };

interface Snapshot {
  pools: { pool: string; running: boolean; status?: PoolSummary }[];
  jobs: JobSummary[];
  error?: string;
}

/** Running pools push their changes; the poll only finds pools started or stopped elsewhere. */
const POLL_MS = 5000;
/** Pushed changes are drawn at most this often (a busy pool sends thousands of events a second). */
const REDRAW_MS = 250;
const WORKER_ICON: Record<string, string> = { busy: 'sync~spin', idle: 'circle-large-outline', setup: 'loading~spin', starting: 'loading~spin', failed: 'error', gone: 'circle-slash' };
const JOB_ICON: Record<string, string> = { RUNNING: 'sync~spin', PENDING: 'clock', SUCCEEDED: 'pass', FAILED: 'error', CANCELLED: 'circle-slash' };

export function jobDescription(j: JobSummary): string {
  const pct = j.batchesTotal ? Math.floor((100 * j.batchesDone) / j.batchesTotal) : 0;
  return `${j.status} · ${j.batchesDone}/${j.batchesTotal} batches · ${pct}%`;
}

/** A joined worker: its host, the coordinator's state of it, its batches, and what its backend's engine says (ENGINE in `pool status`). */
export function workerDescription(w: WorkerSummary, engine?: BackendWorkerSummary): string {
  const what = w.batches.length ? ` · job ${w.jobId} batch ${w.batches.map((b) => `[${b[0]}, ${b[1]}]`).join(' ')}` : w.jobId ? ` · job ${w.jobId}` : '';
  return `${w.host} · ${w.state}${what}${engine ? ` · engine ${engine.state}` : ''}`;
}

/** A worker its backend started that has not joined: its host and the engine's state and reason. */
export function engineDescription(b: BackendWorkerSummary): string {
  return `${b.host} · engine ${b.state}${b.reason ? `: ${b.reason}` : ''}`;
}

const ENGINE_ICON: Record<string, string> = { pending: 'clock', starting: 'loading~spin', running: 'circle-outline', gone: 'circle-slash' };

/** The "Pools" view: pools → workers (state, current batch) and jobs (status, progress). */
export class PoolsTree implements vscode.TreeDataProvider<PoolsNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private snapshot: Snapshot = { pools: [], jobs: [] };
  private timer?: NodeJS.Timeout;
  private loading?: Promise<Snapshot>;
  /** Running pools whose events the view follows: pool → close. */
  private readonly live = new Map<string, () => void>();
  private redraw?: NodeJS.Timeout;

  constructor(private readonly engine: () => Promise<Engine>) {}

  /** Polls while the view is visible; running pools found by any refresh are followed from then on. */
  attach(view: vscode.TreeView<PoolsNode>): vscode.Disposable {
    const tick = () => {
      if (view.visible) void this.refresh();
    };
    this.timer = setInterval(tick, POLL_MS);
    const sub = view.onDidChangeVisibility(tick);
    tick();
    return new vscode.Disposable(() => {
      clearInterval(this.timer);
      sub.dispose();
    });
  }

  /** Reads every pool and job again, and follows the running pools' events; resolves with what the view now shows. */
  refresh(): Promise<Snapshot> {
    this.loading ??= this.load().then(
      (s) => {
        this.loading = undefined;
        this.snapshot = s;
        this.follow(s.pools.filter((p) => p.running).map((p) => p.pool));
        this.changed.fire();
        return s;
      },
      (err) => {
        this.loading = undefined;
        this.snapshot = { pools: [], jobs: [], error: (err as Error).message };
        this.changed.fire();
        return this.snapshot;
      },
    );
    return this.loading;
  }

  /** The pools whose events the view follows (tests check the view is live). */
  following(): string[] {
    return [...this.live.keys()];
  }

  private follow(running: string[]): void {
    for (const [pool, close] of this.live) {
      if (!running.includes(pool)) (this.live.delete(pool), close());
    }
    for (const pool of running) {
      if (this.live.has(pool)) continue;
      this.live.set(pool, () => undefined);
      const lost = () => {
        // The coordinator went away (or restarted): read the pools again.
        if (this.live.delete(pool)) void this.refresh();
      };
      void this.engine()
        .then((e) => watchPool(e, pool, (ev) => this.apply(pool, ev), lost))
        .then(
          (w) => {
            if (!this.live.has(pool)) return w.close();
            this.live.set(pool, w.close);
            const entry = this.snapshot.pools.find((p) => p.pool === pool);
            if (entry) entry.status = w.status;
            this.schedule();
          },
          () => this.live.delete(pool),
        );
    }
  }

  private unfollow(): void {
    for (const close of this.live.values()) close();
    this.live.clear();
  }

  /** Applies one pushed event to the pool's status: workers, their batches and job progress (see runtime/job-events.ts). */
  private apply(pool: string, ev: JobEvent): void {
    const status = this.snapshot.pools.find((p) => p.pool === pool)?.status;
    if (!status) return;
    const workers = applyToWorkers(status.workers, ev);
    const jobs = applyToJobs(status.jobs, ev);
    if (workers === status.workers && jobs === status.jobs) return;
    Object.assign(status, { workers, jobs });
    this.schedule();
  }

  private schedule(): void {
    this.redraw ??= setTimeout(() => {
      this.redraw = undefined;
      this.changed.fire();
    }, REDRAW_MS);
  }

  private async load(): Promise<Snapshot> {
    const e = await this.engine();
    const pools = [];
    for (const name of e.pools.listPools()) {
      try {
        pools.push(...(await e.pools.poolStatus(name)));
      } catch {
        pools.push({ pool: name, running: false });
      }
    }
    const jobs = await e.jobs.listJobs().catch(() => [] as JobSummary[]);
    return { pools, jobs };
  }

  current(): Snapshot {
    return this.snapshot;
  }

  getChildren(node?: PoolsNode): PoolsNode[] {
    const s = this.snapshot;
    if (!node) {
      if (s.error) return [{ type: 'message', text: `cannot read pools: ${s.error}` }];
      const names = new Set([...s.pools.map((p) => p.pool), ...s.jobs.map((j) => j.pool)]);
      return [...names].sort().map((pool) => ({ type: 'pool', pool, running: false, ...s.pools.find((p) => p.pool === pool) }));
    }
    if (node.type === 'pool') {
      const workers = node.status?.workers.filter((w) => w.state !== 'gone') ?? [];
      const jobs = this.jobsOf(node.pool);
      return [
        { type: 'group', pool: node.pool, group: 'workers', count: workers.length },
        { type: 'group', pool: node.pool, group: 'jobs', count: jobs.length },
      ];
    }
    if (node.type === 'group' && node.group === 'workers') {
      const p = s.pools.find((x) => x.pool === node.pool);
      const joined = (p?.status?.workers ?? []).filter((w) => w.state !== 'gone');
      const engine = new Map((p?.status?.backend?.workers ?? []).map((b) => [b.name, b]));
      const names = new Set(joined.map((w) => w.name));
      return [
        ...joined.map((worker): PoolsNode => ({ type: 'worker', pool: node.pool, worker, engine: engine.get(worker.name) })),
        ...[...engine.values()].filter((b) => !names.has(b.name)).map((b): PoolsNode => ({ type: 'engineWorker', pool: node.pool, engine: b })),
      ];
    }
    if (node.type === 'group') return this.jobsOf(node.pool).map((job) => ({ type: 'job', pool: node.pool, job }));
    return [];
  }

  private jobsOf(pool: string): JobSummary[] {
    const live = this.snapshot.pools.find((p) => p.pool === pool)?.status?.jobs ?? [];
    const byId = new Map(this.snapshot.jobs.filter((j) => j.pool === pool).map((j) => [j.jobId, j]));
    for (const j of live) byId.set(j.jobId, j);
    return [...byId.values()].sort((a, b) => Number(b.jobId) - Number(a.jobId));
  }

  getTreeItem(node: PoolsNode): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    switch (node.type) {
      case 'message':
        return new vscode.TreeItem(node.text, C.None);
      case 'pool': {
        const item = new vscode.TreeItem(node.pool, C.Expanded);
        const live = node.status?.workers.filter((w) => w.state !== 'gone').length ?? 0;
        item.description = node.running ? `running · ${live}/${node.status?.workersWanted ?? '?'} workers` : 'not running';
        item.iconPath = new vscode.ThemeIcon(node.running ? 'server-environment' : 'debug-disconnect');
        item.contextValue = node.running ? 'pool-running' : 'pool-stopped';
        item.tooltip = node.status ? `coordinator ${node.status.url} (pid ${node.status.pid})` : undefined;
        item.id = `pool:${node.pool}`;
        return item;
      }
      case 'group': {
        const item = new vscode.TreeItem(node.group === 'workers' ? 'Workers' : 'Jobs', node.count ? C.Expanded : C.None);
        item.description = String(node.count);
        item.iconPath = new vscode.ThemeIcon(node.group === 'workers' ? 'vm' : 'list-unordered');
        item.id = `group:${node.pool}:${node.group}`;
        return item;
      }
      case 'worker': {
        const item = new vscode.TreeItem(node.worker.name, C.None);
        item.description = workerDescription(node.worker, node.engine);
        item.iconPath = new vscode.ThemeIcon(WORKER_ICON[node.worker.state] ?? 'circle-outline');
        item.contextValue = 'worker';
        item.tooltip = `${node.worker.name} on ${node.worker.host}: ${workerDescription(node.worker, node.engine)}${node.engine?.reason ? ` (${node.engine.reason})` : ''}`;
        item.id = `worker:${node.pool}:${node.worker.workerId}`;
        return item;
      }
      case 'engineWorker': {
        const item = new vscode.TreeItem(node.engine.name, C.None);
        item.description = engineDescription(node.engine);
        item.iconPath = new vscode.ThemeIcon(ENGINE_ICON[node.engine.state] ?? 'circle-outline');
        item.contextValue = 'worker-engine';
        item.tooltip = `${node.engine.name} on ${node.engine.host}: ${node.engine.state} since ${node.engine.since}${node.engine.reason ? `: ${node.engine.reason}` : ''}`;
        item.id = `engine:${node.pool}:${node.engine.name}`;
        return item;
      }
      case 'job': {
        const j = node.job;
        const item = new vscode.TreeItem(`job ${j.jobId}`, C.None);
        item.description = jobDescription(j);
        item.iconPath = new vscode.ThemeIcon(JOB_ICON[j.status] ?? 'circle-outline');
        item.contextValue = `job-${j.status}`;
        item.tooltip = new vscode.MarkdownString(`**job ${j.jobId}** ${j.status}\n\n${j.itemsDone}/${j.itemsTotal} items, ${j.retries} retries\n\nscript: \`${j.scriptPath}\`\n\noutputs: ${j.outputs.map((o) => `\`${o}\``).join(', ')}${j.error ? `\n\n${j.error.message}` : ''}`);
        item.command = { command: 'skybatch.showJobPanel', title: 'Show Job Panel', arguments: [node] };
        item.id = `job:${j.jobId}`;
        return item;
      }
    }
  }

  dispose(): void {
    clearInterval(this.timer);
    clearTimeout(this.redraw);
    this.unfollow();
    this.changed.dispose();
  }
}

export function registerPoolsTree(tree: PoolsTree): vscode.Disposable {
  const view = vscode.window.createTreeView('skybatch.pools', { treeDataProvider: tree, showCollapseAll: true });
  return vscode.Disposable.from(view, tree.attach(view), tree);
}
