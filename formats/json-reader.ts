import { isUtf8 } from 'node:buffer';
import { SkybatchError } from './common/errors.js';
import { InputReader, Item } from './input-reader.js';
import { storageFor } from './storage-for.js';

/** A sparse line index: the byte offset and 1-based line number of every `stride`-th row. */
export interface JsonlIndex {
  rows: number;
  size: number;
  stride: number;
  offsets: number[];
  lines: number[];
}

/**
 * The index keeps 4,096 to 8,191 entries (the stride doubles past that). It travels in the
 * job spec through the coordinator, the agents and the mapper processes, each of which
 * checks and copies it: at 131,072 entries (1M rows) that was 1.9 MB of JSON and about
 * 0.1 s of coordinator and agent CPU per job. A batch reads from the entry at or before its
 * first row, so a coarser index only means skipping up to `stride - 1` rows (decoded, not
 * parsed) per batch.
 */
export const MAX_INDEX_ENTRIES = 1 << 12;

/**
 * JSONL input, one object per line (empty and whitespace-only lines are skipped, and so is
 * a UTF-8 byte order mark at the start). `length()` scans the file once per job, on the
 * client, and builds a sparse offset index that travels to the workers; each worker then
 * reads only the byte range of its batch.
 */
export class JsonReader extends InputReader<Record<string, never>> {
  private index?: JsonlIndex;

  async length(): Promise<number> {
    this.index ??= await buildIndex(this.path);
    return this.index.rows;
  }

  /**
   * The line index, with only every k-th entry kept when batches are k strides or more long:
   * a batch reads from the entry at or before its first row, so it still skips fewer rows
   * than a batch holds. The index of a 1M-row file (about 7,800 entries, 125 KB of JSON that
   * the coordinator, both agents and both mapper processes parse and copy before the first
   * batch runs) is about 100 entries for batches of 10,000.
   */
  override exportJobState(batchSize?: number): JsonlIndex | undefined {
    const index = this.index;
    if (!index || !batchSize || batchSize < 2 * index.stride) return index;
    const k = Math.floor(batchSize / index.stride);
    const every = <T>(a: T[]) => a.filter((_, i) => i % k === 0);
    return { ...index, stride: index.stride * k, offsets: every(index.offsets), lines: every(index.lines) };
  }

  override importJobState(state: unknown): void {
    if (state) this.index = state as JsonlIndex;
  }

