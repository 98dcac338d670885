import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where a mapper was created, as stack frames in the user's own files. The client and a
 * worker see the same frames: the worker's bundle keeps every kept token at its line and
 * column and maps back to the user's files through its source map, so the two agree even
 * when the worker runs only part of the script.
 */
export interface Frame {
  file: string;
  line: number;
  /** 1-based, as V8 prints it. */
  column: number;
}

const ignored = new Set<string>();
// skybatch's own files, built (out/) or mapped back to their sources: never the user's frames.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OURS = ['out', 'runtime', 'formats', 'extension', 'index.ts'].map((d) => path.join(ROOT, d));
const real = new Map<string, string>();

/** Frames in this file are not the user's (a bundle's own helpers, before mapping). */
export function ignoreFrameFile(file: string): void {
  ignored.add(realPath(file));
}

const FRAME = /(?:\(|at (?:async )?)((?:file:\/\/)?\/[^()]*?):(\d+):(\d+)\)?\s*$/;

/** The same file has the same name on the client and on a worker (whose bundle maps to real paths). */
function realPath(file: string): string {
  let r = real.get(file);
  if (r === undefined) {
    try {
      r = fs.realpathSync(file);
    } catch {
      r = file;
    }
    real.set(file, r);
  }
  return r;
}

export function parseFrame(s: string): Frame | undefined {
  const m = /^(.*):(\d+):(\d+)$/.exec(s);
  return m ? { file: m[1], line: Number(m[2]), column: Number(m[3]) } : undefined;
}

/** The user's frames of the current stack above `below` (which is left out), innermost first, as `file:line:col`. */
export function captureSite(below: (...args: never[]) => unknown): string[] {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 50;
  try {
    Error.captureStackTrace(holder, below);
  } finally {
    Error.stackTraceLimit = limit;
  }
  const out: string[] = [];
  for (const line of (holder.stack ?? '').split('\n').slice(1)) {
    const m = FRAME.exec(line);
    if (!m) continue;
    const file = realPath(m[1].startsWith('file://') ? fileURLToPath(m[1]) : m[1]);
    if (file.includes('/node_modules/') || ignored.has(file) || OURS.some((d) => file === d || file.startsWith(d + path.sep))) continue;
    out.push(`${file}:${m[2]}:${m[3]}`);
  }
  return out;
}
