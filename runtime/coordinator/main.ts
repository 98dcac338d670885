/**
 * `node coordinator/main.js --pool NAME [--host H] [--port P]`: the long-running
 * coordinator of one pool, started detached by `skybatch pool apply`. Reads the applied
 * config from the pool folder, serves workers and clients, and starts the pool's workers
 * through its backend (local processes, or ssh sessions to other machines).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { buildId } from '../build-id.js';
import type { PoolConfig } from '../pool-config.js';
import { CoordinatorInfo, isCoordinatorOf, poolDir, writePrivate } from '../store/pool-store.js';
import { coordinatorTls, listenAddress, makeBackend } from '../backends/make-backend.js';
import { PoolSizer } from '../backends/pool-sizer.js';
import { sizePool } from '../backends/pool-size.js';
import { Coordinator } from './coordinator.js';
import { JobPackages } from './job-packages.js';
import { dropCoordinatorEnv } from './node-flags.js';
import { CoordinatorServer } from './server.js';

dropCoordinatorEnv();

const { values } = parseArgs({ options: { pool: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } } });
const pool = values.pool!;
const dir = poolDir(pool);
// Straight to coordinator.log (stdout): a line that cannot be written (a full disk) is lost, not the pool, and the next one is tried again.
const log = (line: string) => {
  try {
    fs.writeSync(1, `${new Date().toISOString()} ${line}\n`);
  } catch {
    // lost; everything that matters is in the jobs' journals
  }
};

const readConfig = () => JSON.parse(fs.readFileSync(path.join(dir, 'pool.json'), 'utf8')) as PoolConfig;
const config = readConfig();
const tokenFile = path.join(dir, 'token');
if (!fs.existsSync(tokenFile)) writePrivate(tokenFile, randomBytes(32).toString('hex'));
const token = fs.readFileSync(tokenFile, 'utf8').trim();

// Reuse the previous port when free, so workers left running by a crashed coordinator reconnect.
let previousPort = 0;
try {
  const previous = JSON.parse(fs.readFileSync(path.join(dir, 'coordinator.json'), 'utf8')) as CoordinatorInfo;
  // `pool apply` starts coordinators under the pool lock; this guards against any other way of starting a second one.
  if (previous.pid !== process.pid && isCoordinatorOf(previous.pid, pool)) {
    log(`pool ${pool} already has a coordinator (pid ${previous.pid}, ${previous.url}); exiting`);
    process.exit(3);
  }
  previousPort = Number(new URL(previous.url).port);
} catch {
  // first start
}

let server: CoordinatorServer;
const coordinator = new Coordinator(pool, config, () => server.url(), process.pid, log);
// Off loopback (other machines' workers dial in), it serves wss:// with the pool's certificate.
let listening: Awaited<ReturnType<typeof listenAddress>>;
let tlsFiles: ReturnType<typeof coordinatorTls>;
try {
  listening = await listenAddress(config, values.host);
  tlsFiles = coordinatorTls(config, listening, dir, pool);
} catch (err) {
  log(`cannot start: ${(err as Error).message}`);
  process.exit(1);
}
const scheme = tlsFiles ? 'wss' : 'ws';
const backend = makeBackend({
  pool,
  poolDir: dir,
  config: () => coordinator.config,
  token,
  log,
  localUrl: () => server.url(),
  hostUrl: (h) => {
    const a = listening.dial(h);
    return `${scheme}://${a.includes(':') ? `[${a}]` : a}:${new URL(server.url()).port}`;
  },
  tls: tlsFiles,
});
coordinator.backendView = () => ({ kind: backend.kind, workers: backend.workers() });
if (backend.shipPackages) coordinator.packages = new JobPackages({ shipPackages: backend.shipPackages.bind(backend) }, () => coordinator.config.pool.shared_fs, log, () => coordinator.pumpSoon());
const sizer = new PoolSizer(backend, coordinator, log);
const size = sizePool(sizer, coordinator, log);
let stopping = false;

/** `poolDown`: from `skybatch pool down`, whose running jobs end CANCELLED; a signal leaves them to resume on the next start. */
async function shutdown(poolDown = false): Promise<void> {
  if (stopping) return;
  stopping = true;
  log(poolDown ? 'shutting down (pool down)' : 'shutting down');
  if (poolDown) await coordinator.cancelForPoolDown();
  coordinator.close();
  size.close();
  sizer.close();
  await backend.teardown();
  await server.close();
  fs.rmSync(path.join(dir, 'coordinator.json'), { force: true });
  process.exit(0);
}

const options = {
  host: listening.bind,
  tls: tlsFiles ? { cert: fs.readFileSync(tlsFiles.cert), key: fs.readFileSync(tlsFiles.key) } : undefined,
  token,
  log,
  admitWorker: (hello: { name: string; launch?: string }) => backend.admit?.(hello.name, hello.launch),
  onScale: (n: number) => {
    // `pool apply` on a running pool wrote the new config first; a changed setup runs again on every worker
    const next = readConfig();
    coordinator.reconfigure({ ...next, pool: { ...next.pool, workers: n } });
    size.apply(coordinator.config);
  },
  onShutdown: () => void shutdown(true),
};
server = new CoordinatorServer(coordinator, { ...options, port: Number(values.port ?? config.coordinator?.port ?? previousPort) });
let url: string;
try {
  url = await server.listen();
} catch {
  server = new CoordinatorServer(coordinator, { ...options, port: 0 });
  url = await server.listen();
}
const info: CoordinatorInfo = { pool, url, pid: process.pid, startedAt: new Date().toISOString(), build: buildId(), ca: tlsFiles?.cert };
writePrivate(path.join(dir, 'coordinator.json'), JSON.stringify(info, null, 1));
log(`coordinator of pool ${pool} listening on ${url}${tlsFiles && !config.coordinator?.tls ? ` (the pool's own certificate: ${tlsFiles.cert})` : ''}`);
size.apply(config);

process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
