import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkybatchError } from '../../formats/common/errors.js';
import type { PoolConfig, SshHost } from '../pool-config.js';
import type { WorkerBackend } from './backend.js';
import { hostLabel } from './host-placement.js';
import { LocalBackend } from './local.js';
import { isLoopback, isWildcard, localAddressFor, poolCertificate } from './pool-tls.js';
import { SlurmBackend } from './slurm.js';
import { SshBackend } from './ssh.js';

/** Where the coordinator listens, and the address each host dials it at. */
export interface Listening {
  bind: string;
  /** The address a worker on `host` dials (the bind address unless it is a wildcard). */
  dial: (host: SshHost) => string;
  /** Every address workers or clients dial: the names the pool's own certificate covers. */
  names: string[];
}

/**
 * The address the coordinator binds: `--host`, else `coordinator.host`, else for a pool on
 * other machines the address of this machine the hosts reach (the one every host's route
 * leaves from; they must agree), else 127.0.0.1. With a wildcard (0.0.0.0), each host dials
 * the address its own route leaves from.
 */
export async function listenAddress(config: PoolConfig, given?: string): Promise<Listening> {
  const explicit = given ?? config.coordinator?.host;
  if (explicit && !isWildcard(explicit)) return { bind: explicit, dial: () => explicit, names: [explicit, '127.0.0.1'] };
  // A Slurm pool's nodes are not known in advance: they reach this machine the way the controller does.
  const hosts = config.pool.backend === 'ssh' ? (config.hosts ?? []) : config.pool.backend === 'slurm' ? [await slurmController()] : [];
  if (!hosts.length) {
    const bind = explicit ?? '127.0.0.1';
    return { bind, dial: () => '127.0.0.1', names: [bind, '127.0.0.1'] };
  }
  // by address: a `pool apply` on the running pool hands the backend new host objects
  const seen = new Map<string, string>();
  for (const h of hosts) {
    try {
      seen.set(h.address, await localAddressFor(h.address));
    } catch (err) {
      throw new SkybatchError(
        'SKYBATCH_E_POOL_CONFIG',
        `cannot tell which address of this machine host ${hostLabel(h)} (${h.address}) reaches: ${(err as Error).message}. Set coordinator.host in the pool file to an address of this machine the hosts can dial`,
        { context: { field: 'coordinator.host' } },
      );
    }
  }
  const addresses = [...new Set(seen.values())];
  if (explicit) return { bind: explicit, dial: (h) => seen.get(h.address) ?? addresses[0], names: [explicit, ...addresses, '127.0.0.1'] };
  if (addresses.length > 1) {
    throw new SkybatchError(
      'SKYBATCH_E_POOL_CONFIG',
      `the hosts reach this machine at different addresses (${hosts.map((h) => `${hostLabel(h)}: ${seen.get(h.address)}`).join(', ')}): set coordinator.host to the one to listen on, or 0.0.0.0 for all`,
      { context: { field: 'coordinator.host' } },
    );
  }
  return { bind: addresses[0], dial: () => addresses[0], names: [addresses[0], '127.0.0.1'] };
}

/**
 * The coordinator's certificate: the pool file's, else, when it listens beyond loopback,
 * the pool's own self-signed one (made once, kept in the pool folder). Undefined: plain ws://
 * on loopback.
 */
export function coordinatorTls(config: PoolConfig, listening: Listening, poolDir: string, pool: string): { cert: string; key: string } | undefined {
  if (config.coordinator?.tls) return config.coordinator.tls;
  if (isLoopback(listening.bind)) return undefined;
  return poolCertificate(poolDir, pool, listening.names);
}

/**
 * The Slurm controller as a host to reach (from `scontrol show config`): this machine's
 * address on the route to it is the one a Slurm pool's coordinator listens on by default.
 */
async function slurmController(): Promise<SshHost> {
  const text = await new Promise<string>((resolve, reject) =>
    execFile('scontrol', ['show', 'config'], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr.trim().split('\n').at(-1) || err.message)) : resolve(stdout))),
  ).catch((err: Error) => {
    throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', `cannot ask Slurm where its controller is (scontrol show config: ${err.message}); set coordinator.host in the pool file to an address of this machine the nodes can dial`, {
      context: { field: 'coordinator.host' },
    });
  });
  const addr = /^SlurmctldAddr\s*=\s*(\S+)/m.exec(text)?.[1];
  const host = /^SlurmctldHost\[0\]\s*=\s*([^\s(]+)(?:\(([^)]+)\))?/m.exec(text);
  const address = addr && addr !== '(null)' ? addr : (host?.[2] ?? host?.[1]);
  if (!address) throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', 'scontrol show config names no SlurmctldHost; set coordinator.host in the pool file to an address of this machine the nodes can dial', { context: { field: 'coordinator.host' } });
  return { name: 'the Slurm controller', address };
}

export interface BackendContext {
  pool: string;
  poolDir: string;
  config: () => PoolConfig;
  token: string;
  log: (line: string) => void;
  /** The URL workers on this machine dial. */
  localUrl: () => string;
  /** The URL a worker on `host` dials. */
  hostUrl: (host: SshHost) => string;
  tls?: { cert: string; key: string };
}

export function makeBackend(ctx: BackendContext): WorkerBackend {
  const config = ctx.config();
  if (config.pool.backend === 'ssh') {
    return new SshBackend({
      pool: ctx.pool,
      config: ctx.config,
      url: ctx.hostUrl,
      token: ctx.token,
      caPem: ctx.tls ? fs.readFileSync(ctx.tls.cert, 'utf8') : undefined,
      log: ctx.log,
      logDir: path.join(ctx.poolDir, 'workers'),
    });
  }
  if (config.pool.backend === 'slurm') {
    return new SlurmBackend({
      pool: ctx.pool,
      poolDir: ctx.poolDir,
      config: ctx.config,
      // the nodes dial the address on the route to the controller (any host stands for them all)
      url: () => ctx.hostUrl({ address: '' }),
      token: ctx.token,
      caPem: ctx.tls ? fs.readFileSync(ctx.tls.cert, 'utf8') : undefined,
      log: ctx.log,
    });
  }
  return new LocalBackend(ctx.pool, ctx.localUrl, ctx.token, ctx.log, ctx.tls?.cert, ctx.config);
}
