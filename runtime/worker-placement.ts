import type { ConfigProblem, PoolConfig } from './pool-config.js';
import { Gpu, HostFacts, formatCpuList, parseAccelerators } from './host-resources.js';
import type { WorkerResources } from './protocol.js';

export interface LocalPlan {
  /** One entry per worker slot, in slot order; shorter than `pool.workers` when they do not fit. */
  workers: WorkerResources[];
  /** Requests the host cannot meet at all: pool.yaml errors. */
  problems: ConfigProblem[];
  /** Things to tell the user at `pool apply`. */
  notes: string[];
}

/**
 * Gives each local worker slot its share of the host: its own GPUs (of a type it accepts),
 * its own CPUs, and its memory limit. Slot i's share depends only on slots before it, so
 * growing the pool leaves running workers' devices as they are and keeps shares disjoint.
 */
export function planLocalWorkers(config: PoolConfig, host: HostFacts): LocalPlan {
  const n = config.pool.workers;
  const res = config.resources ?? {};
  const problems: ConfigProblem[] = [];
  const notes: string[] = [];
  const workers: WorkerResources[] = [];

  const wants = res.accelerators === undefined ? [] : parseAccelerators(res.accelerators).filter((w) => w.count > 0);
  if (!wants.length && host.gpus.length) {
    notes.push(`this host has ${describeGpus(host.gpus)} (${host.gpuSource}); the pool asks for none, so its workers see none (CUDA_VISIBLE_DEVICES=''): ask with resources.accelerators, e.g. gpu:1`);
  }
  const free = [...host.gpus];
  for (let i = 0; i < n; i++) {
    let gpus: Gpu[] | undefined = [];
    if (wants.length) {
      gpus = undefined;
      for (const want of wants) {
        const fits = free.filter((g) => gpuMatches(want.type, g.name));
        if (fits.length >= want.count) {
          gpus = fits.slice(0, want.count);
          break;
        }
      }
    }
    if (!gpus) {
      const asked = wants.map((w) => `${w.type}:${w.count}`).join(' or ');
      const held = i ? `; ${i === 1 ? 'worker 0 holds' : `workers 0-${i - 1} hold`} ${host.gpus.length - free.length} of them` : '';
      problems.push({
        field: ['resources', 'accelerators'],
        message: `${n} worker(s) x ${asked} do not fit: worker ${i} gets no GPU because this host has ${host.gpus.length ? describeGpus(host.gpus) : 'no GPU'} (${host.gpuSource})${held}. Lower pool.workers or the count, or declare the host's GPUs under host.accelerators`,
      });
      break;
    }
    for (const g of gpus) free.splice(free.indexOf(g), 1);
    workers.push({ gpus });
  }

  if (res.cpus !== undefined) {
    const per = Number(String(res.cpus).replace('+', ''));
    let why: string | undefined;
    if (!Number.isInteger(per)) why = `resources.cpus ${res.cpus} is not a whole number of CPUs`;
    else if (!host.taskset) why = 'taskset is not installed (Debian/Ubuntu: apt-get install util-linux)';
    else if (per * n > host.cpuIds.length) why = `${n} worker(s) x ${per} CPUs need ${per * n}, and this host offers ${host.cpuIds.length}`;
    if (why) {
      notes.push(`workers are not pinned to CPUs: ${why}`);
      for (const w of workers) w.notes = [...(w.notes ?? []), `not pinned to CPUs: ${why}`];
    } else {
      workers.forEach((w, i) => (w.cpus = formatCpuList(host.cpuIds.slice(i * per, (i + 1) * per))));
    }
  }

  if (res.memory !== undefined) {
    const gb = Number(String(res.memory).replace('+', ''));
    // `N+` (at least N) gives each worker an equal share of the host when that is more.
    const mb = Math.max(Math.floor(gb * 1024), String(res.memory).endsWith('+') ? Math.floor(host.memoryMb / n) : 0);
    if (mb * n > host.memoryMb) notes.push(`${n} worker(s) x ${mb} MB of memory is more than this host's ${host.memoryMb} MB; each mapper is still stopped above ${mb} MB`);
    for (const w of workers) w.memoryMb = mb;
  }
  return { workers, problems, notes };
}

/**
 * Whether a GPU named `name` (as nvidia-smi shows it) is of the requested `type`: `gpu` is
 * any; otherwise each word of the type appears in the name, or the type is some adjacent
 * words run together. `L4` matches "NVIDIA L4" but not "NVIDIA L40S"; `A100-80GB` matches
 * "NVIDIA A100-SXM4-80GB"; `RTX4090` matches "NVIDIA GeForce RTX 4090".
 */
export function gpuMatches(type: string, name: string): boolean {
  const words = (s: string) => s.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  const want = words(type);
  if (want.length === 1 && want[0] === 'gpu') return true;
  const have = words(name);
  if (want.every((w) => have.includes(w))) return true;
  const joined = want.join('');
  for (let i = 0; i < have.length; i++) {
    let s = '';
    for (let j = i; j < have.length && s.length < joined.length; j++) if ((s += have[j]) === joined) return true;
  }
  return false;
}

export function describeGpus(gpus: Gpu[]): string {
  return `${gpus.length} GPU${gpus.length === 1 ? '' : 's'} (${gpus.map((g) => `${g.index}: ${g.name}`).join(', ')})`;
}
