import type { JobSpec } from '../protocol.js';

/** Which GPUs a process sees is the worker's business, never the submitting client's. */
export const DEVICE_ENV = ['CUDA_VISIBLE_DEVICES', 'CUDA_DEVICE_ORDER'];

export function withoutDeviceEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out = { ...env };
  for (const k of DEVICE_ENV) delete out[k];
  return out;
}

/** What the worker adds to a job's mapper process environment. */
export interface WorkerEnv {
  /** The pool's envs. */
  setupEnv: Record<string, string>;
  /** The GPUs this worker shows its processes. */
  deviceEnv: Record<string, string>;
  worker: string;
  /** The agent's skybatch build (the mapper process refuses another one). */
  build: string;
  /** The folder of the job's shipped packages (or, for `processKey`, their hash). */
  packages?: string;
}

/** The environment of job `spec`'s mapper process: the agent's, the pool's envs, the job's, the worker's devices. */
export function mapperEnv(spec: JobSpec, w: WorkerEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...withoutDeviceEnv(process.env),
    ...w.setupEnv,
    ...withoutDeviceEnv(spec.env),
    ...w.deviceEnv,
    SKYBATCH_JOB_ID: spec.jobId,
    SKYBATCH_WORKER: w.worker,
    SKYBATCH_AGENT_BUILD: w.build,
    ...(w.packages ? { SKYBATCH_PACKAGES: w.packages } : {}),
  };
  delete env.SKYBATCH_TOKEN;
  return env;
}

/**
 * Everything a mapper process is started with for `spec`, apart from the job's id: a warm
 * process runs a next job only when this is the same (mapper-supervisor.ts). The whole
 * environment and the script's arguments count, not only what the script reads, because
 * the bundle's top level ran under the first job's (a `const ROUNDS =
 * Number(process.env.ROUNDS)` or `process.argv[2]` read there keeps its value).
 * Python mappers are never kept (their bridge process is per job): undefined.
 */
export function processKey(spec: JobSpec, env: NodeJS.ProcessEnv, memoryMb: number | undefined): string | undefined {
  if (spec.python) return undefined;
  const { SKYBATCH_JOB_ID: _job, ...rest } = env;
  const sorted = Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([spec.bundleHash, spec.argv, spec.activateEnv ?? null, memoryMb ?? null, sorted]);
}
