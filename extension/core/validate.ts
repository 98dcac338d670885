import type { CellProblem, NotebookProblem } from './cell-problem.js';
import { expressionOf } from './job-script.js';
import type { CellRole, NotebookCellData } from './notebook-format.js';
import type { PythonCheck } from './python-check.js';
import { parseRunSettings, type RunSettings } from './run-settings.js';

type Transform = (code: string, opts: { loader: 'ts' | 'js'; format?: 'esm'; sourcefile?: string; logLevel?: 'silent' }) => Promise<unknown>;
type EsbuildMessage = { text: string; location?: { line: number; column: number; length: number } | null };

const REQUIRED: CellRole[] = ['reader', 'mapper', 'writers', 'run'];
const CODE_LANGS = new Set(['typescript', 'javascript']);
const HINT: Record<CellRole, string> = {
  definitions: '',
  reader: "an expression like new sky.JsonReader('data.jsonl')",
  mapper: 'the body of the mapper: for await (const batch of sky.load()) { await sky.saveResults(...) }',
  writers: "an expression like new sky.JsonWriter('output.jsonl') or [writerA, writerB]",
  run: 'YAML settings: pool: my-pool, batchSize: 2',
};

/** How each role's source is wrapped for a syntax check, and how many lines the wrapper adds before it. */
function wrap(role: CellRole, source: string): { code: string; before: number } {
  if (role === 'reader' || role === 'writers') return { code: `const __x = (\n${expressionOf(source)}\n);\n`, before: 1 };
  if (role === 'mapper') return { code: `async function __m() {\n${source}\n}\n`, before: 1 };
  return { code: source, before: 0 };
}

function span(source: string): { endLine: number; endColumn: number } {
  const ls = source.split('\n');
  return { endLine: 0, endColumn: Math.max(1, ls[0].length) };
}

async function syntax(transform: Transform, role: CellRole, language: string, source: string): Promise<CellProblem[]> {
  const { code, before } = wrap(role, source);
  try {
    await transform(code, { loader: language === 'javascript' ? 'js' : 'ts', format: 'esm', sourcefile: `${role}.ts`, logLevel: 'silent' });
    return [];
  } catch (err) {
    const errors = ((err as { errors?: EsbuildMessage[] }).errors ?? []) as EsbuildMessage[];
    if (!errors.length) return [{ line: 0, column: 0, ...span(source), message: (err as Error).message, severity: 'error' }];
    const lineCount = source.split('\n').length;
    return errors.map((e) => {
      const line = Math.min(Math.max(0, (e.location?.line ?? 1) - 1 - before), lineCount - 1);
      const column = e.location?.column ?? 0;
      return { line, column, endLine: line, endColumn: column + Math.max(1, e.location?.length ?? 1), message: e.text, severity: 'error' as const };
    });
  }
}

/**
 * Everything wrong with a notebook that can be known before it runs: missing or duplicate
 * roles, wrong languages, syntax errors (esbuild), invalid run settings, a mapper that
 * never loads or saves. Problems of a missing cell are put on the run cell, else the first.
 */
