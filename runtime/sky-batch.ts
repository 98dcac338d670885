/**
 * `sky.batch`: the reference's spelling of the API (`sky.batch.Dataset`, `sky.batch.load`,
 * `sky.batch.saveResults`, `sky.batch.JsonWriter`, `sky.batch.utils`, ...), so code ported
 * from it reads the same. Every name is also exported at the top level (`sky.Dataset`);
 * both are the same objects, on the client and inside a worker's bundle.
 */
import { ImageWriter, INPUT_READER_REGISTRY, InputReader, JsonReader, JsonWriter, OUTPUT_WRITER_REGISTRY, OutputWriter } from '../formats/index.js';

export {
  SkybatchError,
  InputReader,
  OutputWriter,
  JsonReader,
  JsonWriter,
  ImageWriter,
  utils,
  type Item,
  type JsonWriterOptions,
  type ImageWriterOptions,
} from '../formats/index.js';
export { remoteFunction, load, saveResults, failItem, type RemoteFunction, type FailedItem } from './mapper-api.js';
export { Dataset, Job, JobFailedError, type MapOptions } from './client/dataset.js';
export { pythonFunction, type PythonFunction, type PythonFunctionOptions } from './python-mapper.js';

/** `INPUT_READER_REGISTRY` / `OUTPUT_WRITER_REGISTRY`, the reference's `registry` module. */
export const registry = { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY };

/** The reference's `sky.batch.io_formats`: the base classes and the built-in formats. */
export const ioFormats = { InputReader, OutputWriter, JsonReader, JsonWriter, ImageWriter };
