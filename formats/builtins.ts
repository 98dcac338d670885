import { ImageWriter } from './image-writer.js';
import { JsonReader } from './json-reader.js';
import { JsonWriter } from './json-writer.js';
import type { OutputWriter } from './output-writer.js';
import { INPUT_READER_REGISTRY, OUTPUT_WRITER_REGISTRY } from './registries.js';

/**
 * skybatch's own writer classes by type name: registered below, marked `builtin` by the
 * client, built by the coordinator itself for an in-process reduce (from this table, never
 * from a registry a job's bundle may have touched).
 */
export const BUILTIN_WRITERS: Readonly<Record<string, new (path: string, options: never) => OutputWriter<object>>> = { json: JsonWriter, image: ImageWriter };

/** skybatch's own reader and writer classes. */
export const BUILTIN_FORMATS: ReadonlySet<unknown> = new Set<unknown>([JsonReader, ...Object.values(BUILTIN_WRITERS)]);

/** Whether `w` is an instance of a built-in writer class itself (a user's subclass is not). */
export function isBuiltinWriter(w: object): boolean {
  return Object.values(BUILTIN_WRITERS).includes(w.constructor as never);
}

INPUT_READER_REGISTRY.register('json', JsonReader);
for (const [type, cls] of Object.entries(BUILTIN_WRITERS)) OUTPUT_WRITER_REGISTRY.register(type, cls as never);
