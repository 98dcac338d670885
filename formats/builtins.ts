import { ImageWriter } from './image-writer.js';
import { JsonReader } from './json-reader.js';
import { JsonWriter } from './json-writer.js';
import { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from './registries.js';

INPUT_READER_REGISTRY.register('json', JsonReader);
OUTPUT_WRITER_REGISTRY.register('json', JsonWriter);
OUTPUT_WRITER_REGISTRY.register('image', ImageWriter);
