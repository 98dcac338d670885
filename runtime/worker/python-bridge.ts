/**
 * A Python mapper inside the worker's mapper process. Readers and writers stay TypeScript
 * and run here as for any job (prefetch, uploads, timeouts, retries, per-item errors); the
 * "mapper" this process calls is a bridge that starts one Python process, which loads the
 * user's file once and calls its `@remote_function` once. The Python side only asks (the
 * next batch, saving results) and waits for the answer: one JSON object per line on fd 3
 * (to Python) and fd 4 (from Python), so the user's prints and native libraries' output
 * keep stdout and stderr, which go to the job log.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { SkybatchError, toWireError, type ErrorCode, type WireError } from '../../formats/common/errors.js';
import type { Item } from '../../formats/input-reader.js';
import { failItem, load, saveResults, type MapperFn } from '../mapper-api.js';
import type { JobSpec, PythonMapperSpec } from '../protocol.js';

const BYTES_TAG = '__skybatch_bytes__';
const FAILED_TAG = '__skybatch_failed_item__';
/** After `done`, how long Python may take to exit (atexit handlers, flushing files). */
const EXIT_GRACE_MS = 10_000;
const STDERR_TAIL = 20;

/** What the mapper process lets the bridge see of the batch `load()` gave it last. */
export interface BridgeBatch {
  start: number;
  end: number;
  /** Fails this batch with `err` (results the Python side refused before sending them). */
  fail(err: unknown): void;
}

/** How a Python exception arrives: built by `describe()` in python/skybatch/_errors.py. */
interface PythonError {
  code?: string;
  message: string;
  traceback?: string;
  retryable?: boolean;
  file?: string;
  line?: number;
}

type FromPython =
  | { type: 'next' }
  | { type: 'results'; results: unknown[] }
  | { type: 'failBatch'; error: PythonError }
  | { type: 'done' }
  | { type: 'failed'; error: PythonError };

type ToPython =
  | { type: 'batch'; start: number; end: number; items: Item[] }
  | { type: 'end' }
  | { type: 'saved' }
  | { type: 'ok' }
  | { type: 'error'; error: WireError };

/** The folder holding the `skybatch` Python package (`python/` at the package root). */
export function pythonPackageDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'python', 'skybatch', '__init__.py'))) return path.join(dir, 'python');
    const up = path.dirname(dir);
    if (up === dir) throw new SkybatchError('SKYBATCH_E_PYTHON', `the skybatch Python package (python/skybatch) is missing from this install (${fileURLToPath(import.meta.url)}); reinstall skybatch`);
    dir = up;
  }
}

/**
 * The mapper function for a job whose mapper is Python. `current` is the batch `load()` gave
 * last, while it is not finished.
 */
