import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LineCounter, Node as YamlNode } from 'yaml';
import { lazyRequire } from '../formats/common/lazy-require.js';
import { z } from 'zod';
import { SkybatchError } from '../formats/common/errors.js';

const yaml = lazyRequire<typeof import('yaml')>('yaml');

const quantity = z.union([z.number().positive(), z.string().regex(/^\d+(\.\d+)?\+?$/, 'expected a number like 4 or 4+ (at least 4)')]);
const accelerators = z.union([
  z.string().regex(/^[A-Za-z0-9_-]+(:\d+)?$/, 'expected TYPE or TYPE:COUNT, e.g. L4:1'),
  z.record(z.string(), z.number().int().positive()),
]);

/**
 * What one machine has. The local backend's `host:` (default: GPUs from `nvidia-smi -L`,
 * every CPU this process may use, all memory); an ssh pool's `hosts:` entries carry the same
 * fields. `memory` is in GB, like `resources.memory`.
 */
export const hostResourcesSchema = z
  .object({
    cpus: z.number().int('expected a whole number of CPUs').positive().optional(),
    memory: z.number().positive().optional(),
    accelerators: accelerators.optional(),
  })
  .strict();

/** Seconds as a number, or a string like `90s`, `30m`, `2h`; parsed to seconds. */
const duration = z.unknown().transform((v, ctx) => {
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*([smh])$/.exec(v.trim()) : undefined;
  const seconds = typeof v === 'number' ? v : m ? Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'] : NaN;
  if (!(seconds > 0)) {
    ctx.addIssue({ code: 'custom', message: `expected seconds or a duration like 90s, 30m or 2h, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return seconds;
});

const workerCount = z.number().int('expected a whole number').min(1, 'expected at least 1 worker').max(1024);
const rangeBound = (issue: { input?: unknown }) => (issue.input === undefined ? 'missing: an autoscaled pool sets both min and max' : 'expected a whole number');
const autoscaleRange = z
  .object({
    min: z.number({ error: rangeBound }).int('expected a whole number').min(0, 'expected 0 or more workers').max(1024),
    max: z.number({ error: rangeBound }).int('expected a whole number').min(1, 'expected at least 1 worker').max(1024),
  })
  .strict()
  .refine((r) => r.min <= r.max, { message: 'min must not be more than max', path: ['min'] });

/** `workers: N` or `workers: { min, max }`, each checked by its own schema so the problem named is the one there is. */
const workerSetting = z.unknown().transform((v, ctx): number | z.infer<typeof autoscaleRange> => {
  if (typeof v !== 'number' && (typeof v !== 'object' || v === null || Array.isArray(v))) {
    ctx.addIssue({ code: 'custom', message: `expected a whole number of workers, or { min, max } to autoscale, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  const r = typeof v === 'number' ? workerCount.safeParse(v) : autoscaleRange.safeParse(v);
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: issue.path } as Parameters<typeof ctx.addIssue>[0]);
  return z.NEVER;
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** One machine of an ssh pool: how to reach it, and what it has (the `host:` fields). */
export const sshHostSchema = hostResourcesSchema
  .extend({
    /** IP address or host name (an alias of your ssh config works too). */
    address: z.string().min(1),
    /** Workers on this host are named NAME-0, NAME-1, ... (default: the address). */
    name: z.string().regex(NAME, "expected letters, digits, '_', '-', '.'").optional(),
    user: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    identity_file: z.string().min(1).optional(),
    /** The host's Node (default: `node` on the login PATH). */
    node: z.string().min(1).optional(),
    /** Where skybatch keeps its runtime and the workers' folders on the host (default ~/.skybatch-host). */
    dir: z.string().min(1).optional(),
  })
  .strict();

/** A Slurm time limit as sbatch takes it: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or UNLIMITED. */
const slurmTime = z.union([
  z.number().int('expected whole minutes').positive(),
  z.string().regex(/^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2}|UNLIMITED|INFINITE)$/, 'expected a Slurm time limit like 90, 2:00:00 or 1-12:00:00'),
]);

/** A Slurm pool's workers: one sbatch job each, running the skybatch runtime on `pool.shared_fs`. */
export const slurmSchema = z
  .object({
    partition: z.string().min(1).optional(),
    account: z.string().min(1).optional(),
    /** Each worker job's time limit (sbatch --time); a worker whose job ends is submitted again. */
    time: slurmTime.optional(),
    /** More sbatch options, each `--name` or `--name=value`, e.g. `--qos=high` or `--constraint=a100`. */
    options: z.array(z.string().regex(/^--[a-z][a-z0-9-]*(=.*)?$/s, 'expected an sbatch option like --qos=high (long form, value after =)')).optional(),
    /** Node on the compute nodes (default: `node` on the job's PATH). */
    node: z.string().min(1).optional(),
    /**
     * A skybatch installation the nodes see (the package folder, with out/runtime/worker/main.js).
     * Default: the coordinator copies its own runtime to pool.shared_fs/.skybatch/runtime/HASH once.
     */
    runtime: z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path').optional(),
    /** Where each node keeps its workers' folders (default: $TMPDIR or /tmp, per user). */
    workdir: z.string().min(1).optional(),
  })
  .strict();

const sshOptionValue = z.union([z.string(), z.number(), z.boolean()]).transform((v) => (typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v)));

