import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** One GPU as `CUDA_VISIBLE_DEVICES` counts it (PCI bus order, as `nvidia-smi -L` lists them). */
export interface Gpu {
  index: number;
  name: string;
}

/** What one machine has: pool.yaml's `host:` block where given, else what this machine shows. */
export interface HostFacts {
  gpus: Gpu[];
  /** Where `gpus` came from, for messages: "declared in host.accelerators", "detected with nvidia-smi -L", ... */
  gpuSource: string;
  /** How many CPUs the host offers to workers. */
  cpuCount: number;
  /** CPU ids this process may run on (its affinity): the ones workers are pinned to. */
  cpuIds: number[];
  memoryMb: number;
  /** Path of `taskset` when it is installed. */
  taskset?: string;
}

export interface DeclaredHost {
  cpus?: number;
  /** GB */
  memory?: number;
  accelerators?: string | Record<string, number>;
}

/**
 * The host as the local backend sees it. Declared fields win: a machine whose driver tools
 * are missing, or a user who keeps GPUs for something else, says what workers may use.
 */
export function probeHost(declared: DeclaredHost = {}): HostFacts {
  const cpuIds = allowedCpus();
  const detected = declared.accelerators === undefined ? detectGpus() : undefined;
  return {
    gpus: detected ? detected.gpus : expandAccelerators(declared.accelerators!),
    gpuSource: detected ? detected.source : 'declared in host.accelerators',
    cpuCount: declared.cpus ?? cpuIds.length,
    cpuIds: declared.cpus === undefined ? cpuIds : cpuIds.slice(0, declared.cpus),
    memoryMb: declared.memory !== undefined ? Math.floor(declared.memory * 1024) : Math.floor(os.totalmem() / 2 ** 20),
    taskset: findOnPath('taskset'),
  };
}

/** `L4:2` or `{ A100: 2, L4: 2 }` as a device list; indices follow declaration order. */
export function expandAccelerators(spec: string | Record<string, number>): Gpu[] {
  const gpus: Gpu[] = [];
  for (const { type, count } of parseAccelerators(spec)) for (let i = 0; i < count; i++) gpus.push({ index: gpus.length, name: type });
  return gpus;
}

/** `L4:1` → [{ type: 'L4', count: 1 }]; a map lists alternatives in order. */
export function parseAccelerators(spec: string | Record<string, number>): { type: string; count: number }[] {
  if (typeof spec !== 'string') return Object.entries(spec).map(([type, count]) => ({ type, count }));
  const [type, count] = spec.split(':');
  return [{ type, count: count === undefined ? 1 : Number(count) }];
}

/** Parses `nvidia-smi -L`: `GPU 0: NVIDIA L4 (UUID: GPU-...)`; MIG lines below a GPU are skipped. */
export function parseNvidiaSmiList(text: string): Gpu[] {
  const gpus: Gpu[] = [];
  for (const line of text.split('\n')) {
    const m = /^GPU (\d+): (.+?)(?: \(UUID: [^)]*\))?\s*$/.exec(line);
    if (m) gpus.push({ index: Number(m[1]), name: m[2].trim() });
  }
  return gpus;
}

function detectGpus(): { gpus: Gpu[]; source: string } {
  const smi = findOnPath('nvidia-smi');
  if (!smi) return { gpus: [], source: 'no nvidia-smi on PATH' };
  try {
    const out = execFileSync(smi, ['-L'], { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { gpus: parseNvidiaSmiList(out), source: 'detected with nvidia-smi -L' };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { gpus: [], source: `nvidia-smi -L failed: ${(e.stderr || e.message).trim().split('\n')[0]}` };
  }
}

/** The CPUs this process may use (Linux affinity), else every CPU. */
function allowedCpus(): number[] {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return parseCpuList(m[1]);
  } catch {
    // not Linux
  }
  return os.cpus().map((_, i) => i);
}

/** `0-3,8` → [0, 1, 2, 3, 8] */
export function parseCpuList(list: string): number[] {
  const ids: number[] = [];
  for (const part of list.split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    for (let i = a; i <= (b ?? a); i++) ids.push(i);
  }
  return ids;
}

/** [0, 1, 2, 3, 8] → `0-3,8`, the form `taskset -c` takes and /proc shows. */
export function formatCpuList(ids: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length; ) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    parts.push(j > i ? `${ids[i]}-${ids[j]}` : String(ids[i]));
    i = j + 1;
  }
  return parts.join(',');
}

function findOnPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, cmd);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}
