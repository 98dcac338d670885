/**
 * skybatch: map a function over a large dataset on a pool of reused workers.
 *
 * ```ts
 * import * as sky from 'skybatch';
 * const ds = new sky.Dataset(new sky.JsonReader('data.jsonl'));
 * const double = sky.remoteFunction(async function double() {
 *   for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ output: String(x.text).repeat(2) })));
 * });
 * await ds.map(double, { poolName: 'my-pool', batchSize: 2, output: new sky.JsonWriter('output.jsonl') });
 * ```
 */
import { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from './formats/registries.js';
import './formats/builtins.js';

export {
  SkybatchError,
  type ErrorCode,
  type WireError,
  InputReader,
  OutputWriter,
  Registry,
  type Item,
  JsonReader,
  JsonWriter,
  ImageWriter,
  type JsonWriterOptions,
  type ImageWriterOptions,
  type RgbaImage,
  utils,
  storageFor,
  type Storage,
  INPUT_READER_REGISTRY,
  OUTPUT_WRITER_REGISTRY,
} from './formats/index.js';
export { remoteFunction, load, saveResults, failItem, type RemoteFunction, type FailedItem } from './runtime/mapper-api.js';
export { Dataset, Job, JobFailedError, type MapOptions } from './runtime/client/dataset.js';
export { waitForJob, type WaitOptions } from './runtime/client/wait-for-job.js';
export { pythonFunction, type PythonFunction, type PythonFunctionOptions } from './runtime/python-mapper.js';
export { CoordinatorClient } from './runtime/client/connection.js';
export type { JobEvent, JobStatus, JobSummary, PoolSummary, WorkerSummary } from './runtime/protocol.js';

/** The same API under the reference's `sky.batch.*` names: `sky.batch.Dataset`, `sky.batch.load`, ... */
export * as batch from './runtime/sky-batch.js';

/** `sky.registry.INPUT_READER_REGISTRY` / `OUTPUT_WRITER_REGISTRY`, as in the reference. */
export const registry = { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY };
