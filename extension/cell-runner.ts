import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as vscode from 'vscode';
import type { NotebookProblem } from './core/cell-problem.js';
import { cellRunHtml, cellRunText, type CellRunOutcome } from './core/cell-render.js';
import { generateJobScript, type CellRunTail } from './core/job-script.js';
import type { CellRole } from './core/notebook-format.js';
import { JOB_OUTPUT_MIME } from './core/output-render.js';
import type { RunSettings } from './core/run-settings.js';
import { scriptMapOf, type ScriptMap } from './core/script-map.js';
import type { NotebookDiagnostics } from './diagnostics.js';
import type { Engine } from './engine.js';
import { JobLauncher } from './job-launcher.js';
import { RunErrors } from './run-errors.js';
import { cellsOf, roleOf } from './serializer.js';

const CELL_PREFIX = 'SKYBATCH_CELL ';

export interface CellRunnerDeps {
  controller: vscode.NotebookController;
  engine: () => Promise<Engine>;
  diagnostics: NotebookDiagnostics;
  log: vscode.OutputChannel;
  nextOrder: () => number;
  /** Remembers the cells an error output was put under, so the next run clears them. */
  showedErrors: (doc: vscode.NotebookDocument, errors: RunErrors) => void;
}

export type CellRunKind = CellRunTail['kind'];

/** What a cell run came to: its result, or its error (already put under the cell it came from). */
export type CellRunEnd =
  | { ok: true; outcome: CellRunOutcome }
  | { ok: false; error: { code: string; message: string }; at?: { label: string; cell: number; line: number }; interrupted?: boolean };

/** Which roles each kind of cell run builds: their cells' problems stop it. */
const NEEDS: Record<CellRunKind, CellRole[]> = {
  definitions: ['definitions'],
  reader: ['definitions', 'reader'],
  mapper: ['definitions', 'reader', 'mapper'],
  writers: ['definitions', 'writers'],
  pack: ['definitions', 'reader', 'mapper', 'writers', 'run'],
};

/**
 * Runs one cell's part of a job on this machine, with no pool, in a child process (the
 * generated script, cut to what the cell needs, calling the engine's `runCell`): the
 * reader cell previews its first items, the mapper cell runs the mapper on one small batch
 * in a mapper process (a dry run, nothing written), the writers cell checks the writers
 * and says where each writes, a definitions cell loads. Its console output and its result
 * or error go under the cell that was run.
 */
export class CellRunner {
  private readonly active = new Map<string, Set<JobLauncher>>();
  private readonly interrupted = new WeakSet<JobLauncher>();

  constructor(private readonly deps: CellRunnerDeps) {}

  static kindOf(cell: vscode.NotebookCell): CellRunKind | undefined {
    const role = roleOf(cell);
    return role === 'run' ? undefined : role;
  }

  /** Runs `cell` on its own as one execution; its checkmark means its own work was done. */
  async runCell(doc: vscode.NotebookDocument, cell: vscode.NotebookCell): Promise<void> {
    const kind = CellRunner.kindOf(cell);
    if (!kind) return;
    const exec = this.deps.controller.createNotebookCellExecution(cell);
    exec.executionOrder = this.deps.nextOrder();
    exec.start(Date.now());
    await exec.clearOutput();
    try {
      // The cell's console output, in order; stderr lines count only when the run succeeds (on failure they are the traceback, shown as such).
      const lines: { line: string; stream: 'stdout' | 'stderr' }[] = [];
      const show = () => void exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.text(`running the ${kind} cell on this machine…\n${lines.map((l) => l.line).join('\n')}`)]));
      const end = await this.check(doc, kind, { exec, cell, onLog: (line, stream) => (lines.push({ line, stream }), show()) });
      const logs = lines.filter((l) => end.ok || l.stream === 'stdout').map((l) => l.line);
      if (!end.ok && end.interrupted) {
        await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.text('Interrupted.')]));
        exec.end(undefined);
        return;
      }
      if (end.ok) {
        await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.text(cellRunHtml(end.outcome, logs), JOB_OUTPUT_MIME), vscode.NotebookCellOutputItem.text(cellRunText(end.outcome, logs))]));
        exec.end(true, Date.now());
        return;
      }
      // The error is under this cell already when it came from it; otherwise say where it is.
      if (end.at?.cell !== cell.index) {
        const where = end.at ? ` It was raised in the ${end.at.label}, line ${end.at.line + 1} (the traceback is under that cell).` : '';
        const text = `[${end.error.code}] ${end.error.message}${where}${logs.length ? `\nconsole:\n${logs.join('\n')}` : ''}`;
        await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.stderr(text)]));
      } else if (logs.length) {
        await exec.appendOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.stdout(logs.join('\n'))]));
      }
      exec.end(false, Date.now());
    } catch (err) {
      await exec.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.error(err as Error)]));
      exec.end(false, Date.now());
    }
  }

  /**
   * Runs a cell's part (or `pack`: the whole job, checked to be packable) and maps its error
   * to the cell it came from. `running` is the execution of the cell being run, if any.
   */
  async check(
    doc: vscode.NotebookDocument,
    kind: CellRunKind,
    opts: { exec?: vscode.NotebookCellExecution; cell?: vscode.NotebookCell; settings?: RunSettings; onLog?: (line: string, stream: 'stdout' | 'stderr') => void } = {},
  ): Promise<CellRunEnd> {
    const { problems, settings: valid } = await this.deps.diagnostics.validate(doc);
    const cells = cellsOf(doc);
    const roles = NEEDS[kind];
    const blocking = problems.filter((p) => p.severity === 'error' && (p.cell < 0 || roles.includes(cells[p.cell]?.kind === 'code' ? (cells[p.cell] as { role: CellRole }).role : 'definitions')));
    if (blocking.length) return { ok: false, error: { code: 'SKYBATCH_E_BAD_OPTION', message: problemsText(blocking) } };
    if (doc.uri.scheme !== 'file') return { ok: false, error: { code: 'SKYBATCH_E_BAD_OPTION', message: 'Save the notebook to a file first: paths in it are relative to its folder.' } };
    // Running a cell again: the errors its last run left on lines are history.
    this.deps.diagnostics.clearRuntime(doc);
    // A preview needs no run settings; the mapper's dry run takes its batch size from them when they are valid.
    const settings = opts.settings ?? valid ?? { pool: 'preview', batchSize: 5 };
    const engine = await this.deps.engine();
    const runner = pathToFileURL(path.join(engine.root, 'out', 'runtime', 'client', 'cell-run.js')).href;
    const script = generateJobScript(cells, settings, path.basename(doc.uri.fsPath), { kind, runner });
    const scriptPath = path.join(path.dirname(doc.uri.fsPath), `.${path.basename(doc.uri.fsPath)}.${kind}.ts`);
    const map = scriptMapOf(script, scriptPath);
    let outcome: CellRunOutcome | { kind: 'error'; error: { code: string; message: string; stack?: string } } | undefined;
    const launcher = new JobLauncher({
      engine,
      notebookPath: doc.uri.fsPath,
      scriptPath,
      script,
      env: settings.env,
      onEvent: () => undefined,
      onOutput: (line, stream) => {
        this.deps.log.appendLine(`[${kind} cell ${stream}] ${line}`);
        if (line.startsWith(CELL_PREFIX)) {
          try {
            outcome = JSON.parse(line.slice(CELL_PREFIX.length)) as typeof outcome;
          } catch {
            // not ours after all
          }
        } else opts.onLog?.(line, stream);
      },
    });
    const key = doc.uri.toString();
    const set = this.active.get(key) ?? new Set();
    this.active.set(key, set.add(launcher));
    let result;
    try {
      result = await launcher.run();
    } finally {
      set.delete(launcher);
    }
    if (this.interrupted.delete(launcher)) return { ok: false, error: { code: 'SKYBATCH_E_CANCELLED', message: 'interrupted' }, interrupted: true };
    if (outcome && outcome.kind !== 'error') return { ok: true, outcome };
    const error = outcome?.kind === 'error' ? outcome.error : (result.error ?? { code: 'SKYBATCH_E_SCRIPT', message: `the ${kind} cell's script exited with code ${result.code}` });
    const at = await this.placeError(doc, map, error, result.error?.scriptLine, opts);
    return { ok: false, error: { code: error.code, message: error.message }, at };
  }

  private async placeError(doc: vscode.NotebookDocument, map: ScriptMap, error: { message: string; stack?: string }, fallbackLine: number | undefined, opts: { exec?: vscode.NotebookCellExecution; cell?: vscode.NotebookCell }) {
    const errors = new RunErrors({ controller: this.deps.controller, diagnostics: this.deps.diagnostics, nextOrder: this.deps.nextOrder }, doc, map);
    const at = await errors.failed(error, { fallbackLine, running: opts.exec && opts.cell ? { cell: opts.cell, exec: opts.exec } : undefined });
    this.deps.showedErrors(doc, errors);
    return at;
  }

  /** Stops the notebook's cell runs (interrupt). */
  stop(doc: vscode.NotebookDocument): boolean {
    const set = this.active.get(doc.uri.toString());
    for (const l of set ?? []) (this.interrupted.add(l), l.kill());
    return !!set?.size;
  }

  dispose(): void {
    for (const set of this.active.values()) for (const l of set) l.kill();
  }
}

function problemsText(problems: NotebookProblem[]): string {
  return `${problems.length} problem(s) in the cells this run needs (see the Problems view): ${problems.map((p) => p.message).join('; ')}`;
}
