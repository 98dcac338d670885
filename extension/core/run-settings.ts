import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Node, type Pair } from 'yaml';
import { type JobOptionName, fieldProblem, jobOptionProblems } from '../../runtime/job-options.js';
import type { CellProblem } from './cell-problem.js';

/** The run settings cell (YAML): which pool, how big the batches, and how workers start. */
export interface RunSettings {
  /** Pool to run on. */
  pool: string;
  /** Items per batch. */
  batchSize: number;
  /** Shell prefix run before each worker starts the mapper. */
  activateEnv?: string;
  /** pool.yaml used when the pool is not running and the user agrees to start it; relative to the notebook. Default `pool.yaml`. */
  poolFile?: string;
  /** Attempts per batch before the job fails (default 4). */
  maxAttempts?: number;
  /** First retry delay in ms (default 1000). */
  retryBaseMs?: number;
  /** A batch running longer than this (ms) is taken from its worker and retried (default 30 min). */
  batchTimeoutMs?: number;
  /** 'fail' (default) or 'skip': failed items go to errors.jsonl and the job goes on. */
  onItemError?: 'fail' | 'skip';
  /** The job's weight when jobs share the pool's workers (default 1): a job of priority 2 gets twice the share of one of 1. */
  priority?: number;
  /** Environment variables the generated script (and, through the engine, the workers) sees. */
  env?: Record<string, string>;
  /** Packages workers import from their working directory instead of the bundle. */
  external?: string[];
  /** The interpreter workers run a Python mapper cell with, after `activateEnv`. Default `python3`. */
  python?: string;
}

type Check = (node: Node | null, key: string) => string | undefined;

const scalar = (n: Node | null) => (isScalar(n) ? n.value : undefined);
const said = (key: string, why: string, n: Node | null) => `'${key}' ${why}, got ${JSON.stringify(scalar(n) ?? null)}`;
/** A job option: checked by the same schema as `map()`'s options and the coordinator's (runtime/job-options.ts). */
const option = (field: JobOptionName | 'poolName', required = false) => ({
  required,
  check: ((n, key) => {
    const why = fieldProblem(field, scalar(n));
    return why && said(key, why, n);
  }) as Check,
});

// Settings named as in `map()`, except `pool` (its `poolName`); `poolFile`, `env` and `external` are the notebook's own.
const FIELDS: Record<string, { required?: boolean; check: Check }> = {
  pool: option('poolName', true),
  batchSize: option('batchSize', true),
  activateEnv: option('activateEnv'),
  poolFile: { check: (n) => (typeof scalar(n) === 'string' && scalar(n) ? undefined : `'poolFile' must be a path to a pool.yaml`) },
  maxAttempts: option('maxAttempts'),
  retryBaseMs: option('retryBaseMs'),
  batchTimeoutMs: option('batchTimeoutMs'),
  onItemError: option('onItemError'),
  priority: option('priority'),
  env: {
    check: (n) => {
      if (!isMap(n)) return `'env' must be a mapping of variable names to strings`;
      for (const p of n.items) {
        const k = scalar(p.key as Node);
        if (typeof k !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) return `'env' key ${JSON.stringify(k)} is not a valid variable name`;
        const v = scalar(p.value as Node);
        if (!['string', 'number', 'boolean'].includes(typeof v)) return `'env.${k}' must be a string`;
      }
      return undefined;
    },
  },
  python: { check: (n) => (typeof scalar(n) === 'string' && (scalar(n) as string).trim() ? undefined : `'python' must be the interpreter workers run a Python mapper with, such as python3 or .venv/bin/python`) },
  external: { check: (n) => (isSeq(n) && n.items.every((x) => typeof scalar(x as Node) === 'string') ? undefined : `'external' must be a list of package names`) },
};

/** Parses and validates the run cell; every problem points at its line and column. */
export function parseRunSettings(source: string): { settings?: RunSettings; problems: CellProblem[] } {
  const lc = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lc, prettyErrors: false });
  const problems: CellProblem[] = [];
  const at = (offset: number | undefined, endOffset: number | undefined, message: string, severity: CellProblem['severity'] = 'error') => {
    const s = lc.linePos(offset ?? 0);
    const e = lc.linePos(endOffset ?? offset ?? 0);
    problems.push({ line: s.line - 1, column: s.col - 1, endLine: e.line - 1, endColumn: Math.max(e.col - 1, s.col), message, severity });
  };
  for (const err of doc.errors) at(err.pos[0], err.pos[1], `YAML: ${err.message.split('\n')[0]}`);
  if (problems.length) return { problems };
  const root = doc.contents;
  if (!isMap(root)) {
    at(0, source.indexOf('\n') < 0 ? source.length : source.indexOf('\n'), 'the run cell must be a YAML mapping with at least `pool:` and `batchSize:`');
    return { problems };
  }
  const seen = new Set<string>();
  for (const pair of root.items as Pair<Node, Node>[]) {
    const key = scalar(pair.key);
    const range = pair.key?.range;
    if (typeof key !== 'string' || !(key in FIELDS)) {
      at(range?.[0], range?.[1], `unknown setting ${JSON.stringify(key)}; expected one of: ${Object.keys(FIELDS).join(', ')}`);
      continue;
    }
    seen.add(key);
    const why = FIELDS[key].check(pair.value, key);
    const vr = pair.value?.range ?? range;
    if (why) at(vr?.[0], vr?.[1], why);
  }
  for (const [k, f] of Object.entries(FIELDS)) {
    if (f.required && !seen.has(k)) at(0, source.indexOf('\n') < 0 ? source.length : source.indexOf('\n'), `missing required setting '${k}'`);
  }
  if (problems.length) return { problems };
  const v = doc.toJS() as RunSettings & { env?: Record<string, unknown> };
  // Limits that span two settings (the last retry within a day), put on the setting named.
  const { pool, poolFile: _f, env: _e, external: _x, ...options } = v;
  for (const p of jobOptionProblems({ poolName: pool, ...options })) {
    const pair = (root.items as Pair<Node, Node>[]).find((x) => scalar(x.key) === p.field);
    const r = pair?.value?.range ?? pair?.key?.range;
    at(r?.[0], r?.[1], `'${p.field}' ${p.message}`);
  }
  if (problems.length) return { problems };
  if (v.env) v.env = Object.fromEntries(Object.entries(v.env).map(([k, x]) => [k, String(x)]));
  return { settings: v as RunSettings, problems };
}
