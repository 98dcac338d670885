import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CellSpan, JobScript } from './job-script.js';
import type { CellRole } from './notebook-format.js';

/**
 * Where each line of a run's generated script came from, kept for the whole run (the
 * script file itself is deleted when the run ends): stacks from workers, the reduce step
 * and the script's own process name `scriptPath:line:column`, and this maps them back to
 * cells. Plain JSON, so a job record can keep it across a reload.
 */
export interface ScriptMap {
  scriptPath: string;
  spans: CellSpan[];
  /** How error positions name each cell: by role ("mapper cell"), not by an index that counts Markdown. */
  labels: Record<number, string>;
  /** A Python mapper cell: the file it was written to (line n of the file is line n of the cell). */
  python?: { path: string; cell: number };
}

export function scriptMapOf(script: JobScript, scriptPath: string): ScriptMap {
  const labels: Record<number, string> = {};
  const defs = script.spans.filter((s) => s.role === 'definitions');
  for (const s of script.spans) {
    labels[s.cell] = s.role === 'definitions' && defs.length > 1 ? `definitions cell ${defs.indexOf(s) + 1}` : `${s.role} cell`;
  }
  if (!script.python) return { scriptPath, spans: script.spans, labels };
  labels[script.python.cell] = 'mapper cell';
  return { scriptPath, spans: script.spans, labels, python: { path: path.join(path.dirname(scriptPath), script.python.file), cell: script.python.cell } };
}

export interface StackFrame {
  fn?: string;
  file: string;
  /** 1-based, as V8 prints them. */
  line: number;
  column: number;
}

/** A frame that lies in a cell. `cellLine` is 0-based within the cell. */
export interface CellFrame extends StackFrame {
  cell: number;
  role: CellRole;
  cellLine: number;
  label: string;
}

export interface MappedStack {
  /** The error's own lines (name and message), before the first frame. */
  head: string;
  /** Frames in user cells, in stack order (the innermost first). */
  cellFrames: CellFrame[];
  /** Every other frame as printed (engine, Node, the script's generated lines). */
  otherFrames: string[];
  /** The cell the error came from: its innermost cell frame, else a guess from the engine frames. */
  origin?: { cell: number; role: CellRole; cellLine: number; column?: number; label: string; fn?: string };
}

