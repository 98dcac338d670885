/**
 * The hand-written loop a competent Node engineer would write for the double-text job
 * instead of using skybatch: read in large chunks, split lines with indexOf, JSON.parse,
 * build, JSON.stringify, write in large buffers. `node hand-loop.js IN OUT [FROM TO]`
 * processes the lines that start in bytes [FROM, TO) and prints its own time as JSON.
 * `splitRun` runs it as N processes by byte range and concatenates the parts.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const READ_CHUNK = 4 << 20;
const WRITE_AT = 1 << 20;

/** Doubles the `text` of every line that starts in bytes [from, to) of `input`, into `output`. */
export function handLoop(input: string, output: string, from = 0, to?: number): void {
  const inFd = fs.openSync(input, 'r');
  const outFd = fs.openSync(output, 'w');
  try {
    const size = fs.fstatSync(inFd).size;
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let pos = lineStart(inFd, buf, from, size);
    const stop = lineStart(inFd, buf, to ?? size, size);
    let carry = '';
    let out = '';
    const emit = (line: string) => {
      const item = JSON.parse(line) as { text: unknown };
      out += JSON.stringify({ output: String(item.text).repeat(2) }) + '\n';
      if (out.length >= WRITE_AT) {
        fs.writeSync(outFd, out);
        out = '';
      }
    };
    while (pos < stop) {
      const n = fs.readSync(inFd, buf, 0, Math.min(READ_CHUNK, stop - pos), pos);
      if (n === 0) break;
      pos += n;
      // decode up to the last newline; a multi-byte character is never split
      const lastNl = pos < stop ? buf.lastIndexOf(0x0a, n - 1) : n - 1;
      const take = lastNl < 0 ? 0 : lastNl + 1;
      pos -= n - take;
      if (take === 0) {
        carry += buf.toString('utf8', 0, n); // one line longer than a chunk
        pos += n;
        continue;
      }
      const text = carry + buf.toString('utf8', 0, take);
      carry = '';
      let i = 0;
      for (let nl = text.indexOf('\n', i); i < text.length; nl = text.indexOf('\n', i)) {
        if (nl < 0) nl = text.length;
        let end = nl;
        if (end > i && text.charCodeAt(end - 1) === 13) end--;
        if (end > i) emit(text.slice(i, end));
        i = nl + 1;
      }
    }
    if (out) fs.writeSync(outFd, out);
  } finally {
    fs.closeSync(inFd);
    fs.closeSync(outFd);
  }
}

/** The first line start at or after byte `at`: a range that starts mid-line leaves that line to the range before. */
function lineStart(fd: number, buf: Buffer, at: number, size: number): number {
  if (at <= 0) return 0;
  let pos = at - 1;
  while (pos < size) {
    const n = fs.readSync(fd, buf, 0, Math.min(64 * 1024, size - pos), pos);
    const nl = buf.subarray(0, n).indexOf(0x0a);
    if (nl >= 0) return pos + nl + 1;
    pos += n;
  }
  return size;
}

interface ChildTime {
  seconds: number;
}

function runChild(args: string[]): Promise<ChildTime> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [SELF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as ChildTime) : reject(new Error(`hand loop exited with code ${code}`))));
  });
}

/** One process over the whole file; its own time, without the node start. */
export async function singleRun(input: string, output: string): Promise<number> {
  return (await runChild([input, output])).seconds;
}

/**
 * `parts` processes, one byte range each, then part 0 renamed to `output` and the others
 * appended: timed from the spawns to the concatenated output.
 */
export async function splitRun(input: string, output: string, parts: number): Promise<number> {
  const t0 = performance.now();
  const size = fs.statSync(input).size;
  const files = Array.from({ length: parts }, (_, i) => `${output}.part${i}`);
  await Promise.all(files.map((f, i) => runChild([input, f, String(Math.floor((size * i) / parts)), String(Math.floor((size * (i + 1)) / parts))])));
  fs.renameSync(files[0], output);
  const fd = fs.openSync(output, 'a');
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  for (const f of files.slice(1)) {
    const src = fs.openSync(f, 'r');
    for (let n; (n = fs.readSync(src, buf, 0, READ_CHUNK, null)) > 0; ) fs.writeSync(fd, buf, 0, n);
    fs.closeSync(src);
    fs.rmSync(f);
  }
  fs.closeSync(fd);
  return (performance.now() - t0) / 1000;
}

if (process.argv[1] === SELF) {
  const [input, output, from, to] = process.argv.slice(2);
  const t0 = performance.now();
  handLoop(input, output, from ? Number(from) : 0, to ? Number(to) : undefined);
  process.stdout.write(JSON.stringify({ seconds: (performance.now() - t0) / 1000 }));
}
