import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkybatchError } from '../formats/common/errors.js';
import { captureSite } from './mapper-site.js';
import { MAX_PYTHON_SOURCE_BYTES } from './protocol-guards.js';
import type { PythonMapperSpec } from './protocol.js';

const PYTHON_FUNCTION = Symbol.for('skybatch.pythonFunction');

/** Options of `pythonFunction`. */
export interface PythonFunctionOptions {
  /**
   * The interpreter the workers run the mapper with, looked up on the worker's PATH after
   * `activateEnv` (a relative path is relative to the worker's working folder). Default `python3`.
   */
  interpreter?: string;
}

/** A Python mapper for `ds.map()`: made by `pythonFunction`. */
export interface PythonFunction {
  readonly [PYTHON_FUNCTION]: true;
  readonly file: string;
  readonly functionName?: string;
  readonly options: PythonFunctionOptions;
  /** The script that called `pythonFunction`: `file` is relative to its folder. */
  readonly definedIn?: string;
}

/**
 * A mapper written in Python, as in the reference: `@sky.batch.remote_function` on a function
 * that loops `for batch in sky.batch.load(): ... sky.batch.save_results(results)` (with
 * `import skybatch as sky`). `file` is relative to the calling script's folder; `functionName`
 * may be left out when the file has one remote function. The file is read when the job is
 * submitted and travels with it; workers run it in a Python process per job, after `activateEnv`.
 *
 * ```ts
 * await ds.map(sky.pythonFunction('mapper.py', 'generate_images'), { poolName: 'gpu', batchSize: 8, output });
 * ```
 */
export function pythonFunction(file: string, functionName?: string, options: PythonFunctionOptions = {}): PythonFunction {
  const bad = (field: string, want: string, got: unknown) =>
    new SkybatchError('SKYBATCH_E_BAD_OPTION', `pythonFunction(): '${field}' must be ${want}, got ${JSON.stringify(got) ?? typeof got}`, { context: { field } });
  if (typeof file !== 'string' || !file) throw bad('file', 'the path of a .py file', file);
  if (functionName !== undefined && (typeof functionName !== 'string' || !/^[\p{L}_][\p{L}\p{N}_]*$/u.test(functionName))) {
    throw bad('functionName', 'a Python function name', functionName);
  }
  if (!options || typeof options !== 'object') throw bad('options', 'an object { interpreter? }', options);
  if (options.interpreter !== undefined && (typeof options.interpreter !== 'string' || !options.interpreter.trim())) {
    throw bad('interpreter', 'a command such as python3 or .venv/bin/python', options.interpreter);
  }
  return { [PYTHON_FUNCTION]: true, file, functionName, options: { ...options }, definedIn: captureSite(pythonFunction)[0]?.replace(/:\d+:\d+$/, '') };
}

export function isPythonFunction(v: unknown): v is PythonFunction {
  return typeof v === 'object' && v !== null && (v as Partial<PythonFunction>)[PYTHON_FUNCTION] === true;
}

/** Reads the mapper's file on the submitting machine: what the job request carries. */
export function pythonMapperInfo(fn: PythonFunction): { id: string; definedIn?: string; python: PythonMapperSpec } {
  const main = process.argv[1];
  const base = fn.definedIn ? path.dirname(fn.definedIn) : main && fs.existsSync(main) ? path.dirname(path.resolve(main)) : process.cwd();
  const file = path.resolve(base, fn.file);
  let source: string;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_PYTHON_SOURCE_BYTES) {
      throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `pythonFunction('${fn.file}'): ${file} has ${size} bytes; a mapper file may have at most ${MAX_PYTHON_SOURCE_BYTES} (load data from storage instead)`, {
        context: { path: file, field: 'file' },
      });
    }
    source = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof SkybatchError) throw err;
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `pythonFunction('${fn.file}'): cannot read ${file} (relative to ${base}): ${(err as Error).message}`, {
      context: { path: file, field: 'file' },
      cause: err,
    });
  }
  // Only what cannot be valid: a name the file never mentions. The worker checks the rest.
  if (fn.functionName && !new RegExp(`(^|[^\\p{L}\\p{N}_])${fn.functionName}($|[^\\p{L}\\p{N}_])`, 'u').test(source)) {
    throw new SkybatchError('SKYBATCH_E_MAPPER_NOT_FOUND', `pythonFunction('${fn.file}', '${fn.functionName}'): ${file} does not define ${fn.functionName}`, {
      context: { path: file, field: 'functionName' },
    });
  }
  const python: PythonMapperSpec = { file, source, ...(fn.functionName ? { function: fn.functionName } : {}), ...(fn.options.interpreter ? { interpreter: fn.options.interpreter } : {}) };
  return { id: `python:${path.basename(file)}:${fn.functionName ?? '*'}`, definedIn: fn.definedIn, python };
}
