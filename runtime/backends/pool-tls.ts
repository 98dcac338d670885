import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as dns from 'node:dns/promises';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { SkybatchError } from '../../formats/common/errors.js';
import { writePrivate } from '../store/pool-store.js';

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/**
 * The address of this machine that packets to `address` leave from (the routing table's
 * choice; connecting a UDP socket sends nothing). That is the address a host there can dial
 * back, so an ssh pool's coordinator needs no `coordinator.host` in the common case.
 */
export async function localAddressFor(address: string): Promise<string> {
  const ip = net.isIP(address) ? address : (await dns.lookup(address)).address;
  const socket = dgram.createSocket(net.isIPv6(ip) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(9, ip, () => resolve());
    });
    return socket.address().address;
  } finally {
    socket.close();
  }
}

/**
 * The pool's own certificate for `wss://` when the pool file gives none: self-signed, for
 * exactly the addresses workers dial, kept in the pool folder (key mode 0600) and made again
 * when those change. Workers the backend starts get it and trust only it (pinning); clients
 * on this machine read its path from coordinator.json.
 */
export function poolCertificate(poolDir: string, pool: string, names: string[]): { cert: string; key: string } {
  const dir = path.join(poolDir, 'tls');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const sans = [...new Set(names)].sort().map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`));
  const sanFile = path.join(dir, 'names.json');
  try {
    if (fs.readFileSync(sanFile, 'utf8') === JSON.stringify(sans) && fs.existsSync(cert) && fs.existsSync(key)) return { cert, key };
  } catch {
    // none yet
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650', '-subj', `/CN=skybatch pool ${pool}`, '-addext', `subjectAltName=${sans.join(',')}`, '-keyout', `${key}.tmp`, '-out', `${cert}.tmp`],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
    );
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer; message: string };
    const why = e.code === 'ENOENT' ? 'openssl is not installed' : (e.stderr?.toString().trim() || e.message).split('\n')[0];
    throw new SkybatchError('SKYBATCH_E_POOL_CONFIG', `cannot make pool ${pool}'s TLS certificate (${why}): install openssl, or give coordinator.tls.cert and key in the pool file`, {
      context: { field: 'coordinator.tls' },
    });
  }
  fs.chmodSync(`${key}.tmp`, 0o600);
  fs.renameSync(`${key}.tmp`, key);
  fs.renameSync(`${cert}.tmp`, cert);
  writePrivate(sanFile, JSON.stringify(sans));
  return { cert, key };
}