  async downloadBatch(startIdx: number, endIdx: number): Promise<Item[]> {
    const index = (this.index ??= await buildIndex(this.path));
    if (startIdx < 0 || endIdx >= index.rows || endIdx < startIdx) {
      throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${this.path}: batch [${startIdx}, ${endIdx}] is outside rows 0..${index.rows - 1}`);
    }
    const first = Math.floor(startIdx / index.stride);
    const last = Math.floor(endIdx / index.stride) + 1;
    const from = index.offsets[first];
    const to = last < index.offsets.length ? index.offsets[last] : index.size;
    const buf = await (await storageFor(this.path)).getRange(this.path, from, to);
    return parseRows(buf, this.path, first * index.stride, index.lines[first], startIdx, endIdx);
  }
}

/**
 * Parses the rows `startIdx..endIdx` out of `buf`, which starts at row `row0` on line `line0`.
 * The range is checked and decoded once and split as a string: per-line `isUtf8` and
 * `toString` calls were most of a worker's time on short rows. A range that is not valid
 * UTF-8 is parsed line by line, so the error names the line.
 *
 * The batch's lines, when none is blank, are parsed as one JSON array (newlines made commas:
 * JSON has no raw newline inside a value): a third less CPU than a `JSON.parse` per line.
 * Anything that makes that parse fail or come out other than one object per line (a
 * malformed line, two values on one line, a line that is not an object) is parsed again line
 * by line, whose error names the line.
 */
function parseRows(buf: Buffer, path: string, row0: number, line0: number, startIdx: number, endIdx: number): Item[] {
  if (!isUtf8(buf)) return parseRowsByLine(buf, path, row0, line0, startIdx, endIdx);
  const text = buf.toString('utf8');
  let row = row0;
  let line = line0;
  let pos = 0;
  // the rows before startIdx (the index entry is at or before it): skipped, not parsed
  while (pos < text.length && row < startIdx) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    if (textHasContent(text, pos, nl)) row++;
    pos = nl + 1;
    line++;
  }
  const from = pos;
  let blank = false;
  while (pos < text.length && row <= endIdx) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    if (textHasContent(text, pos, nl)) row++;
    else blank = true;
    pos = nl + 1;
  }
  const count = endIdx - startIdx + 1;
  if (!blank && row === endIdx + 1) {
    const rows = parseAsArray(text.slice(from, pos - 1), count);
    if (rows) return rows;
  }
  return parseLines(text, from, path, line, startIdx, endIdx);
}

/**
 * `lines`, `count` lines of one JSON object each, as one array; undefined if that is not what
 * they hold. With the newlines made commas, the array's elements (objects) are separated by
 * commas between a `}` and a `{`. When no line holds such a comma itself, every one is a
 * newline, and `count` elements means each line is exactly one object. Otherwise (a line of
 * two objects glued, a `},{` inside a string) the lines are parsed one by one.
 */
function parseAsArray(lines: string, count: number): Item[] | undefined {
  if (GLUED.test(lines)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(`[${lines.replaceAll('\n', ',')}]`);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== count) return undefined;
  for (const v of value) if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  return value as Item[];
}

const GLUED = /\}[ \t\r]*,[ \t\r]*\{/;

/** Parses rows `startIdx..endIdx` of `text`, a `JSON.parse` per line; `from` is where row `startIdx` starts, on line `line`. */
function parseLines(text: string, from: number, path: string, line: number, startIdx: number, endIdx: number): Item[] {
  const out: Item[] = [];
  let row = startIdx;
  let pos = from;
  while (pos < text.length && row <= endIdx) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    if (textHasContent(text, pos, nl)) {
      out.push(parseText(text.slice(pos, nl), path, line));
      row++;
    }
    pos = nl + 1;
    line++;
  }
  return checkCount(out, path, startIdx, endIdx);
}

function parseRowsByLine(buf: Buffer, path: string, row0: number, line0: number, startIdx: number, endIdx: number): Item[] {
  const out: Item[] = [];
  let row = row0;
  let line = line0;
  let pos = 0;
  while (pos < buf.length && row <= endIdx) {
    let nl = buf.indexOf(0x0a, pos);
    if (nl < 0) nl = buf.length;
    if (hasContent(buf, pos, nl)) {
      if (row >= startIdx) out.push(parseLine(buf.subarray(pos, nl), path, line));
      row++;
    }
    pos = nl + 1;
    line++;
  }
  return checkCount(out, path, startIdx, endIdx);
}

function checkCount(out: Item[], path: string, startIdx: number, endIdx: number): Item[] {
  if (out.length !== endIdx - startIdx + 1) {
    throw new SkybatchError('SKYBATCH_E_STORAGE', `${path} changed since the job started: expected rows ${startIdx}..${endIdx}, found ${out.length}`, {
      context: { path, batch: [startIdx, endIdx] },
    });
  }
  return out;
}

function parseLine(bytes: Buffer, path: string, line: number): Item {
  if (!isUtf8(bytes)) throw new SkybatchError('SKYBATCH_E_MALFORMED_JSONL', `${path} line ${line}: not valid UTF-8`, { context: { path, line } });
  return parseText(bytes.toString('utf8'), path, line);
}

function parseText(text: string, path: string, line: number): Item {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SkybatchError('SKYBATCH_E_MALFORMED_JSONL', `${path} line ${line}: ${(err as Error).message}`, { context: { path, line }, cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new SkybatchError('SKYBATCH_E_MALFORMED_JSONL', `${path} line ${line}: expected a JSON object, got ${got}`, { context: { path, line } });
  }
  return value as Item;
}

/** `hasContent` over decoded text: a non-ASCII character is content, as its bytes are. */
function textHasContent(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isBlank(text.charCodeAt(i))) return true;
  return false;
}

/** JSON's own whitespace: a line of nothing else is skipped like an empty one. */
const isBlank = (byte: number) => byte === 0x20 || byte === 0x09 || byte === 0x0d;

/** Whether `buf[from, to)` holds anything but whitespace. Stops at the first such byte: usually the first. */
function hasContent(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isBlank(buf[i])) return true;
  return false;
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * One streaming pass over the file: counts the lines that hold more than whitespace and
 * records a bounded offset index. A UTF-8 byte order mark at the start is not part of the
 * first line (the index starts after it), so workers' ranged reads never see it.
 * `parseRows` must count rows by the same rule (`hasContent`), or items shift.
 */
export async function buildIndex(path: string): Promise<JsonlIndex> {
  const storage = await storageFor(path);
  let stride = 1;
  let offsets: number[] = [];
  let lines: number[] = [];
  let rows = 0;
  let line = 1;
  let pos = 0; // absolute offset of the next byte
  let lineStart = 0;
  let lineHasBytes = false;
  const endLine = () => {
    if (lineHasBytes) {
      if (rows % stride === 0) {
        offsets.push(lineStart);
        lines.push(line);
        if (offsets.length >= 2 * MAX_INDEX_ENTRIES) {
          stride *= 2;
          offsets = offsets.filter((_, i) => i % 2 === 0);
          lines = lines.filter((_, i) => i % 2 === 0);
        }
      }
      rows++;
    }
    line++;
    lineHasBytes = false;
  };
  const scan = (buf: Buffer) => {
    let i = 0;
    while (i < buf.length) {
      const nl = buf.indexOf(0x0a, i);
      const stop = nl < 0 ? buf.length : nl;
      if (!lineHasBytes && hasContent(buf, i, stop)) lineHasBytes = true;
      if (nl < 0) break;
      endLine();
      lineStart = pos + nl + 1;
      i = nl + 1;
    }
    pos += buf.length;
  };
  // The first bytes are held back until there are enough to tell whether they are a BOM.
  let head: Buffer | undefined = Buffer.alloc(0);
  const flushHead = () => {
    const h = head!;
    head = undefined;
    if (h.subarray(0, BOM.length).equals(BOM)) {
      pos = lineStart = BOM.length;
      scan(h.subarray(BOM.length));
    } else {
      scan(h);
    }
  };
  for await (const chunk of await storage.readStream(path)) {
    const buf = chunk as Buffer;
    if (head) {
      head = Buffer.concat([head, buf]);
      if (head.length >= BOM.length) flushHead();
    } else {
      scan(buf);
    }
  }
  if (head) flushHead();
  endLine();
  return { rows, size: pos, stride, offsets, lines };
}
