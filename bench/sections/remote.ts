import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Sandbox } from '../../test/harness.js';
import { type Net, netnsDown, netnsImpossible, netnsUp } from '../../test/scaleout/netns.js';
import { watchBatches } from '../lib/batch-events.js';
import { SCRIPTS } from './script.js';

export type RemoteResult =
  | {
      /** `pool apply` started → it returned (workers shipped, started, joined). */
      applySeconds: number;
      /** `pool apply` started → the first batch of a job submitted right after runs on a remote worker. */
      firstRemoteBatchSeconds: number;
      /** `ip link set … down` on the host running a batch → the coordinator gives the batch up. */
      linkDownNoticedSeconds: number;
      /** `ip link set … down` → that batch runs on the other host. */
      linkDownRunningElsewhereSeconds: number;
    }
  | { skipped: string };

/**
 * An ssh pool of one worker on each of two hosts (network namespaces with their own sshd,
 * test/scaleout/netns-hosts.sh): times `pool apply` to the first batch running on a remote
 * worker, then cuts the link of the host running a batch and times until that batch runs on
 * the other host. Without root or ip netns the section is skipped with the reason.
 */
export async function runRemote(log: (line: string) => void, sleepMs: number): Promise<RemoteResult> {
  const impossible = netnsImpossible();
  if (impossible) return { skipped: impossible };
  const sb = new Sandbox('bench-remote');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sky-bench-netns-'));
  let net: Net | undefined;
  try {
    log('remote: two ssh hosts in network namespaces');
    // the hosts get nothing of skybatch but what the backend ships, as real ones would
    net = netnsUp(dir, [sb.home]);
    const hosts = ['h1', 'h2']
      .map((h) => `  - name: ${h}\n    address: ${net!.ip[h]}\n    user: root\n    identity_file: ${dir}/id_ed25519\n    cpus: 1\n`)
      .join('');
    const yaml = `pool:\n  workers: 2\n  backend: ssh\nhosts:\n${hosts}ssh:\n  known_hosts: ${dir}/known_hosts\n  options:\n    ServerAliveInterval: 1\n    ServerAliveCountMax: 3\n    ConnectTimeout: 3\nresources:\n  cpus: 1\n`;
    const t0 = performance.now();
    await sb.applyPool('remote', yaml);
    const applySeconds = (performance.now() - t0) / 1000;
    const c = sb.coordinator('remote') as { url: string; token: string; ca?: string };
    const { next, close } = await watchBatches(c.url, c.token, c.ca);
    const first = next((e) => e.state === 'running' && /^h[12]-/.test(e.worker ?? ''), 'the first batch running on a remote worker', 120_000);
    const job = sb.cli(['run', path.join(SCRIPTS, 'sleepy.ts')], { env: { POOL: 'remote', SLEEP_MS: String(sleepMs), ITEMS: '100000' } });
    try {
      await first;
      const firstRemoteBatchSeconds = (performance.now() - t0) / 1000;
      const started = await next((e) => e.state === 'running' && e.worker?.startsWith('h1-') === true, 'a batch running on h1');
      const again = next((e) => e.index === started.index && e.state === 'running' && e.attempt !== started.attempt && e.worker?.startsWith('h2-') === true, `batch ${started.index} to run on h2`, 120_000);
      const noticed = next((e) => e.index === started.index && e.attempt === started.attempt && e.state !== 'running', `batch ${started.index} to be given up`, 120_000);
      const t1 = performance.now();
      execFileSync('ip', ['link', 'set', net.veth.h1, 'down']);
      const tNoticed = await noticed.then(() => performance.now());
      await again;
      const tAgain = performance.now();
      return { applySeconds, firstRemoteBatchSeconds, linkDownNoticedSeconds: (tNoticed - t1) / 1000, linkDownRunningElsewhereSeconds: (tAgain - t1) / 1000 };
    } finally {
      await close();
      await job;
    }
  } finally {
    // links back up first, so that pool down reaches every host
    if (net) for (const v of Object.values(net.veth)) spawnSync('ip', ['link', 'set', v, 'up']);
    await sb.cleanup();
    netnsDown(net, dir);
  }
}
