import * as path from 'node:path';
import * as vscode from 'vscode';
import { failedAttempt } from '../runtime/job-events.js';
import type { NotebookProblem } from './core/cell-problem.js';
import { generateJobScript } from './core/job-script.js';
import { JobTracker } from './core/job-tracker.js';
import type { RunSettings } from './core/run-settings.js';
import { scriptMapOf, type ScriptMap } from './core/script-map.js';
import type { NotebookDiagnostics } from './diagnostics.js';
import type { Engine } from './engine.js';
import { JobLauncher, scriptPathFor } from './job-launcher.js';
import { JOB_OUTPUT_MIME } from './core/output-render.js';
import { CellJobOutput, jobOutput } from './job-output.js';
import type { JobRecord, JobRecords } from './job-records.js';
import { watchJob } from './job-watch.js';
import { CellRunner } from './cell-runner.js';
import { CellConsoleOutput } from './cell-console-output.js';
import { ensurePool } from './pool-starter.js';
import { RunErrors } from './run-errors.js';
import { NOTEBOOK_TYPE, cellsOf, roleOf } from './serializer.js';

interface ActiveRun {
  pool: string;
  jobId?: string;
  launcher?: JobLauncher;
  stop?: () => void;
  /** Interrupted before the job was submitted: the script was stopped on the user's word. */
  killed?: boolean;
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

/** How an error position names a cell: by its role ("mapper cell"), not by an index that counts Markdown cells. */
export function cellLabel(doc: vscode.NotebookDocument, index: number): string {
  if (index < 0 || index >= doc.cellCount) return 'notebook';
  const cell = doc.cellAt(index);
  const role = roleOf(cell);
  if (!role) return `Markdown cell ${index + 1}`;
  const same = doc.getCells().filter((c) => roleOf(c) === role);
  return same.length > 1 ? `${role} cell ${same.indexOf(cell) + 1}` : `${role} cell`;
}

function problemsOutput(doc: vscode.NotebookDocument, problems: NotebookProblem[]): vscode.NotebookCellOutput {
  const errors = problems.filter((p) => p.severity === 'error');
  const text = [`The job was not started: ${errors.length} problem(s) in the notebook.`, ...errors.map((p) => `${cellLabel(doc, p.cell)}, line ${p.line + 1}: ${p.message}`)].join('\n');
  return new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.stderr(text)], { skybatch: { problems: errors.length, notebook: doc.uri.toString() } });
}

/**
 * The "Sky Batch" kernel: running any cell runs the whole job (reader + mapper + writers
 * + settings) once, streaming into the run cell; interrupt cancels the job on its pool.
 */
export class BatchJobController implements vscode.Disposable {
  readonly controller: vscode.NotebookController;
  private readonly runs = new Map<string, ActiveRun>();
  /** Per notebook: the cells whose error output the last run put there. */
  private readonly errorCells = new Map<string, vscode.NotebookCell[]>();
  private order = 0;
  readonly cellRunner: CellRunner;

  constructor(private readonly deps: ControllerDeps) {
    this.controller = vscode.notebooks.createNotebookController('skybatch-controller', NOTEBOOK_TYPE, 'Sky Batch');
    this.controller.supportedLanguages = ['typescript', 'javascript', 'yaml', 'python'];
    this.controller.supportsExecutionOrder = true;
    this.controller.description = 'runs the job on a skybatch pool';
    this.controller.executeHandler = (cells, doc) => this.execute(cells, doc);
    this.controller.interruptHandler = (doc) => this.interrupt(doc);
    this.cellRunner = new CellRunner({
      controller: this.controller,
      engine: deps.engine,
      diagnostics: deps.diagnostics,
      log: deps.log,
      nextOrder: () => ++this.order,
      showedErrors: (doc, errors) => this.errorCells.set(doc.uri.toString(), [...(this.errorCells.get(doc.uri.toString()) ?? []), ...errors.shown]),
    });
  }

