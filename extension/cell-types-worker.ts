// The typed-cells worker thread (out/extension/cell-types-worker.cjs): TypeScript builds a
// program of the notebook's script and the engine's declarations in seconds, which must not
// stall the extension host (every other extension's requests, the job outputs). Answers
// questions of cell-intellisense.ts, one at a time, in order.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import type * as TS from 'typescript';
import { CellTypesService, type CellTypesRequest } from './core/cell-types-service.js';

const { typescript, engineRoot } = workerData as { typescript: string; engineRoot: string };
const service = new CellTypesService(createRequire(__filename)(typescript) as typeof TS, engineRoot);

parentPort!.on('message', (r: CellTypesRequest) => {
  try {
    parentPort!.postMessage({ id: r.id, answer: service.answer(r) });
  } catch (err) {
    parentPort!.postMessage({ id: r.id, error: String((err as Error).stack ?? err) });
  }
});
