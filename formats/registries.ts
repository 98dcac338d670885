import { InputReader } from './input-reader.js';
import { OutputWriter } from './output-writer.js';
import { Registry } from './registry.js';

export const INPUT_READER_REGISTRY = new Registry<InputReader<object>>('input reader');
export const OUTPUT_WRITER_REGISTRY = new Registry<OutputWriter<object>>('output writer');
