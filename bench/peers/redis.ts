import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { alive, freePort, kill, sleep } from '../lib/proc.js';

export interface RedisServer {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Whether redis-server is on PATH; as root, installs Debian's package when it is missing. */
export function ensureRedisServer(): string | undefined {
  const found = () => spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim() || undefined;
  let bin = found();
  if (!bin && process.getuid?.() === 0) {
    process.stderr.write('bench: installing redis-server (apt-get)\n');
    spawnSync('sh', ['-c', 'apt-get install -y -qq redis-server >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)'], { stdio: 'inherit' });
    bin = found();
  }
  return bin;
}

/**
 * Debian's redis-server on a free loopback port, nothing persisted (`--save '' --appendonly
 * no`), daemonized with a pid file; stopped by that pid.
 */
export async function startRedis(bin: string): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-bench-redis-'));
  const pidfile = path.join(dir, 'redis.pid');
  const port = await freePort();
  execFileSync(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--pidfile', pidfile, '--dir', dir, '--logfile', path.join(dir, 'redis.log')]);
  const deadline = Date.now() + 10_000;
  let pid = 0;
  while (!pid) {
    try {
      pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server did not write ${pidfile} within 10 s`);
      await sleep(20);
    }
  }
  return {
    port,
    pid,
    async stop() {
      kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(pid); i++) await sleep(20);
      kill(pid, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
