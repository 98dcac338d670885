/**
 * `node worker/main.js --coordinator URL --name NAME --workdir DIR [--resources JSON]
 * [--launch ID --lifeline stdin]`, with the pool token in `SKYBATCH_TOKEN` (or `--token`):
 * the process backends launch (their pid files and `pool down` know it by this path). It
 * only parses arguments; `runWorker` (run-worker.ts) is the worker, as for `skybatch worker`.
 */
import { parseArgs } from 'node:util';
import { SkybatchError } from '../../formats/common/errors.js';
import { runWorker } from './run-worker.js';

const { values } = parseArgs({
  options: {
    coordinator: { type: 'string' },
    token: { type: 'string' },
    name: { type: 'string' },
    workdir: { type: 'string' },
    resources: { type: 'string' },
    launch: { type: 'string' },
    lifeline: { type: 'string' },
    'packages-dir': { type: 'string' },
  },
});
try {
  await runWorker(values);
} catch (err) {
  if (!(err instanceof SkybatchError)) throw err;
  // 64: a usage error (sysexits EX_USAGE)
  process.stderr.write(`${err.message}\n`);
  process.exit(64);
}
