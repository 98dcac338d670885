import * as path from 'node:path';
import * as vscode from 'vscode';
import type { NotebookProblem } from './core/cell-problem.js';
import { generateJobScript, locate } from './core/job-script.js';
import { JobTracker } from './core/job-tracker.js';
import type { RunSettings } from './core/run-settings.js';
import type { NotebookDiagnostics } from './diagnostics.js';
import type { Engine } from './engine.js';
import { JobLauncher } from './job-launcher.js';
import { CellJobOutput, jobOutput } from './job-output.js';
import type { JobRecord, JobRecords } from './job-records.js';
import { watchJob } from './job-watch.js';
import { ensurePool } from './pool-starter.js';
import { NOTEBOOK_TYPE, cellsOf, roleOf } from './serializer.js';

interface ActiveRun {
  pool: string;
  jobId?: string;
  launcher?: JobLauncher;
  stop?: () => void;
}

export interface ControllerDeps {
  engine: () => Promise<Engine>;
  diagnostics: NotebookDiagnostics;
  records: JobRecords;
  log: vscode.OutputChannel;
  /** Told when a run learns its job id (the pools view refreshes, tests wait on it). */
  onJob?: (jobId: string, pool: string) => void;
}

/** The cell that shows a run's output: the run settings cell, else the last code cell. */
export function outputCellOf(doc: vscode.NotebookDocument): vscode.NotebookCell | undefined {
  const code = doc.getCells().filter((c) => c.kind === vscode.NotebookCellKind.Code);
  return code.find((c) => roleOf(c) === 'run') ?? code[code.length - 1];
}

function problemsOutput(doc: vscode.NotebookDocument, problems: NotebookProblem[]): vscode.NotebookCellOutput {
  const errors = problems.filter((p) => p.severity === 'error');
  const text = [`The job was not started: ${errors.length} problem(s) in the notebook.`, ...errors.map((p) => `cell ${p.cell + 1}, line ${p.line + 1}: ${p.message}`)].join('\n');
  return new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.stderr(text)], { skybatch: { problems: errors.length, notebook: doc.uri.toString() } });
}

/**
 * The "Sky Batch" kernel: running any cell runs the whole job (reader + mapper + writers
 * + settings) once, streaming into the run cell; interrupt cancels the job on its pool.
 */
export class BatchJobController implements vscode.Disposable {
  readonly controller: vscode.NotebookController;
  private readonly runs = new Map<string, ActiveRun>();
  private order = 0;

  constructor(private readonly deps: ControllerDeps) {
    this.controller = vscode.notebooks.createNotebookController('skybatch-controller', NOTEBOOK_TYPE, 'Sky Batch');
    this.controller.supportedLanguages = ['typescript', 'javascript', 'yaml'];
    this.controller.supportsExecutionOrder = true;
    this.controller.description = 'runs the job on a skybatch pool';
    this.controller.executeHandler = (cells, doc) => this.execute(cells, doc);
    this.controller.interruptHandler = (doc) => this.interrupt(doc);
  }

  isRunning(doc: vscode.NotebookDocument): boolean {
    return this.runs.has(doc.uri.toString());
  }

  activeJob(doc: vscode.NotebookDocument): { jobId?: string; pool: string } | undefined {
    return this.runs.get(doc.uri.toString());
  }

