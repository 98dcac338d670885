/**
 * `node worker/main.js --coordinator URL --name NAME --workdir DIR` with the pool token
 * in `SKYBATCH_TOKEN` (or `--token`): one worker agent. `skybatch worker` runs the same.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { WorkerAgent } from './agent.js';

const { values } = parseArgs({
  options: { coordinator: { type: 'string' }, token: { type: 'string' }, name: { type: 'string' }, workdir: { type: 'string' } },
});
const token = values.token ?? process.env.SKYBATCH_TOKEN;
if (!values.coordinator || !token) {
  process.stderr.write('usage: worker --coordinator ws://HOST:PORT --token TOKEN [--name NAME] [--workdir DIR]\n');
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
});
process.on('SIGTERM', () => agent.shutdown(0));
process.on('SIGINT', () => agent.shutdown(0));
agent.start();