// `at fn (file:line:col)` or `at file:line:col`; Node's print of an uncaught error may end a frame line with ` {`.
const AT = /^\s*at /;
const FRAME = /^\s*at (?:(.+?) \()?((?:file:\/\/)?[^()]+?):(\d+):(\d+)\)?(?: \{)?\s*$/;

/** Parses one V8 stack line (`at fn (file:line:col)` or `at file:line:col`); undefined for anything else. */
export function parseFrame(text: string): StackFrame | undefined {
  const m = FRAME.exec(text);
  if (!m) return undefined;
  let file = m[2];
  if (file.startsWith('file://')) {
    try {
      file = fileURLToPath(file);
    } catch {
      return undefined;
    }
  }
  return { fn: m[1], file, line: Number(m[3]), column: Number(m[4]) };
}

function isScript(file: string, map: ScriptMap): boolean {
  // Workers print the submitting machine's absolute path (the bundle's source map); a
  // symlinked folder may print another spelling of the same file, so the name decides then.
  return file === map.scriptPath || path.basename(file) === path.basename(map.scriptPath);
}

/** The cell and 0-based cell line of a 0-based script line, if it is a cell's line. */
export function locateLine(map: ScriptMap, scriptLine: number): { span: CellSpan; cellLine: number } | undefined {
  const span = map.spans.find((s) => scriptLine >= s.startLine && scriptLine < s.startLine + s.lineCount);
  return span && { span, cellLine: scriptLine - span.startLine };
}

/** A failure raised by a reader or writer object inside the engine names its class: `JsonReader.length`. */
function roleFromEngineFrames(lines: string[]): 'reader' | 'writers' | undefined {
  for (const l of lines) {
    const fn = parseFrame(l)?.fn ?? '';
    if (/\w*Reader\.\w+/.test(fn)) return 'reader';
    if (/\w*Writer\.\w+/.test(fn)) return 'writers';
  }
  return undefined;
}

/**
 * Maps a stack that names the generated script back to cells. `stack` may also hold the
 * nested `[cause]` stacks Node prints for an uncaught error: their frames count too.
 * When no frame lies in a cell, `fallbackLine` (a 0-based script line, e.g. from an
 * esbuild message) or the reader/writer classes among the engine frames pick the cell.
 */
export function mapStack(stack: string, map: ScriptMap, fallbackLine?: number): MappedStack {
  if (map.python && PY_TRACEBACK.test(stack)) return mapPythonTraceback(stack, map, map.python);
  const lines = stack.split('\n');
  const first = lines.findIndex((l) => AT.test(l));
  const head = (first < 0 ? lines : lines.slice(0, first)).join('\n').trim();
  const cellFrames: CellFrame[] = [];
  const otherFrames: string[] = [];
  const seen = new Set<string>();
  for (const l of first < 0 ? [] : lines.slice(first)) {
    if (!AT.test(l)) continue;
    const text = l.trim().replace(/ \{$/, '');
    if (seen.has(text)) continue; // a cause's stack repeats its error's outer frames
    seen.add(text);
    const f = parseFrame(l);
    const at = f && isScript(f.file, map) ? locateLine(map, f.line - 1) : undefined;
    if (f && at) cellFrames.push({ ...f, cell: at.span.cell, role: at.span.role, cellLine: at.cellLine, label: map.labels[at.span.cell] ?? `${at.span.role} cell` });
    else otherFrames.push(text);
  }
  let origin: MappedStack['origin'];
  const top = cellFrames[0];
  if (top) origin = { cell: top.cell, role: top.role, cellLine: top.cellLine, column: top.column - 1, label: top.label, fn: top.fn };
  else {
    const at = fallbackLine === undefined ? undefined : locateLine(map, fallbackLine);
    const guess = at ? undefined : roleFromEngineFrames(otherFrames);
    const span = at?.span ?? map.spans.find((s) => s.role === guess);
    if (span) origin = { cell: span.cell, role: span.role, cellLine: at?.cellLine ?? 0, label: map.labels[span.cell] ?? `${span.role} cell` };
  }
  return { head, cellFrames, otherFrames, origin };
}

// `  File "/path/x.py", line 7, in fn` (a SyntaxError's frame has no `in fn`).
const PY_FRAME = /^ {2}File "(.+)", line (\d+)(?:, in (.+))?$/;
const PY_TRACEBACK = /^Traceback \(most recent call last\):$|^ {2}File ".+", line \d+/m;

/**
 * A Python traceback (a Python mapper's exception, as python/skybatch/_errors.py formats it):
 * outermost frame first and the exception last, where a V8 stack has the error first. Frames
 * in the mapper cell's file are cell frames (its lines are the cell's lines); chained
 * exceptions ("During handling of the above exception…") keep their frames, the last
 * exception is the head.
 */
function mapPythonTraceback(stack: string, map: ScriptMap, py: { path: string; cell: number }): MappedStack {
  const lines = stack.replace(/\s+$/, '').split('\n');
  const label = map.labels[py.cell] ?? 'mapper cell';
  const frames: (CellFrame | string)[] = [];
  let lastFrame = -1;
  lines.forEach((l, i) => {
    const m = PY_FRAME.exec(l);
    if (!m) return;
    lastFrame = i;
    const [, file, line, fn] = m;
    const mine = file === py.path || path.basename(file) === path.basename(py.path);
    if (mine) frames.push({ fn, file, line: Number(line), column: 1, cell: py.cell, role: 'mapper', cellLine: Number(line) - 1, label });
    else frames.push(l.trim());
  });
  // After the last frame: its source line and carets (indented), then the exception.
  const head = lines.slice(lastFrame + 1).filter((l) => !/^\s/.test(l)).join('\n').trim() || lines.filter((l) => l.trim() && !/^\s/.test(l) && !l.startsWith('Traceback')).pop() || stack.trim();
  frames.reverse();
  const cellFrames = frames.filter((f): f is CellFrame => typeof f !== 'string');
  const otherFrames = frames.filter((f): f is string => typeof f === 'string');
  const top = cellFrames[0];
  const origin: MappedStack['origin'] = top
    ? { cell: top.cell, role: 'mapper', cellLine: top.cellLine, column: 0, label, fn: top.fn }
    : { cell: py.cell, role: 'mapper', cellLine: 0, label };
  return { head, cellFrames, otherFrames, origin };
}

/** "mapper cell, line 3" (1-based line, as editors show it). */
export function positionOf(o: { label: string; cellLine: number }): string {
  return `${o.label}, line ${o.cellLine + 1}`;
}

const CONTEXT_LINES = 2;

/**
 * A Jupyter-style traceback: the error, then each cell frame with its source lines and the
 * failing one marked, user frames first, then the engine's and Node's frames. Frames of the
 * cell whose output shows it are headed `Cell In[n], line m` (`n` its execution order), the
 * form VS Code's error renderer turns into links to that line.
 */
export function formatTraceback(mapped: MappedStack, sources: Record<number, string>, link?: { cell: number; executionOrder: number }): string {
  const out = [mapped.head];
  let prev: CellFrame | undefined;
  for (const f of mapped.cellFrames) {
    if (prev && prev.cell === f.cell && prev.cellLine === f.cellLine) continue; // e.g. a callback and its caller on one line
    prev = f;
    const src = (sources[f.cell] ?? '').split('\n');
    out.push('', `${positionOf(f)}${f.fn ? `, in ${f.fn}` : ''}:`);
    if (link && link.cell === f.cell) out.push(`Cell In[${link.executionOrder}], line ${f.cellLine + 1}`);
    const from = Math.max(0, f.cellLine - CONTEXT_LINES);
    const to = Math.min(src.length - 1, f.cellLine + CONTEXT_LINES);
    const width = String(to + 1).length;
    for (let i = from; i <= to; i++) out.push(`${i === f.cellLine ? '---->' : '     '} ${String(i + 1).padStart(width)} ${src[i]}`);
  }
  const python = mapped.otherFrames.some((l) => l.startsWith('File "'));
  if (mapped.otherFrames.length) out.push('', !mapped.cellFrames.length ? 'frames:' : python ? 'library frames:' : 'skybatch and Node frames:', ...mapped.otherFrames.map((l) => `    ${l}`));
  return out.join('\n');
}

/** `Error: boom` → name and message, the way `NotebookCellOutputItem.error` wants them. */
export function splitHead(head: string): { name: string; message: string } {
  const m = /^([A-Za-z_$][\w$]*)(?: \[[A-Z_]+\])?: ([\s\S]*)$/.exec(head);
  return m ? { name: m[1], message: m[2] } : { name: 'Error', message: head };
}