  isRunning(doc: vscode.NotebookDocument): boolean {
    return this.runs.has(doc.uri.toString());
  }

  activeJob(doc: vscode.NotebookDocument): { jobId?: string; pool: string } | undefined {
    return this.runs.get(doc.uri.toString());
  }

  /**
   * Run All, or running the run cell, submits the job (once, whatever else was run with it);
   * any other cell run alone does its own part on this machine (CellRunner): Shift+Enter
   * through the notebook previews, dry-runs, checks and then submits exactly one job.
   */
  private async execute(cells: vscode.NotebookCell[], doc: vscode.NotebookDocument): Promise<void> {
    const target = outputCellOf(doc);
    if (!target) return;
    if (cells.includes(target) || !cells.some((c) => CellRunner.kindOf(c))) return this.submit(cells, doc, target);
    this.clearErrorOutputs(doc, cells);
    for (const c of cells) if (CellRunner.kindOf(c)) await this.cellRunner.runCell(doc, c);
  }

  private async submit(cells: vscode.NotebookCell[], doc: vscode.NotebookDocument, target: vscode.NotebookCell): Promise<void> {
    const key = doc.uri.toString();
    if (this.runs.has(key)) {
      void vscode.window.showInformationMessage('A job of this notebook is running; interrupt it first to start another.');
      return;
    }
    // Every cell runs again: the last run's errors are history.
    this.deps.diagnostics.clearRuntime(doc);
    this.clearErrorOutputs(doc, cells);
    // The other cells did no work of their own in this run: their old outputs go, with no ✓ and no time.
    for (const c of cells) {
      if (c.index === target.index || c.kind !== vscode.NotebookCellKind.Code) continue;
      const e = this.controller.createNotebookCellExecution(c);
      e.start();
      void e.clearOutput();
      e.end(undefined);
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

  /** Removes the error outputs the notebook's last run put under its cells (the cells being run now clear their own). */
  private clearErrorOutputs(doc: vscode.NotebookDocument, running: readonly vscode.NotebookCell[]): void {
    const key = doc.uri.toString();
    for (const c of this.errorCells.get(key) ?? []) {
      if (c.index < 0 || c.notebook !== doc || running.includes(c)) continue;
      try {
        const e = this.controller.createNotebookCellExecution(c);
        e.start();
        void e.clearOutput();
        e.end(undefined);
      } catch {
        // the cell has an execution of its own meanwhile
      }
    }
    this.errorCells.delete(key);
  }

  private runErrors(doc: vscode.NotebookDocument, map: ScriptMap): RunErrors {
    const errors = new RunErrors({ controller: this.controller, diagnostics: this.deps.diagnostics, nextOrder: () => ++this.order }, doc, map);
    this.errorCells.set(doc.uri.toString(), errors.shown);
    return errors;
  }

  private async runJob(doc: vscode.NotebookDocument, target: vscode.NotebookCell, exec: vscode.NotebookCellExecution, run: ActiveRun): Promise<void> {
    const { problems, settings: valid } = await this.deps.diagnostics.validate(doc);
    let settings = valid;
    if (!settings || problems.some((p) => p.severity === 'error')) {
      await exec.replaceOutput(problemsOutput(doc, problems));
      exec.end(false, Date.now());
      return;
    }
    if (doc.uri.scheme !== 'file') throw new Error('Save the notebook to a file first: paths in it are relative to its folder.');
    const engine = await this.deps.engine();
    const cancelled = { value: false };
    const runStart = Date.now();
    let waitedMs = 0; // answering "start the pool?" is not job time, nor the cell's
    if (!(process.env.SKYBATCH_COORDINATOR_URL || engine.pools.poolRunning(settings.pool))) {
      // No pool is started for a job that cannot be packed for the workers (a missing package, a bundling error).
      run.stop = () => ((cancelled.value = true), this.cellRunner.stop(doc));
      await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.text(`Pool '${settings.pool}' is not running. Checking that the job can be packed for the workers first…`)]));
      const packed = await this.cellRunner.check(doc, 'pack', { settings });
      if (cancelled.value) return this.notStarted(exec, 'interrupted before the job was submitted.');
      if (!packed.ok) {
        const where = packed.at ? `\nRaised in the ${packed.at.label}, line ${packed.at.line + 1} (the traceback is under that cell).` : '';
        await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.stderr(`The job was not started, and no pool was started: it cannot be packed for the workers.\n[${packed.error.code}] ${packed.error.message}${where}`)]));
        exec.end(false, Date.now());
        return;
      }
      await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.text(`The job packs for the workers. Pool '${settings.pool}' is not running: answer the notification to start one.`)]));
      const pool = await ensurePool(engine, settings, path.dirname(doc.uri.fsPath), (l) => this.deps.log.appendLine(l), (ms) => (waitedMs += ms));
      if (!pool) return this.notStarted(exec, `pool '${settings.pool}' is not running and none was chosen. Run the cell again to start one, pick a pool file, or use a running pool.`);
      if (cancelled.value) return this.notStarted(exec, 'interrupted before the job was submitted.');
      settings = { ...settings, pool };
    }
    const tracker = new JobTracker(settings.pool, runStart);
    if (waitedMs) tracker.waited(waitedMs);
    run.pool = settings.pool;
    const script = generateJobScript(cellsOf(doc), settings, path.basename(doc.uri.fsPath));
    // Kept for the run (the script file is not): maps the stacks of its failures back to cells.
    const map = scriptMapOf(script, scriptPathFor(doc.uri.fsPath));
    const errors = this.runErrors(doc, map);
    const record = (): JobRecord => ({ notebook: doc.uri.toString(), cell: target.index, pool: settings.pool, jobId: tracker.state.jobId, state: tracker.state, script: map });
    const out = new CellJobOutput(exec, tracker, () => void this.deps.records.put(record()));
    void out.flush();
    run.stop = () => (cancelled.value = true);
    if (cancelled.value) {
      tracker.cancel('interrupted before the job was submitted');
      return this.finish(exec, out, tracker);
    }
    let lastBatchError: { message: string; stack?: string } | undefined;
    const consoleOut = new CellConsoleOutput(this.controller, doc, target);
    const launcher = new JobLauncher({
      engine,
      notebookPath: doc.uri.fsPath,
      script,
      env: settings.env,
      onEvent: (e) => {
        const hadId = tracker.state.jobId;
        if (!tracker.handle(e)) return;
        const failed = failedAttempt(e);
        if (failed) {
          lastBatchError = failed.error;
          errors.batchFailed(failed);
        }
        if (!hadId && tracker.state.jobId) {
          run.jobId = tracker.state.jobId;
          this.deps.log.appendLine(`job ${run.jobId} submitted to pool ${settings.pool} from ${doc.uri.fsPath}`);
          this.deps.onJob?.(run.jobId, settings.pool);
          void out.flush();
        } else out.update();
      },
      onOutput: (line, stream) => {
        // A line the definitions, reader or writers cell printed goes under that cell; the rest (the submission's) to the run's log.
        const taken = consoleOut.line(line, stream);
        if (taken === 'marker') return;
        this.deps.log.appendLine(`[${stream}] ${line}`);
        if (taken) return;
        if (stream === 'stdout' && line.trim()) (tracker.log(line), out.update());
      },
    });
    run.launcher = launcher;
    const result = await launcher.run();
    await consoleOut.flush();
    let failure: { message: string; stack?: string } | undefined;
    let fallbackLine: number | undefined;
    if (!tracker.finished) {
      const err = result.error ?? { code: 'SKYBATCH_E_SCRIPT', message: `the job script exited with code ${result.code} before the job finished` };
      if (run.killed) tracker.cancel('interrupted before the job was submitted');
      else tracker.fail(err.code, err.message, Date.now(), result.error?.stack);
      failure = run.killed ? undefined : { message: err.message, stack: result.error?.stack };
      fallbackLine = result.error?.scriptLine;
    } else if (tracker.state.status === 'FAILED') {
      const e = tracker.state.error;
      failure = e?.stack ? e : (lastBatchError ?? e);
    }
    if (failure) {
      // The script's own failure may carry only the job's summary (no stack into a cell), e.g. when it exits
      // before the job's last event is read: the last failed attempt's stack says where it was raised.
      const at =
        (await errors.failed(failure, { fallbackLine, jobId: tracker.state.jobId })) ??
        (lastBatchError && lastBatchError !== failure ? await errors.failed(lastBatchError, { jobId: tracker.state.jobId }) : undefined);
      if (at) tracker.state.errorAt = at;
    } else if (tracker.state.status === 'SUCCEEDED') {
      this.deps.diagnostics.downgradeRuntime(doc, '(a later attempt of the batch succeeded)');
    }
    return this.finish(exec, out, tracker);
  }

  /** The user declined or stopped before anything ran: said as it is, neither a success nor a failure. */
  private async notStarted(exec: vscode.NotebookCellExecution, why: string): Promise<void> {
    await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.text(`<div class="skybatch-not-started" style="opacity: .85">Not started: ${why.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!)}</div>`, JOB_OUTPUT_MIME), vscode.NotebookCellOutputItem.text(`Not started: ${why}`)]));
    exec.end(undefined);
  }

  private async finish(exec: vscode.NotebookCellExecution, out: CellJobOutput, tracker: JobTracker): Promise<void> {
    tracker.state.finishedAt ??= Date.now();
    await out.close();
    if (tracker.state.jobId) this.deps.onJob?.(tracker.state.jobId, tracker.state.pool);
    // A cancel is what the user asked for: neither a success nor a failure.
    const status = tracker.state.status;
    // The cell's time is end minus start: the time the user took to answer is not the job's.
    exec.end(status === 'SUCCEEDED' ? true : status === 'CANCELLED' ? undefined : false, tracker.state.finishedAt - (tracker.state.waitedMs ?? 0));
  }

  private async interrupt(doc: vscode.NotebookDocument): Promise<void> {
    this.cellRunner.stop(doc);
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
      run.killed = true;
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
      const status = tracker.state.status;
      exec.end(status === 'SUCCEEDED' ? true : status === 'CANCELLED' ? undefined : false, (tracker.state.finishedAt ?? Date.now()) - (tracker.state.waitedMs ?? 0));
      return;
    }
    const run: ActiveRun = { pool: rec.pool, jobId: rec.jobId };
    this.runs.set(key, run);
    const errors = rec.script && this.runErrors(doc, rec.script);
    const out = new CellJobOutput(exec, tracker, () => void this.deps.records.put({ ...rec, state: tracker.state }));
    try {
      const engine = await this.deps.engine();
      let watch;
      let lastBatchError: { message: string; stack?: string } | undefined;
      try {
        watch = await watchJob(engine, rec.pool, rec.jobId, (e) => {
          if (!tracker.handle(e)) return;
          const failed = failedAttempt(e);
          if (failed) (lastBatchError = failed.error), errors?.batchFailed(failed);
          out.update();
        });
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
      else if (tracker.state.status === 'FAILED' && errors) {
        const e = tracker.state.error;
        const failure = e?.stack ? e : (lastBatchError ?? e);
        const at = failure && (await errors.failed(failure, { jobId: rec.jobId }));
        if (at) tracker.state.errorAt = at;
      }
      await this.finish(exec, out, tracker);
    } finally {
      this.runs.delete(key);
    }
  }

  dispose(): void {
    for (const r of this.runs.values()) r.launcher?.kill();
    this.cellRunner.dispose();
    this.controller.dispose();
  }
}

export type { RunSettings };