export async function validateNotebook(
  cells: readonly NotebookCellData[],
  transform: Transform,
  opts: { python?: PythonCheck } = {},
): Promise<{ problems: NotebookProblem[]; settings?: RunSettings }> {
  const problems: NotebookProblem[] = [];
  const add = (cell: number, p: CellProblem) => problems.push({ ...p, cell });
  const whole = (cell: number, message: string, severity: CellProblem['severity'] = 'error') => {
    const c = cells[cell];
    add(cell, { line: 0, column: 0, ...span(c?.source ?? ''), message, severity });
  };
  const byRole = new Map<CellRole, number[]>();
  cells.forEach((c, i) => {
    if (c.kind === 'code') byRole.set(c.role, [...(byRole.get(c.role) ?? []), i]);
  });
  const anchor = byRole.get('run')?.[0] ?? cells.findIndex((c) => c.kind === 'code');
  for (const role of REQUIRED) {
    const at = byRole.get(role) ?? [];
    if (at.length === 0) {
      if (anchor >= 0) whole(anchor, `this notebook has no ${role} cell: add a code cell with role '${role}' holding ${HINT[role]}`);
      else problems.push({ cell: -1, line: 0, column: 0, endLine: 0, endColumn: 1, message: `this notebook has no ${role} cell`, severity: 'error' });
    }
    for (const dup of at.slice(1)) whole(dup, `a notebook has one ${role} cell; this one duplicates cell ${at[0] + 1}. Change its role or delete it`);
  }
  let settings: RunSettings | undefined;
  const checks: Promise<void>[] = [];
  cells.forEach((c, i) => {
    if (c.kind !== 'code') return;
    if (c.role === 'run') {
      if (c.language !== 'yaml') whole(i, `the run cell is YAML; switch its language to YAML (it is ${c.language})`);
      const r = parseRunSettings(c.source);
      r.problems.forEach((p) => add(i, p));
      if (i === byRole.get('run')?.[0]) settings = r.settings;
      return;
    }
    if (c.role === 'mapper' && c.language === 'python') {
      checkPythonMapper(c.source, opts.python, (p) => add(i, p), (m, sev) => whole(i, m, sev), checks);
      return;
    }
    if (!CODE_LANGS.has(c.language)) {
      whole(i, `the ${c.role} cell is TypeScript${c.role === 'mapper' ? ' or Python' : ''}; switch its language to TypeScript (it is ${c.language})`);
      return;
    }
    if (c.role !== 'definitions' && expressionOf(c.source).trim() === '') {
      whole(i, `the ${c.role} cell is empty: write ${HINT[c.role]}`);
      return;
    }
    checks.push(syntax(transform, c.role, c.language, c.source).then((ps) => ps.forEach((p) => add(i, p))));
    if (c.role === 'mapper') {
      if (!/\bload\s*\(/.test(c.source)) whole(i, 'the mapper never calls sky.load(): it will receive no batches', 'warning');
      else if (!/\bsaveResults\s*\(/.test(c.source)) whole(i, 'the mapper never calls sky.saveResults(): its batches will never finish', 'warning');
    }
  });
  await Promise.all(checks);
  problems.sort((a, b) => a.cell - b.cell || a.line - b.line || a.column - b.column);
  return { problems, settings: problems.some((p) => p.severity === 'error') ? undefined : settings };
}

const REMOTE_FUNCTION = /^[ \t]*@[\w.]*remote_function\b/gm;

/**
 * A Python mapper cell is a module as in the reference: one `@sky.batch.remote_function`
 * (the worker looks for exactly one, as the notebook names none), syntax checked by Python.
 */
function checkPythonMapper(
  source: string,
  python: PythonCheck | undefined,
  add: (p: CellProblem) => void,
  whole: (message: string, severity?: CellProblem['severity']) => void,
  checks: Promise<void>[],
): void {
  if (source.trim() === '') {
    whole('the mapper cell is empty: write a Python module with one @sky.batch.remote_function that loops over sky.batch.load() and calls sky.batch.save_results(...)');
    return;
  }
  if (python) checks.push(python(source).then((ps) => ps.forEach(add)));
  const marked = source.match(REMOTE_FUNCTION)?.length ?? 0;
  if (marked === 0) whole('the Python mapper cell defines no @sky.batch.remote_function: put it on the function workers run (with `import skybatch as sky`)');
  else if (marked > 1) whole(`the Python mapper cell defines ${marked} remote functions; a notebook runs one: keep @sky.batch.remote_function on one of them`);
  else if (!/\bload\s*\(/.test(source)) whole('the mapper never calls sky.batch.load(): it will receive no batches', 'warning');
  else if (!/\bsave_results\s*\(/.test(source)) whole('the mapper never calls sky.batch.save_results(): its batches will never finish', 'warning');
}
