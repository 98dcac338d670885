import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { applyPool, poolDown, poolStatus } from '../control/pools.js';
import type { PoolSummary, WorkerResources } from '../protocol.js';
import { note, say, table } from './output.js';

/** Asks on the terminal; `-y`, or no terminal to ask on, says yes. */
export function confirmer(yes: boolean): (question: string) => Promise<boolean> {
  return async (question) => {
    if (yes || !process.stdin.isTTY) return true;
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return /^(y|yes|)$/i.test((await rl.question(`${question} [Y/n] `)).trim());
    } finally {
      rl.close();
    }
  };
}

/** A worker's share of its host for `pool status`: `GPU 0 (NVIDIA L4), CPUs 0-3, mem 4096 MB`, or `-`. */
export function describeResources(r: WorkerResources | undefined): string {
  const parts: string[] = [];
  if (r?.gpus?.length) {
    const names = [...new Set(r.gpus.map((g) => g.name))].join(', ');
    parts.push(`GPU${r.gpus.length > 1 ? 's' : ''} ${r.gpus.map((g) => g.index).join(',')} (${names})`);
  }
  if (r?.cpus) parts.push(`CPU${r.cpus.includes(',') || r.cpus.includes('-') ? 's' : ''} ${r.cpus}`);
  if (r?.memoryMb) parts.push(`mem ${r.memoryMb} MB`);
  return parts.join(', ') || '-';
}

function printPool(pool: string, s: PoolSummary): void {
  say(`${pool}: running, ${s.workers.length}/${s.workersWanted} workers, coordinator ${s.url} (pid ${s.pid})`);
  if (s.autoscale) say(`autoscaled ${s.autoscale.min}–${s.autoscale.max}, wants ${s.autoscale.wanted}: ${s.autoscale.reason}`);
  // STATE is the coordinator's view of a worker's connection; ENGINE its backend's (ssh session, process).
  const engine = new Map((s.backend?.workers ?? []).map((b) => [b.name, b]));
  const rows = [['WORKER', 'HOST', 'STATE', 'JOB', 'DEVICES', 'BATCHES', 'ENGINE']];
  for (const w of s.workers) {
    rows.push([w.name, w.host, w.state, w.jobId ?? '-', describeResources(w.resources), w.batches.map((b) => `[${b[0]},${b[1]}]`).join(' ') || '-', engine.get(w.name)?.state ?? '-']);
  }
  const connected = new Set(s.workers.filter((w) => w.state !== 'gone').map((w) => w.name));
  for (const b of engine.values()) if (!connected.has(b.name)) rows.push([b.name, b.host, '-', '-', '-', '-', b.state]);
  say(table(rows));
  for (const w of s.workers) for (const n of w.resources?.notes ?? []) say(`note: ${w.name}: ${n}`);
  for (const b of engine.values()) if (b.reason && b.state !== 'running') say(`${b.state}: ${b.name} on ${b.host}: ${b.reason} (since ${b.since})`);
}

/** `skybatch pool apply | status | down`. */
export function registerPoolCommands(program: Command): void {
  const pool = program.command('pool').description('create, inspect and tear down worker pools');

  pool
    .command('apply')
    .argument('<pool.yaml>', 'the pool file: pool.workers, resources, setup, envs')
    .requiredOption('--pool <name>', 'pool name')
    .option('-y, --yes', 'do not ask for confirmation', false)
    .option('--no-wait', 'return before the workers finish setup')
    .description('create or update a pool; its workers stay up across jobs')
    .action(async (file: string, o: { pool: string; yes: boolean; wait: boolean }) => {
      const s = await applyPool(file, o.pool, { confirm: confirmer(o.yes), wait: o.wait, log: note });
      const ready = s.workers.filter((w) => w.state === 'idle' || w.state === 'busy').length;
      say(`pool ${o.pool}: ${ready}/${s.workersWanted} workers ready (coordinator ${s.url}, pid ${s.pid})`);
    });

  pool
    .command('status')
    .argument('[name]', 'one pool (default: all)')
    .description('show pools, their workers and what each is doing')
    .action(async (name?: string) => {
      const pools = await poolStatus(name);
      if (!pools.length) say('no pools');
      for (const p of pools) {
        if (p.running && p.status) printPool(p.pool, p.status);
        else say(`${p.pool}: not running`);
      }
    });

  pool
    .command('down')
    .argument('<name>', 'pool name')
    .option('-y, --yes', 'do not ask for confirmation', false)
    .description('stop the pool and its workers (job records are kept for recovery)')
    .action(async (name: string, o: { yes: boolean }) => {
      if (await poolDown(name, { confirm: confirmer(o.yes), log: note })) say(`pool ${name} is down`);
    });
}
