import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkybatchError, type WireError } from '../../formats/common/errors.js';
import type { InputReader } from '../../formats/input-reader.js';
import { INPUT_READER_REGISTRY } from '../../formats/registries.js';
import { mapperInfo } from '../mapper-api.js';
import { isPythonFunction, pythonMapperInfo } from '../python-mapper.js';
import type { JobSpec } from '../protocol.js';
import { eachMessage } from '../worker/ipc-batch.js';
import type { AgentToMapper, MapperToAgent } from '../worker/mapper-ipc.js';
import { bundleScript } from './bundle.js';
import { spec } from './dataset.js';
import { assertPackagesFound } from './package-check.js';

const MAPPER_PROCESS = fileURLToPath(new URL('../worker/mapper-process.js', import.meta.url));

export interface DryRunOptions {
  /** The script that creates the mapper (the notebook's generated script). */
  script: string;
  batchSize: number;
  /** At most this many items (default 5): one small batch. */
  limit?: number;
  external?: string[];
  /** Each line the mapper process prints (its console output). */
  onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** How long the mapper may take for its one batch (default 5 min). */
  timeoutMs?: number;
}

export interface DryRunResult {
  total: number;
  start: number;
  end: number;
  /** Every result of the batch, made JSON-safe and bounded (runtime/worker/preview.ts). */
  results: unknown[];
  ms: number;
}

/**
 * Runs a job's mapper on its first small batch on this machine, with no pool: the script
 * is bundled as for a submission (so what cannot be packed fails here), and the bundle's
 * mapper runs in a mapper process of its own, the one workers use, with `dryRun` set so
 * nothing is written and every result comes back. Resolves with the results; rejects with
 * the mapper's error (its stack names the script through the bundle's source map).
 */
export async function dryRunMapper(reader: InputReader<object>, mapper: unknown, o: DryRunOptions): Promise<DryRunResult> {
  const t0 = Date.now();
  // A Python mapper is not in the script (of it the bundle holds only the reader's format): the
  // mapper process hosts it through the Python bridge, as on a worker.
  const py = isPythonFunction(mapper) ? pythonMapperInfo(mapper) : undefined;
  const ts = py ? undefined : mapperInfo(mapper);
  const readerType = INPUT_READER_REGISTRY.nameOf(reader);
  const bundle = await bundleScript({
    entry: o.script,
    ...(ts ? { mapper: { name: ts.id.replace(/#\d+$/, ''), site: ts.site, ordinal: ts.ordinal } } : {}),
    formats: [{ kind: 'reader', type: readerType, builtin: false }],
    external: o.external,
  });
  assertPackagesFound(bundle, o.script, o.external);
  const total = await reader.length();
  if (!Number.isInteger(total) || total <= 0) {
    throw new SkybatchError('SKYBATCH_E_EMPTY_INPUT', `the input ${reader.path || reader.constructor.name} has no items: nothing to try the mapper on`, { context: { path: reader.path } });
  }
  const end = Math.min(total, o.batchSize, o.limit ?? 5) - 1;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-dry-run-'));
  try {
    const bundlePath = path.join(dir, 'bundle.mjs');
    fs.writeFileSync(bundlePath, bundle.code);
    // A job's cache folder is <workdir>/.skybatch-cache/<jobId> on a worker; the Python bridge keeps
    // the mapper's file two levels up, which must be this temp dir too.
    fs.mkdirSync(path.join(dir, 'cache', '0'), { recursive: true });
    const jobSpec: JobSpec = {
      jobId: '0',
      pool: 'dry-run',
      createdAt: new Date().toISOString(),
      bundleHash: bundle.hash,
      mapperId: (py ?? ts!).id,
      scriptPath: o.script,
      reader: { ...spec(reader, readerType), state: reader.exportJobState() },
      // Never made: a dry run writes nothing (the mapper process leaves writers out).
      writers: [{ type: 'json', path: path.join(dir, 'unused.jsonl'), options: {} }],
      batchSize: o.batchSize,
      total,
      env: {},
      argv: process.argv,
      cwd: process.cwd(),
      ...(py ? { python: py.python } : {}),
    };
    const sample = await runOneBatch(jobSpec, bundlePath, dir, end, o);
    return { total, start: 0, end, results: sample, ms: Date.now() - t0 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runOneBatch(jobSpec: JobSpec, bundlePath: string, dir: string, end: number, o: DryRunOptions): Promise<unknown[]> {
  // The worker's folder is the temp dir: packages resolve from the script's project first, as on a worker.
  const proc = spawn(process.execPath, ['--enable-source-maps', MAPPER_PROCESS], {
    cwd: dir,
    env: { ...process.env, SKYBATCH_JOB_ID: '0', SKYBATCH_WORKER: 'dry-run' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const stderr: string[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    let rest = '';
    proc[stream]!.setEncoding('utf8');
    proc[stream]!.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const l of lines) {
        if (stream === 'stderr') stderr.push(l);
        o.onOutput?.(l, stream);
      }
    });
    proc[stream]!.on('end', () => rest && o.onOutput?.(rest, stream));
  }
  const send = (m: AgentToMapper) => proc.send(m);
  return new Promise<unknown[]>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => fail({ code: 'SKYBATCH_E_BATCH_TIMEOUT', message: `the mapper did not finish its dry-run batch [0, ${end}] in ${(o.timeoutMs ?? 300_000) / 1000} s`, retryable: false }), o.timeoutMs ?? 300_000);
    const done = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Let load() finish, so the mapper returns and its process exits on its own; kill it if it does not.
      if (proc.connected) send({ type: 'end' });
      const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(kill);
        f();
      });
      if (proc.exitCode !== null || proc.signalCode !== null) {
        clearTimeout(kill);
        f();
      }
    };
    const fail = (e: WireError) => done(() => reject(fromWire(e)));
    // The mapper process batches its messages (one IPC write per tick): a frame may hold several.
    proc.on('message', (raw) =>
      eachMessage(raw, (msg) => {
        const m = msg as MapperToAgent;
        if (m.type === 'batchDone') done(() => resolve(m.sample ?? []));
        else if (m.type === 'batchFailed' || m.type === 'fatal') fail(m.error);
      }),
    );
    proc.on('error', (err) => fail({ code: 'SKYBATCH_E_WORKER_LOST', message: `the mapper process could not start: ${err.message}`, retryable: false }));
    proc.on('exit', (code, signal) => {
      if (!settled) fail({ code: 'SKYBATCH_E_WORKER_LOST', message: `the mapper process exited (${signal ?? `code ${code}`}) before it finished the batch${stderr.length ? `:\n${stderr.slice(-10).join('\n')}` : ''}`, retryable: false });
    });
    send({ type: 'start', spec: jobSpec, bundlePath, cacheDir: path.join(dir, 'cache', '0'), dryRun: true });
    send({ type: 'batches', batches: [{ index: 0, start: 0, end, attempt: 1, wantSample: true }] });
  });
}

function fromWire(e: WireError): SkybatchError {
  const err = new SkybatchError((e.code ?? 'SKYBATCH_E_MAPPER') as SkybatchError['code'], e.message, { context: e.context });
  if (e.stack) err.stack = e.stack;
  return err;
}