const schema = z
  .object({
    pool: z
      .object({
        /** A number of workers, or `{ min, max }`: autoscaled between them (min may be 0). */
        workers: workerSetting,
        /** An autoscaled pool keeps workers it has no batches for this long before it shrinks (default 60 s). */
        idle_delay: duration.optional(),
        /** local (default): processes on this machine; ssh: processes on the machines under `hosts:`; slurm: one Slurm job per worker. */
        backend: z.enum(['local', 'ssh', 'slurm']).optional(),
        /** A folder every host mounts at this same path: jobs may then use local paths inside it. */
        shared_fs: z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path').optional(),
      })
      .strict()
      .superRefine((p, ctx) => {
        if (p.idle_delay !== undefined && typeof p.workers === 'number') ctx.addIssue({ code: 'custom', path: ['idle_delay'], message: 'only an autoscaled pool (workers: { min, max }) shrinks when idle' });
      })
      // `workers` stays the most workers the pool may run (what placement checks); `autoscale` says it varies.
      .transform(({ workers, ...rest }) => (typeof workers === 'number' ? { ...rest, workers } : { ...rest, workers: workers.max, autoscale: workers })),
    hosts: z.array(sshHostSchema).min(1, 'expected at least one host').optional(),
    /** How the ssh backend runs `ssh`: a config file (-F), a known_hosts file, and -o options. */
    ssh: z
      .object({
        config: z.string().min(1).optional(),
        known_hosts: z.string().min(1).optional(),
        options: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/, 'expected an ssh option name like ServerAliveInterval'), sshOptionValue).optional(),
      })
      .strict()
      .optional(),
    slurm: slurmSchema.optional(),
    resources: z
      .object({
        cpus: quantity.optional(),
        memory: quantity.optional(),
        accelerators: accelerators.optional(),
        disk_size: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    /** What this machine gives the local backend's workers; each worker's share comes from `resources`. */
    host: hostResourcesSchema.optional(),
    setup: z.string().optional(),
    /** Seconds, or a duration like `90s`, `30m`, `2h`: a setup still running then is stopped and its worker fails. */
    setup_timeout: duration.optional(),
    coordinator: z
      .object({
        /** Interface to listen on; default 127.0.0.1. Anything else should use tls. */
        host: z.string().min(1).optional(),
        port: z.number().int().min(0).max(65535).optional(),
        tls: z.object({ cert: z.string().min(1), key: z.string().min(1) }).strict().optional(),
      })
      .strict()
      .optional(),
    envs: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const problem = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (c.pool.backend === 'ssh') {
      if (!c.hosts) problem(['pool', 'backend'], 'backend ssh needs a hosts: list (address, and user, port, identity_file, cpus, memory, accelerators as needed)');
      if (c.host) problem(['host'], 'describes this machine, for the local backend; an ssh pool describes each of its machines under hosts:');
      const seen = new Map<string, number>();
      c.hosts?.forEach((h, i) => {
        const name = h.name ?? h.address;
        if (seen.has(name)) problem(['hosts', i, h.name ? 'name' : 'address'], `host ${name} is listed twice (hosts[${seen.get(name)}] and hosts[${i}]); give each a distinct name`);
        seen.set(name, i);
      });
    } else {
      if (c.hosts) problem(['hosts'], 'only an ssh pool has hosts (set pool.backend: ssh)');
      if (c.ssh) problem(['ssh'], 'only an ssh pool takes ssh settings (set pool.backend: ssh)');
    }
    if (c.pool.backend === 'slurm') {
      if (!c.pool.shared_fs) problem(['pool', 'backend'], 'backend slurm needs pool.shared_fs: a folder every node mounts at the same path (the runtime, the pool token and the job logs go there)');
      if (c.host) problem(['host'], 'describes this machine, for the local backend; a Slurm pool asks the cluster for each worker with resources:');
    } else if (c.slurm) {
      problem(['slurm'], 'only a Slurm pool takes slurm settings (set pool.backend: slurm)');
    }
  });

/** A validated pool.yaml. */
export type PoolConfig = z.infer<typeof schema>;
/** A Slurm pool's `slurm:` settings. */
export type SlurmSettings = z.infer<typeof slurmSchema>;
/** One entry of an ssh pool's `hosts:`. */
export type SshHost = z.infer<typeof sshHostSchema>;

/** How long `setup` may run when the pool file does not say (`setup_timeout`). */
export const DEFAULT_SETUP_TIMEOUT_S = 30 * 60;

/** How long an autoscaled pool keeps workers it has no batches for when the pool file does not say (`pool.idle_delay`). */
export const DEFAULT_IDLE_DELAY_S = 60;

/** The fewest workers a pool runs: `pool.workers`, or its autoscaling `min`. */
export function minWorkers(config: PoolConfig): number {
  return autoscaleOf(config)?.min ?? config.pool.workers;
}

