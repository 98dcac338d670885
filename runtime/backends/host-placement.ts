import { expandAccelerators, formatCpuList, Gpu, parseAccelerators } from '../host-resources.js';
import type { ConfigProblem, PoolConfig, SshHost } from '../pool-config.js';
import type { WorkerResources } from '../protocol.js';
import { describeGpus, gpuMatches } from '../worker-placement.js';

/** One worker of a multi-host pool: where it runs and its share of that host. */
export interface HostSlot {
  /** Index into `hosts:`. */
  host: number;
  /** NAME-k: the k-th worker on that host. */
  name: string;
  resources: WorkerResources;
}

export interface HostPlan {
  /** Slot i's placement; shorter than asked when the rest fit on no host. */
  workers: HostSlot[];
  problems: ConfigProblem[];
}

export const hostLabel = (h: SshHost) => h.name ?? h.address;

/**
 * Places `count` workers over the pool's hosts from what each host declares (`cpus`,
 * `memory`, `accelerators`) and what each worker asks (`resources`): a worker that needs
 * `L4:1` lands only on a host that declares an L4 it can have to itself (its CUDA index on
 * that host), one that needs 2 CPUs only where 2 declared CPUs are free (pinned to them),
 * one that needs 8 GB only where 8 declared GB are left. Among hosts that fit, the one with
 * the fewest workers so far, then the first listed: workers spread. Slot i depends only on
 * slots before it, so growing a pool leaves running workers where they are. A host that
 * declares nothing has no GPU and no CPU or memory limit.
 */
export function planHostWorkers(config: PoolConfig, count = config.pool.workers): HostPlan {
  const hosts = config.hosts ?? [];
  const res = config.resources ?? {};
  const wants = res.accelerators === undefined ? [] : parseAccelerators(res.accelerators).filter((w) => w.count > 0);
  const cpuAsk = res.cpus === undefined ? undefined : Number(String(res.cpus).replace('+', ''));
  const perCpu = cpuAsk !== undefined && Number.isInteger(cpuAsk) ? cpuAsk : undefined;
  const memMb = res.memory === undefined ? undefined : Math.floor(Number(String(res.memory).replace('+', '')) * 1024);
  const state = hosts.map((h) => ({
    gpus: h.accelerators === undefined ? [] : expandAccelerators(h.accelerators),
    freeGpus: h.accelerators === undefined ? [] : expandAccelerators(h.accelerators),
    freeCpus: h.cpus === undefined ? undefined : Array.from({ length: h.cpus }, (_, i) => i),
    freeMb: h.memory === undefined ? undefined : Math.floor(h.memory * 1024),
    workers: 0,
  }));
  const workers: HostSlot[] = [];
  const problems: ConfigProblem[] = [];
  for (let i = 0; i < count; i++) {
    const order = state.map((s, h) => ({ s, h })).sort((a, b) => a.s.workers - b.s.workers || a.h - b.h);
    const whyNot: { field: string; text: string }[] = [];
    let slot: HostSlot | undefined;
    for (const { s, h } of order) {
      const label = hostLabel(hosts[h]);
      let gpus: Gpu[] | undefined = [];
      if (wants.length) {
        gpus = undefined;
        for (const want of wants) {
          const fits = s.freeGpus.filter((g) => gpuMatches(want.type, g.name));
          if (fits.length >= want.count) {
            gpus = fits.slice(0, want.count);
            break;
          }
        }
        if (!gpus) {
          const held = s.gpus.length - s.freeGpus.length;
          whyNot.push({ field: 'accelerators', text: `${label} has ${s.gpus.length ? describeGpus(s.gpus) : 'no GPU declared'}${held ? `, ${held} taken by earlier workers` : ''}` });
          continue;
        }
      }
      if (perCpu !== undefined && s.freeCpus && s.freeCpus.length < perCpu) {
        whyNot.push({ field: 'cpus', text: `${label} has ${s.freeCpus.length} of its ${hosts[h].cpus} CPUs free, ${perCpu} asked` });
        continue;
      }
      if (memMb !== undefined && s.freeMb !== undefined && s.freeMb < memMb) {
        whyNot.push({ field: 'memory', text: `${label} has ${s.freeMb} MB of its ${hosts[h].memory} GB free, ${memMb} MB asked` });
        continue;
      }
      const resources: WorkerResources = { gpus };
      for (const g of gpus) s.freeGpus.splice(s.freeGpus.indexOf(g), 1);
      if (perCpu !== undefined && s.freeCpus) resources.cpus = formatCpuList(s.freeCpus.splice(0, perCpu));
      else if (cpuAsk !== undefined) resources.notes = [perCpu === undefined ? `not pinned to CPUs: resources.cpus ${res.cpus} is not a whole number` : `not pinned to CPUs: host ${label} does not declare its cpus`];
      if (memMb !== undefined) {
        resources.memoryMb = memMb;
        if (s.freeMb !== undefined) s.freeMb -= memMb;
      }
      slot = { host: h, name: `${label}-${s.workers++}`, resources };
      break;
    }
    if (!slot) {
      const asked = [wants.length ? wants.map((w) => `${w.type}:${w.count}`).join(' or ') : '', perCpu !== undefined ? `${perCpu} CPUs` : '', memMb !== undefined ? `${memMb} MB` : '']
        .filter(Boolean)
        .join(', ');
      problems.push({
        field: ['resources', whyNot[0]?.field ?? 'accelerators'],
        message: `${count} worker(s) x ${asked} do not fit on the hosts: worker ${i} fits on none (${whyNot.map((w) => w.text).join('; ')}). Lower pool.workers or the request, or declare what the hosts have under hosts[].cpus / memory / accelerators`,
      });
      break;
    }
    workers.push(slot);
  }
  if (!hosts.length) problems.push({ field: ['hosts'], message: 'no hosts to place workers on' });
  return { workers, problems };
}