export function pythonMapper(spec: JobSpec & { python: PythonMapperSpec }, opts: { cacheDir: string; current: () => BridgeBatch | undefined }): MapperFn {
  return async function pythonMapper(): Promise<void> {
    const py = spec.python;
    const interpreter = py.interpreter ?? 'python3';
    const source = storeSource(py, opts.cacheDir);
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONPATH: [pythonPackageDir(), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) };
    // This process's IPC channel to the agent is not Python's (nor its children's).
    for (const k of ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE', 'NODE_UNIQUE_ID']) delete env[k];
    const proc = spawn(interpreter, ['-u', '-X', 'faulthandler', '-m', 'skybatch._worker', source, py.file, py.function ?? ''], {
      env,
      stdio: ['ignore', 'inherit', 'pipe', 'pipe', 'pipe'],
    });
    const where = { jobId: spec.jobId, ...(process.env.SKYBATCH_WORKER ? { worker: process.env.SKYBATCH_WORKER } : {}) };
    const started = new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', (err) =>
        reject(
          new SkybatchError(
            'SKYBATCH_E_PYTHON',
            `job ${spec.jobId}: cannot start the Python interpreter '${interpreter}' on worker ${process.env.SKYBATCH_WORKER ?? '?'}: ${err.message}; install Python in the pool's setup, activate it with activateEnv, or pass { interpreter } to sky.pythonFunction`,
            { context: where, cause: err },
          ),
        ),
      );
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    const tail: string[] = [];
    const stderr = readline.createInterface({ input: proc.stdio[2] as Readable, crlfDelay: Infinity });
    stderr.on('line', (line) => {
      process.stderr.write(line + '\n');
      tail.push(line);
      if (tail.length > STDERR_TAIL) tail.shift();
    });
    const toPython = proc.stdio[3] as Writable;
    toPython.on('error', () => {}); // Python died: its exit says why
    const send = (msg: ToPython) => toPython.write(JSON.stringify(msg, encodeBytes) + '\n');
    const fromPython = proc.stdio[4] as Readable;
    const lines = readline.createInterface({ input: fromPython, crlfDelay: Infinity });
    // A process the mapper forked (a multiprocessing worker) holds fd 4 too, so Python's end
    // may never show as end-of-file: once Python is gone and its last lines are read, stop.
    void exited.then(() => setTimeout(() => lines.close(), 500).unref());

    try {
      await started;
      let batches: AsyncIterator<Item[]> | undefined;
      for await (const line of lines) {
        const msg = parse(line, spec.jobId);
        switch (msg.type) {
          case 'next': {
            batches ??= load()[Symbol.asyncIterator]();
            let r: IteratorResult<Item[]>;
            try {
              r = await batches.next();
            } catch (err) {
              send({ type: 'error', error: toWireError(err) });
              break;
            }
            const b = opts.current();
            if (r.done || !b) send({ type: 'end' });
            else send({ type: 'batch', start: b.start, end: b.end, items: r.value });
            break;
          }
          case 'results':
            try {
              await saveResults(msg.results.map((r) => (isFailedTag(r) ? failItem(pythonError(r[FAILED_TAG], where)) : r)));
              send({ type: 'saved' });
            } catch (err) {
              send({ type: 'error', error: toWireError(err) });
            }
            break;
          case 'failBatch':
            opts.current()?.fail(pythonError(msg.error, where));
            send({ type: 'ok' });
            break;
          case 'done':
            await Promise.race([exited, new Promise((r) => setTimeout(r, EXIT_GRACE_MS).unref())]);
            return;
          case 'failed':
            await Promise.race([exited, new Promise((r) => setTimeout(r, 1000).unref())]);
            throw pythonError(msg.error, where);
        }
      }
      const { code, signal } = await exited;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      throw new SkybatchError(
        'SKYBATCH_E_PYTHON',
        `job ${spec.jobId}: the Python mapper process (${interpreter}) ${how} without reporting an error${tail.length ? `; last stderr:\n${tail.join('\n')}` : ''}`,
        { retryable: true, context: where },
      );
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      lines.close();
    }
  };
}

/** Workers keep each version of a mapper file once, by content hash, as they do bundles. */
function storeSource(py: PythonMapperSpec, cacheDir: string): string {
  const hash = createHash('sha256').update(py.source).digest('hex');
  // cacheDir is <workdir>/.skybatch-cache/<jobId>; bundles live in <workdir>/.skybatch-bundles
  const dir = path.resolve(cacheDir, '..', '..', '.skybatch-python', hash);
  const file = path.join(dir, path.basename(py.file));
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(`${file}.${process.pid}.tmp`, py.source);
    fs.renameSync(`${file}.${process.pid}.tmp`, file);
  }
  return file;
}

function pythonError(e: PythonError, where: { jobId: string; worker?: string }): SkybatchError {
  const err = new SkybatchError((e.code ?? 'SKYBATCH_E_MAPPER') as ErrorCode, e.message, {
    retryable: e.retryable ?? true,
    context: { ...where, ...(e.file ? { path: e.file } : {}), ...(e.line ? { line: e.line } : {}) },
  });
  // The Python traceback is the stack the user needs (it ends with the exception's line).
  err.stack = e.traceback || e.message;
  return err;
}

function parse(line: string, jobId: string): FromPython {
  try {
    return JSON.parse(line, decodeBytes) as FromPython;
  } catch (err) {
    throw new SkybatchError('SKYBATCH_E_PYTHON', `job ${jobId}: the Python mapper process sent a line that is not JSON (${(err as Error).message}): ${line.slice(0, 200)}`, {
      context: { jobId },
    });
  }
}

function isFailedTag(v: unknown): v is { [FAILED_TAG]: PythonError } {
  return typeof v === 'object' && v !== null && FAILED_TAG in v;
}

function encodeBytes(this: unknown, key: string, value: unknown): unknown {
  // JSON.stringify has already turned a Buffer into { type, data } here: look at the original.
  const raw = (this as Record<string, unknown>)[key];
  if (raw instanceof Uint8Array) return { [BYTES_TAG]: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
  return value;
}

function decodeBytes(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const b64 = (value as Record<string, unknown>)[BYTES_TAG];
    if (typeof b64 === 'string' && Object.keys(value).length === 1) return Buffer.from(b64, 'base64');
  }
  return value;
}
