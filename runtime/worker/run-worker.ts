/**
 * The one way a worker agent starts, whoever parsed its arguments: `node worker/main.js`
 * (what backends launch) and `skybatch worker` (a worker started by hand) both call
 * `runWorker`. `resources` is the worker's share of its host as its backend placed it (a
 * `WorkerResources` as JSON: GPUs, pinned CPUs, memory limit).
 *
 * Started by a backend on another machine (ssh), it also gets `launch` (which start of the
 * worker this is, so the coordinator can refuse an older one) and `lifeline: 'stdin'`: the
 * first line of stdin is JSON `{"token": ..., "ca": PEM}` (secrets never appear on a
 * command line), and the worker exits when stdin closes, i.e. when the session that started
 * it ends (pool down, coordinator crash, lost connection): it never outlives its pool.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { WORKER_UP_MARKER } from '../backends/backend.js';
import { liveWorkerPid } from '../store/pool-store.js';
import { SkybatchError } from '../../formats/common/errors.js';
import { WorkerAgent } from './agent.js';

export interface WorkerArgs {
  /** The coordinator's ws:// or wss:// URL. */
  coordinator?: string;
  /** The pool token; default `$SKYBATCH_TOKEN` (or the lifeline's first line). */
  token?: string;
  /** Default `<hostname>-<pid>`. */
  name?: string;
  /** Default `~/.skybatch-worker/<name>`. */
  workdir?: string;
  /** A PEM file to trust for a wss:// coordinator; default `$SKYBATCH_CA`. */
  ca?: string;
  resources?: string;
  launch?: string;
  lifeline?: string;
  /** Where job packages shipped to this host go, shared by its workers (ssh backend: `~/.skybatch-host/packages`). */
  'packages-dir'?: string;
}

const resourcesSchema = z
  .object({
    gpus: z.array(z.object({ index: z.number().int().min(0), name: z.string() }).strict()).optional(),
    cpus: z.string().regex(/^[\d,-]+$/).optional(),
    memoryMb: z.number().int().positive().optional(),
    notes: z.array(z.string()).optional(),
  })
  .strict();
const secretsSchema = z.object({ token: z.string().min(1), ca: z.string().optional() }).strict();

function fail(message: string): never {
  throw new SkybatchError('SKYBATCH_E_BAD_OPTION', message);
}

/** Starts a worker agent and resolves when it has stopped. Bad arguments throw SKYBATCH_E_BAD_OPTION. */
export async function runWorker(values: WorkerArgs): Promise<void> {
  if (Number(process.versions.node.split('.')[0]) < 20) fail(`skybatch workers need Node 20 or newer; this is Node ${process.version} (${process.execPath})`);
  if (values.lifeline !== undefined && values.lifeline !== 'stdin') fail(`--lifeline: expected 'stdin', got '${values.lifeline}'`);
  const secrets = values.lifeline === 'stdin' ? await readSecrets() : undefined;
  const token = secrets?.token ?? values.token ?? process.env.SKYBATCH_TOKEN;
  if (!values.coordinator) fail('usage: worker --coordinator ws://HOST:PORT --token TOKEN [--name NAME] [--workdir DIR]');
  if (!token) throw new SkybatchError('SKYBATCH_E_AUTH', 'a pool token is needed: --token or $SKYBATCH_TOKEN');
  let resources: z.infer<typeof resourcesSchema> | undefined;
  try {
    resources = values.resources === undefined ? undefined : resourcesSchema.parse(JSON.parse(values.resources));
  } catch (err) {
    fail(`--resources: expected JSON like {"gpus":[{"index":0,"name":"L4"}],"cpus":"0-3","memoryMb":4096}: ${(err as Error).message}`);
  }
  const name = values.name ?? `${os.hostname()}-${process.pid}`;
  const workdir = path.resolve(values.workdir ?? path.join(os.homedir(), '.skybatch-worker', name));
  const caFile = values.ca ?? process.env.SKYBATCH_CA;
  if (values.launch) replaceEarlierLaunch(workdir, name);
  const agent = new WorkerAgent({
    url: values.coordinator,
    token,
    name,
    workdir,
    ca: secrets?.ca ? Buffer.from(secrets.ca) : caFile ? fs.readFileSync(caFile) : undefined,
    resources,
    launch: values.launch,
    ...(values['packages-dir'] ? { packagesDir: path.resolve(values['packages-dir']) } : {}),
  });
  process.on('SIGTERM', () => agent.shutdown(0));
  process.on('SIGINT', () => agent.shutdown(0));
  if (secrets) {
    process.stdin.on('end', () => {
      process.stdout.write(`[${name}] stdin closed: the session that started this worker ended; exiting\n`);
      agent.shutdown(0);
    });
  }
  agent.start();
  process.stdout.write(`${WORKER_UP_MARKER} ${JSON.stringify({ name, pid: process.pid, host: os.hostname(), node: process.version })}\n`);
  await agent.done;
}

/** The first line of stdin, as `{ token, ca }`; stdin then stays open as the lifeline. */
async function readSecrets(): Promise<z.infer<typeof secretsSchema>> {
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const i = buf.indexOf('\n');
      if (i < 0) return;
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      resolve(buf.slice(0, i));
    };
    const onEnd = () => reject(new SkybatchError('SKYBATCH_E_BAD_OPTION', '--lifeline stdin: stdin closed before the first line (the token) arrived'));
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
  });
  // Keep reading (and dropping) whatever else comes, so 'end' is seen when the session closes.
  process.stdin.on('data', () => {});
  try {
    return secretsSchema.parse(JSON.parse(line));
  } catch (err) {
    fail(`--lifeline stdin: the first line must be JSON {"token": ..., "ca": ...}: ${(err as Error).message}`);
  }
}

/**
 * A backend started this worker anew in `workdir` (the slot's folder): a copy from an earlier
 * launch that is still alive (its session died but it has not noticed yet) goes now, so one
 * slot never runs two workers. Its pid file is trusted only if that process is a worker of
 * the same folder.
 */
function replaceEarlierLaunch(dir: string, name: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const pid = liveWorkerPid(dir);
  if (pid !== undefined && pid !== process.pid) {
    try {
      process.kill(pid, 'SIGKILL');
      process.stdout.write(`[${name}] stopped pid ${pid}, an earlier start of this worker\n`);
    } catch {
      // it exited meanwhile
    }
  }
  fs.writeFileSync(path.join(dir, 'worker.pid'), String(process.pid));
}
