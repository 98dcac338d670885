import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export interface Server {
  url: string;
  port: number;
  proc: ChildProcess;
  log: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

export const SETTINGS = {
  'workbench.startupEditor': 'none',
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoUpdate': false,
  'remote.autoForwardPorts': false,
  'chat.disableAIFeatures': true,
  'workbench.tips.enabled': false,
  'notebook.confirmDeleteRunningCell': false,
  'window.confirmBeforeClose': 'never',
  'files.hotExit': 'off',
  'workbench.colorTheme': 'Default Dark Modern',
};

/**
 * A fresh code-server (VS Code 1.100 served to a browser) for one run: its own HOME,
 * TMPDIR, user data and extensions dirs under `run`, and the given environment, which the
 * extension host inherits. `stop()` kills its whole process group.
 */
export async function startCodeServer(root: string, run: string, env: Record<string, string>): Promise<Server> {
  const entry = path.join(root, '.cache/code-server/node_modules/code-server/out/node/entry.js');
  for (const d of ['home', 'tmp', 'data/User', 'ext']) fs.mkdirSync(path.join(run, d), { recursive: true });
  fs.writeFileSync(path.join(run, 'data/User/settings.json'), JSON.stringify(SETTINGS, null, 1));
  if (env.SKYBATCH_VSIX) {
    // The packaged extension, installed the way a user installs it.
    const r = spawnSync(process.execPath, [entry, '--extensions-dir', path.join(run, 'ext'), '--user-data-dir', path.join(run, 'data'), '--install-extension', env.SKYBATCH_VSIX], { encoding: 'utf8', env: { ...process.env, HOME: path.join(run, 'home') } });
    if (r.status !== 0) throw new Error(`installing ${env.SKYBATCH_VSIX} failed:\n${r.stdout}${r.stderr}`);
  }
  const port = await freePort();
  const log = path.join(run, 'code-server.log');
  const out = fs.openSync(log, 'a');
  const proc = spawn(
    process.execPath,
    [entry, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override', '--extensions-dir', path.join(run, 'ext'), '--user-data-dir', path.join(run, 'data'), path.join(run, 'ws')],
    { detached: true, stdio: ['ignore', out, out], env: { ...process.env, HOME: path.join(run, 'home'), TMPDIR: path.join(run, 'tmp'), ...env } },
  );
  fs.closeSync(out);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not up yet
    }
    if (proc.exitCode !== null) throw new Error(`code-server exited (${proc.exitCode}); see ${log}`);
    if (Date.now() > deadline) throw new Error(`code-server did not start in 30 s; see ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    proc,
    log,
    async stop() {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    },
  };
}

/** The page URL that opens `folder` with the extension at `extDir` loaded from source, optionally running its tests. */
export function workbenchUrl(server: Server, folder: string, extDir: string | undefined, testsPath?: string): string {
  if (!extDir) return `${server.url}/?folder=${encodeURIComponent(folder)}`;
  const remote = (p: string) => `vscode-remote://127.0.0.1:${server.port}${p}`;
  const payload: [string, string][] = [['extensionDevelopmentPath', remote(extDir)]];
  if (testsPath) payload.push(['extensionTestsPath', remote(testsPath)]);
  return `${server.url}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/** Stops every coordinator (and its local workers) started under a SKYBATCH_HOME, like test/harness.ts does. */
export function killPools(home: string): number {
  const pools = path.join(home, 'pools');
  let n = 0;
  for (const name of fs.existsSync(pools) ? fs.readdirSync(pools) : []) {
    let pid: number;
    try {
      pid = (JSON.parse(fs.readFileSync(path.join(pools, name, 'coordinator.json'), 'utf8')) as { pid: number }).pid;
    } catch {
      continue;
    }
    for (const d of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) process.kill(Number(d), 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    try {
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {
      // already down
    }
  }
  return n;
}
