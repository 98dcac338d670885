import './builtins.js';

export * from './common/errors.js';
export { InputReader, type Item } from './input-reader.js';
export { OutputWriter } from './output-writer.js';
export { Registry } from './registry.js';
export { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from './registries.js';
export { JsonReader, buildIndex, type JsonlIndex } from './json-reader.js';
export { JsonWriter, type JsonWriterOptions } from './json-writer.js';
export { ImageWriter, type ImageWriterOptions, type RgbaImage } from './image-writer.js';
export * as utils from './utils.js';
export * from './common/paths.js';
export * from './storage/index.js';
export { storageFor } from './storage-for.js';
