import type { PoolConfig, SshHost } from '../pool-config.js';
import type { WorkerResources } from '../protocol.js';
import { UNPACK_SCRIPT } from './runtime-pack.js';

/** The launch found no runtime of this hash on the host: ship it, then launch again. */
export const EXIT_NO_RUNTIME = 75;
/** The host's Node is older than 20 (from the unpack script). */
export const EXIT_OLD_NODE = 76;
/** A shell's "command not found": the host has no `node` (or not the one hosts[].node names). */
export const EXIT_NOT_FOUND = 127;
/** ssh's own failure (cannot connect, authentication, host key) -- and a remote process killed by SIGKILL. */
export const EXIT_SSH = 255;

/**
 * Defaults for a session that carries a worker: never prompt (a coordinator has no
 * terminal), give up on a dead connection in about 15 s so the worker's batches are run
 * elsewhere and the host is retried. A user's `ssh.options` come first on the command line,
 * and ssh takes the first value it gets for each option, so they win.
 */
const DEFAULT_OPTIONS: Record<string, string> = {
  BatchMode: 'yes',
  ConnectTimeout: '10',
  ServerAliveInterval: '5',
  ServerAliveCountMax: '3',
};

/** The default folder of skybatch on a host: its runtime (by hash) and its workers' folders. */
export const DEFAULT_HOST_DIR = '~/.skybatch-host';

/** `ssh ...` arguments that run `remote` (a POSIX shell command) on host `h`. */
export function sshArgs(h: SshHost, ssh: PoolConfig['ssh'], remote: string): string[] {
  const args = ['-T'];
  if (ssh?.config) args.push('-F', ssh.config);
  for (const [k, v] of Object.entries(ssh?.options ?? {})) args.push('-o', `${k}=${v}`);
  if (ssh?.known_hosts) args.push('-o', `UserKnownHostsFile=${ssh.known_hosts}`);
  if (h.identity_file) args.push('-i', h.identity_file, '-o', 'IdentitiesOnly=yes');
  for (const [k, v] of Object.entries(DEFAULT_OPTIONS)) args.push('-o', `${k}=${v}`);
  if (h.port) args.push('-p', String(h.port));
  if (h.user) args.push('-l', h.user);
  args.push('--', h.address, remote);
  return args;
}

/** Single-quotes a string for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A folder of the pool file as a shell word: `~/x` becomes "$HOME"/'x'. */
function dirWord(dir = DEFAULT_HOST_DIR): string {
  if (dir === '~') return '"$HOME"';
  if (dir.startsWith('~/')) return `"$HOME"/${shq(dir.slice(2))}`;
  return shq(dir);
}

/**
 * Copies a pack (on stdin) into the host's runtime folder, or its packages folder (job
 * packages: one already there is left as it is).
 */
export function shipCommand(h: SshHost, hash: string, into: 'runtime' | 'packages' = 'runtime'): string {
  const there = into === 'packages' ? `[ -f "$D/${into}/${hash}/.complete" ] && exit 0; ` : '';
  return `D=${dirWord(h.dir)}; ${there}mkdir -p "$D/${into}" && exec ${shq(h.node ?? 'node')} -e ${shq(UNPACK_SCRIPT)} "$D/${into}" ${hash} ${UNUSED_DAYS_KEPT}`;
}

/**
 * A runtime or packages folder on a host that no one used for this many days, and no live
 * process names, is removed when a new pack is unpacked beside it (UNPACK_SCRIPT): each
 * upgrade of skybatch, and each change to a project's packages, brings one.
 */
export const UNUSED_DAYS_KEPT = 14;

export interface LaunchSpec {
  host: SshHost;
  /** The runtime's hash: the worker runs from its folder on the host, nothing else. */
  hash: string;
  pool: string;
  name: string;
  url: string;
  launch: string;
  resources: WorkerResources;
}

/**
 * Starts one worker on the host from the shipped runtime, in its own folder, tied to the
 * ssh session by its stdin (the secrets line, then the lifeline). Exits 75 when the runtime
 * is not there yet. CPU pinning uses the host's taskset when it has one.
 */
export function launchCommand(s: LaunchSpec): string {
  const node = shq(s.host.node ?? 'node');
  const run = (r: WorkerResources) =>
    [node, '--enable-source-maps', '"$R/out/runtime/worker/main.js"', '--coordinator', shq(s.url), '--name', shq(s.name), '--workdir', '"$W"', '--resources', shq(JSON.stringify(r)), '--launch', shq(s.launch), '--packages-dir', '"$D/packages"', '--lifeline', 'stdin'].join(' ');
  const lines = [
    `D=${dirWord(s.host.dir)}; R="$D/runtime/${s.hash}"; W="$D/pools/"${shq(s.pool)}/${shq(s.name)}`,
    `[ -f "$R/.complete" ] || { echo "skybatch runtime ${s.hash.slice(0, 12)} is not on this host yet" >&2; exit ${EXIT_NO_RUNTIME}; }`,
    'touch "$R/.complete" 2>/dev/null', // in use: not among the old folders an unpack removes
    'mkdir -p "$W" && cd "$W" || exit 1',
  ];
  if (s.resources.cpus) {
    const unpinned: WorkerResources = { ...s.resources, notes: [...(s.resources.notes ?? []), 'not pinned to CPUs: taskset is not installed on this host'] };
    delete unpinned.cpus;
    lines.push(`if command -v taskset >/dev/null 2>&1; then exec taskset -c ${s.resources.cpus} ${run(s.resources)}; fi`);
    lines.push(`exec ${run(unpinned)}`);
  } else {
    lines.push(`exec ${run(s.resources)}`);
  }
  return lines.join('\n');
}
