import { spawn } from 'node:child_process';
import type { CellProblem } from './cell-problem.js';

/** Checks a Python mapper cell's source; problems are 0-based within the cell. */
export type PythonCheck = (source: string) => Promise<CellProblem[]>;

// Compiles what stdin holds, as `python3 -m py_compile` does, without writing a .pyc next to
// anything; prints the SyntaxError's position as JSON. Python 3.8 has no end_lineno.
const COMPILE = `
import json, sys
src = sys.stdin.buffer.read()
try:
    compile(src, "mapper cell", "exec", dont_inherit=True)
    print("[]")
except SyntaxError as e:
    print(json.dumps([{"line": e.lineno or 1, "offset": e.offset or 1, "end_line": getattr(e, "end_lineno", None), "end_offset": getattr(e, "end_offset", None), "message": type(e).__name__ + ": " + (e.msg or "invalid syntax")}]))
except ValueError as e:
    print(json.dumps([{"line": 1, "offset": 1, "message": str(e)}]))
`;

interface PySyntaxError {
  line: number;
  offset: number;
  end_line?: number | null;
  end_offset?: number | null;
  message: string;
}

const cache = new Map<string, Promise<CellProblem[]>>();
const CACHE_SIZE = 20;

/**
 * A Python syntax check with the interpreter on this machine (`python3` unless told), the
 * one VS Code runs on: the workers' Python may differ, but a syntax error is one there too.
 * Validation runs on every edit, so results are kept by source. Without a local Python the
 * cell gets a warning saying it was not checked, never an error: the workers may have one.
 */
export function pythonSyntaxCheck(interpreter = 'python3'): PythonCheck {
  return (source) => {
    const key = `${interpreter}\0${source}`;
    let r = cache.get(key);
    if (!r) {
      r = compileWith(interpreter, source);
      cache.set(key, r);
      if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
    }
    return r;
  };
}

function compileWith(interpreter: string, source: string): Promise<CellProblem[]> {
  const lineCount = source.split('\n').length;
  const firstLineEnd = Math.max(1, source.split('\n')[0].length);
  const notChecked = (why: string): CellProblem[] => [{ line: 0, column: 0, endLine: 0, endColumn: firstLineEnd, message: `the Python mapper cell's syntax was not checked: ${why}`, severity: 'warning' }];
  return new Promise((resolve) => {
    const proc = spawn(interpreter, ['-I', '-c', COMPILE], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    proc.on('error', (e) => resolve(notChecked(`cannot run ${interpreter} here (${e.message})`)));
    proc.stdin.on('error', () => {}); // the interpreter died: its exit says why
    proc.stdin.end(source);
    proc.on('close', (code) => {
      let found: PySyntaxError[];
      try {
        found = JSON.parse(out) as PySyntaxError[];
      } catch {
        resolve(notChecked(`${interpreter} exited with code ${code}: ${err.trim().split('\n').pop() ?? ''}`));
        return;
      }
      resolve(
        found.map((e) => {
          const line = Math.min(Math.max(0, e.line - 1), lineCount - 1);
          const column = Math.max(0, e.offset - 1);
          const endLine = e.end_line ? Math.min(Math.max(line, e.end_line - 1), lineCount - 1) : line;
          const endColumn = e.end_offset && endLine === line && e.end_offset - 1 > column ? e.end_offset - 1 : column + 1;
          return { line, column, endLine, endColumn: endLine === line ? endColumn : e.end_offset ? e.end_offset - 1 : column + 1, message: e.message, severity: 'error' as const };
        }),
      );
    });
  });
}
