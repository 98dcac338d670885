/**
 * `node worker/main.js --coordinator URL --name NAME --workdir DIR [--resources JSON]` with
 * the pool token in `SKYBATCH_TOKEN` (or `--token`): one worker agent. `skybatch worker`
 * runs the same. `--resources` is the worker's share of its host as its backend placed it
 * (a `WorkerResources`: GPUs, pinned CPUs, memory limit).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { WorkerAgent } from './agent.js';

const { values } = parseArgs({
  options: { coordinator: { type: 'string' }, token: { type: 'string' }, name: { type: 'string' }, workdir: { type: 'string' }, resources: { type: 'string' } },
});
const resourcesSchema = z
  .object({
    gpus: z.array(z.object({ index: z.number().int().min(0), name: z.string() }).strict()).optional(),
    cpus: z.string().regex(/^[\d,-]+$/).optional(),
    memoryMb: z.number().int().positive().optional(),
    notes: z.array(z.string()).optional(),
  })
  .strict();
const token = values.token ?? process.env.SKYBATCH_TOKEN;
if (!values.coordinator || !token) {
  process.stderr.write('usage: worker --coordinator ws://HOST:PORT --token TOKEN [--name NAME] [--workdir DIR]\n');
  process.exit(64);
}
let resources: z.infer<typeof resourcesSchema> | undefined;
try {
  resources = values.resources === undefined ? undefined : resourcesSchema.parse(JSON.parse(values.resources));
} catch (err) {
  process.stderr.write(`--resources: expected JSON like {"gpus":[{"index":0,"name":"L4"}],"cpus":"0-3","memoryMb":4096}: ${(err as Error).message}\n`);
  process.exit(64);
}
const name = values.name ?? `${os.hostname()}-${process.pid}`;
const caFile = process.env.SKYBATCH_CA;
const agent = new WorkerAgent({
  url: values.coordinator,
  token,
  name,
  workdir: path.resolve(values.workdir ?? path.join(os.homedir(), '.skybatch-worker', name)),
  ca: caFile ? fs.readFileSync(caFile) : undefined,
  resources,
});
process.on('SIGTERM', () => agent.shutdown(0));
process.on('SIGINT', () => agent.shutdown(0));
agent.start();