  private async execute(cells: vscode.NotebookCell[], doc: vscode.NotebookDocument): Promise<void> {
    const key = doc.uri.toString();
    const target = outputCellOf(doc);
    if (!target) return;
    if (this.runs.has(key)) {
      void vscode.window.showInformationMessage('A job of this notebook is running; interrupt it first to start another.');
      return;
    }
    for (const c of cells) {
      if (c.index === target.index || c.kind !== vscode.NotebookCellKind.Code) continue;
      const e = this.controller.createNotebookCellExecution(c);
      e.start(Date.now());
      void e.clearOutput();
      e.end(true, Date.now());
    }
    const exec = this.controller.createNotebookCellExecution(target);
    exec.executionOrder = ++this.order;
    const run: ActiveRun = { pool: '?' };
    this.runs.set(key, run);
    exec.start(Date.now());
    try {
      await this.runJob(doc, target, exec, run);
    } catch (err) {
      void exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.error(err as Error)]));
      exec.end(false, Date.now());
    } finally {
      this.runs.delete(key);
    }
  }

  private async runJob(doc: vscode.NotebookDocument, target: vscode.NotebookCell, exec: vscode.NotebookCellExecution, run: ActiveRun): Promise<void> {
    const { problems, settings } = await this.deps.diagnostics.validate(doc);
    if (!settings || problems.some((p) => p.severity === 'error')) {
      await exec.replaceOutput(problemsOutput(doc, problems));
      exec.end(false, Date.now());
      return;
    }
    if (doc.uri.scheme !== 'file') throw new Error('Save the notebook to a file first: paths in it are relative to its folder.');
    const engine = await this.deps.engine();
    const tracker = new JobTracker(settings.pool);
    run.pool = settings.pool;
    const record = (): JobRecord => ({ notebook: doc.uri.toString(), cell: target.index, pool: settings.pool, jobId: tracker.state.jobId, state: tracker.state });
    const out = new CellJobOutput(exec, tracker, () => void this.deps.records.put(record()));
    void out.flush();
    const cancelled = { value: false };
    run.stop = () => (cancelled.value = true);
    if (!(await ensurePool(engine, settings, path.dirname(doc.uri.fsPath), (l) => (tracker.log(l), out.update())))) {
      tracker.fail('SKYBATCH_E_POOL_NOT_FOUND', `pool '${settings.pool}' is not running; start it with "Sky Batch: Apply Pool" or answer "Apply Pool" when asked`);
      return this.finish(exec, out, tracker);
    }
    if (cancelled.value) {
      tracker.fail('SKYBATCH_E_CANCELLED', 'interrupted before the job was submitted');
      return this.finish(exec, out, tracker);
    }
    const script = generateJobScript(cellsOf(doc), settings, path.basename(doc.uri.fsPath));
    const launcher = new JobLauncher({
      cli: engine.cli,
      notebookPath: doc.uri.fsPath,
      script,
      env: settings.env,
      onEvent: (e) => {
        const hadId = tracker.state.jobId;
        if (!tracker.handle(e)) return;
        if (!hadId && tracker.state.jobId) {
          run.jobId = tracker.state.jobId;
          this.deps.log.appendLine(`job ${run.jobId} submitted to pool ${settings.pool} from ${doc.uri.fsPath}`);
          this.deps.onJob?.(run.jobId, settings.pool);
          void out.flush();
        } else out.update();
      },
      onOutput: (line, stream) => {
        this.deps.log.appendLine(`[${stream}] ${line}`);
        if (stream === 'stdout' && line.trim()) (tracker.log(line), out.update());
      },
    });
    run.launcher = launcher;
    const result = await launcher.run();
    if (!tracker.finished) {
      const err = result.error ?? { code: 'SKYBATCH_E_SCRIPT', message: `the job script exited with code ${result.code} before the job finished` };
      tracker.fail(err.code, err.message);
      const at = result.error?.scriptLine !== undefined ? locate(script.spans, result.error.scriptLine) : undefined;
      if (at) this.deps.diagnostics.report(doc, at.cell, at.line, `[${err.code}] ${err.message.split('\n')[0]}`);
    }
    return this.finish(exec, out, tracker);
  }

  private async finish(exec: vscode.NotebookCellExecution, out: CellJobOutput, tracker: JobTracker): Promise<void> {
    tracker.state.finishedAt ??= Date.now();
    await out.close();
    if (tracker.state.jobId) this.deps.onJob?.(tracker.state.jobId, tracker.state.pool);
    exec.end(tracker.state.status === 'SUCCEEDED', tracker.state.finishedAt);
  }

  private async interrupt(doc: vscode.NotebookDocument): Promise<void> {
    const run = this.runs.get(doc.uri.toString());
    if (!run) return;
    run.stop?.();
    if (run.jobId) {
      const engine = await this.deps.engine();
      try {
        await engine.jobs.cancelJob(run.jobId);
      } catch (err) {
        void vscode.window.showErrorMessage(`Cancel job ${run.jobId}: ${(err as Error).message}`);
      }
    } else {
      run.launcher?.kill();
    }
  }

  /**
   * Shows a notebook's last job again after a reload: a finished job's summary as it
   * was, a running job's live progress (and interrupt still cancels it).
   */
  async restore(doc: vscode.NotebookDocument, rec: JobRecord): Promise<void> {
    const key = doc.uri.toString();
    if (this.runs.has(key) || doc.cellCount === 0) return;
    const cell = doc.cellAt(Math.min(rec.cell, doc.cellCount - 1));
    const tracker = JobTracker.restore(rec.state);
    const exec = this.controller.createNotebookCellExecution(cell);
    exec.start(rec.state.startedAt);
    if (tracker.finished || !rec.jobId) {
      await exec.replaceOutput(jobOutput(tracker));
      exec.end(tracker.state.status === 'SUCCEEDED', tracker.state.finishedAt ?? Date.now());
      return;
    }
    const run: ActiveRun = { pool: rec.pool, jobId: rec.jobId };
    this.runs.set(key, run);
    const out = new CellJobOutput(exec, tracker, () => void this.deps.records.put({ ...rec, state: tracker.state }));
    try {
      const engine = await this.deps.engine();
      let watch;
      try {
        watch = await watchJob(engine, rec.pool, rec.jobId, (e) => tracker.handle(e) && out.update());
      } catch {
        // The pool is gone: the job's record on disk is its last word.
        tracker.summary(engine.jobs.jobFromDisk(rec.jobId));
        if (!tracker.finished) tracker.fail('SKYBATCH_E_POOL_NOT_FOUND', `pool '${rec.pool}' stopped while job ${rec.jobId} was ${tracker.state.status}`);
        return this.finish(exec, out, tracker);
      }
      if (watch.summary) tracker.summary(watch.summary);
      if (watch.batches) tracker.batches(watch.batches);
      void out.flush();
      const how = await watch.ended;
      watch.close();
      if (how === 'disconnected' && !tracker.finished) tracker.fail('SKYBATCH_E_PROTOCOL', `lost the connection to pool '${rec.pool}' while following job ${rec.jobId}`);
      await this.finish(exec, out, tracker);
    } finally {
      this.runs.delete(key);
    }
  }

  dispose(): void {
    for (const r of this.runs.values()) r.launcher?.kill();
    this.controller.dispose();
  }
}

export type { RunSettings };