/** An autoscaled pool's range, if it is one. */
export function autoscaleOf(config: PoolConfig): { min: number; max: number } | undefined {
  return 'autoscale' in config.pool ? config.pool.autoscale : undefined;
}

export function setupTimeoutMs(config: PoolConfig): number {
  return Math.round((config.setup_timeout ?? DEFAULT_SETUP_TIMEOUT_S) * 1000);
}

/** A problem found after the schema passed (e.g. more GPUs asked than the host has), at a field. */
export interface ConfigProblem {
  field: string[];
  message: string;
}

/**
 * Parses and validates a pool file. Every problem is reported at once, each with its line
 * and field: `pool.yaml line 3: pool.workers: expected a whole number`. `check` adds
 * problems that need more than the file (what the host has), reported the same way.
 */
export function parsePoolConfig(text: string, file = 'pool.yaml', check?: (config: PoolConfig) => ConfigProblem[]): PoolConfig {
  const { LineCounter, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = lineCounter.linePos(e.pos[0]).line;
    throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', `${file} line ${line}: invalid YAML: ${e.message.split('\n')[0]}`, { context: { path: file, line } });
  }
  const at = (fieldPath: string[], what: string) => {
    const line = lineOf(doc.contents as YamlNode | null, fieldPath, lineCounter);
    const field = fieldPath.map((k, i) => (/^\d+$/.test(k) ? `[${k}]` : i ? `.${k}` : k)).join('') || '(top level)';
    return { line, field, text: `${file}${line ? ` line ${line}` : ''}: ${field}: ${what}` };
  };
  const result = schema.safeParse(doc.toJS() ?? {});
  const problems = result.success
    ? (check?.(result.data) ?? []).map((p) => at(p.field, p.message))
    : result.error.issues.map((issue) => {
        const keys = issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys : [];
        return at([...issue.path.map(String), ...keys.slice(0, 1)], issue.code === 'unrecognized_keys' ? `unknown field${keys.length > 1 ? 's' : ''} ${keys.join(', ')}` : issue.message);
      });
  if (result.success && !problems.length) return result.data;
  throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', problems.map((p) => p.text).join('\n'), {
    context: { path: file, line: problems[0].line, field: problems[0].field },
  });
}

/** A path from a pool file: `~/x` in the home folder, relative paths from the file's folder. */
function resolveFrom(file: string, p: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(os.homedir(), p.slice(1));
  return path.resolve(path.dirname(file), p);
}

/** Reads a pool file; relative paths (TLS, ssh files) are taken from the file's own folder. */
export function readPoolConfig(file: string, check?: (config: PoolConfig) => ConfigProblem[]): PoolConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', `cannot read pool file ${file}: ${(err as Error).message}`, { context: { path: file } });
  }
  const config = parsePoolConfig(text, file, check);
  const mustExist = (field: string, p: string): string => {
    const abs = resolveFrom(file, p);
    if (!fs.existsSync(abs)) throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', `${file}: ${field}: ${abs} does not exist`, { context: { path: file, field } });
    return abs;
  };
  const tls = config.coordinator?.tls;
  if (tls) for (const k of ['cert', 'key'] as const) tls[k] = mustExist(`coordinator.tls.${k}`, tls[k]);
  config.hosts?.forEach((h, i) => {
    if (h.identity_file) h.identity_file = mustExist(`hosts[${i}].identity_file`, h.identity_file);
  });
  if (config.ssh?.config) config.ssh.config = mustExist('ssh.config', config.ssh.config);
  if (config.ssh?.known_hosts) config.ssh.known_hosts = mustExist('ssh.known_hosts', config.ssh.known_hosts);
  // a Slurm pool's coordinator writes the runtime and the token there, and reads the job logs
  if (config.pool.backend === 'slurm' && config.pool.shared_fs) mustExist('pool.shared_fs', config.pool.shared_fs);
  const runtime = config.slurm?.runtime;
  if (runtime && !fs.existsSync(path.join(runtime, 'out', 'runtime', 'worker', 'main.js'))) {
    throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', `${file}: slurm.runtime: ${runtime} is not a skybatch installation (no out/runtime/worker/main.js in it)`, { context: { path: file, field: 'slurm.runtime' } });
  }
  return config;
}

/** The line of the deepest node along `path` that exists (the key itself when it does). */
function lineOf(root: YamlNode | null, path: string[], lc: LineCounter): number | undefined {
  const { isMap, isSeq } = yaml();
  let node: unknown = root;
  let line = root?.range ? lc.linePos(root.range[0]).line : undefined;
  for (const key of path) {
    if (isSeq(node) && /^\d+$/.test(key)) {
      const item = node.items[Number(key)] as YamlNode | undefined;
      if (!item) break;
      if (item.range) line = lc.linePos(item.range[0]).line;
      node = item;
      continue;
    }
    if (!isMap(node)) break;
    const pair = node.items.find((p) => String((p.key as { value?: unknown })?.value ?? p.key) === key);
    if (!pair) break;
    const k = pair.key as YamlNode;
    if (k?.range) line = lc.linePos(k.range[0]).line;
    node = pair.value;
  }
  return line;
}
