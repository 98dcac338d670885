import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from '../harness.js';

/** Hosts as network namespaces with their own sshd, used by the ssh pool tests and the bench's remote section. */
export const NETNS = path.join(ROOT, 'test', 'scaleout', 'netns-hosts.sh');

/** Why this machine cannot make network namespaces (not root, no iproute2), or undefined when it can. */
export function netnsImpossible(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  // iproute2 and sshd, when missing; a failure here shows up as the hosts failing to come up, not as a skip
  spawnSync('bash', [NETNS, 'install', os.tmpdir()], { stdio: 'inherit' });
  const probe = `skyprobe${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `ip netns add failed: ${r.error?.message ?? r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

export interface Net {
  dir: string;
  hostIp: string;
  ip: Record<string, string>;
  ns: Record<string, string>;
  veth: Record<string, string>;
}

export function readNet(dir: string): Net {
  const env = Object.fromEntries(
    fs
      .readFileSync(path.join(dir, 'net.env'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split('=') as [string, string]),
  );
  const pick = (prefix: string) => Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  return { dir, hostIp: env.HOST_IP, ip: pick('IP_'), ns: pick('NS_'), veth: pick('VETH_') };
}

/** Brings hosts h1 h2 up in `dir`; `hide` are paths the hosts must not see (they get only what the backend ships). */
export function netnsUp(dir: string, hide: string[]): Net {
  execFileSync('bash', [NETNS, 'up', dir], { env: { ...process.env, SKY_NETNS_HIDE: hide.join(' ') }, stdio: ['ignore', 'ignore', 'inherit'] });
  return readNet(dir);
}

/** Puts every link back up and takes the hosts down (safe to call twice). */
export function netnsDown(net: Net | undefined, dir: string): void {
  if (net) for (const v of Object.values(net.veth)) spawnSync('ip', ['link', 'set', v, 'up']);
  execFileSync('bash', [NETNS, 'down', dir], { stdio: 'ignore' });
  fs.rmSync(dir, { recursive: true, force: true });
}
