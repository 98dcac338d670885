import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { ImageWriter, JsonWriter, SkybatchError } from '../../index.js';
import { Sandbox, jsonl, listFiles, readJsonl } from '../harness.js';

const POOL = 'habits';
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `t${i}` }));
/** Prints each failed attempt's code, so a test can see why a batch was retried. */
const PRINT_CODES = `progress: (e: sky.JobEvent) => { if (e.kind === 'batch' && e.error) console.log('ATTEMPT', e.attempt, e.error.code, e.error.message.split('\\n')[0]); }`;

function badOption(field: string, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof SkybatchError, String(err));
    assert.equal(err.code, 'SKYBATCH_E_BAD_OPTION');
    assert.equal(err.context.field, field);
    assert.match(err.message, message);
    return true;
  };
}

/**
 * A script whose reader is a RangeReader defined in it; `download` is the body of its loop over
 * indices `i`, `call` runs first in each downloadBatch call, `map` first for each batch.
 */
function rangeReaderScript(opts: { download: string; output: string; extra: string; call?: string; map?: string }): string {
  return `import * as fs from 'node:fs';
import * as sky from 'skybatch';

let calls = 0;
class RangeReader extends sky.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }
  async downloadBatch(startIdx: number, endIdx: number) {
    calls++;
    ${opts.call ?? ''}
    const out = [];
    for (let i = startIdx; i <= endIdx; i++) {
      ${opts.download}
      out.push({ index: i });
    }
    return out;
  }
}
sky.registry.INPUT_READER_REGISTRY.register('range', RangeReader);

const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    ${opts.map ?? ''}
    await sky.saveResults(batch.map((x) => ({ index: x.index })));
  }
});
const job = await new sky.Dataset(new RangeReader('', { count: 8 })).map(mapper, {
  poolName: ${JSON.stringify(POOL)}, batchSize: 2, retryBaseMs: 50, maxAttempts: 2, output: new sky.JsonWriter(${JSON.stringify(opts.output)}), ${opts.extra}
});
console.log('RESULT', job.jobId, job.status);
`;
}

describe("the reference API's habits work or fail clearly", () => {
  const sb = new Sandbox('habits');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in4.jsonl', jsonl(rows(4)));
  });
  after(() => sb.cleanup());

  test('a synchronous for...of over sky.load() fails the job at once, saying to use for await', async () => {
    const script = sb.file(
      'sync.ts',
      `import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for (const batch of sky.load() as unknown as Iterable<sky.Item[]>) await sky.saveResults(batch);
});
await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in4.jsonl'))})).map(mapper, { poolName: ${JSON.stringify(POOL)}, batchSize: 2, output: new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'sync.jsonl'))}) });
`,
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_SAVE_RESULTS/);
    assert.match(r.stderr, /write `for await \(const batch of sky\.load\(\)\)`, not `for \(const batch of sky\.load\(\)\)`/);
  });

  test("new JsonWriter(path, 'output') and new ImageWriter(dir, 'img') select their column, as the reference's column= does", async () => {
    const out = path.join(sb.dir, 'positional');
    const script = sb.file(
      'positional.ts',
      `import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((x, i) => ({ prompt: x.text, output: String(x.text).toUpperCase(), n: i, img: { width: 1, height: 1, data: new Uint8Array([i, 0, 0, 255]) } })));
  }
});
const out = ${JSON.stringify(out)};
await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in4.jsonl'))})).map(mapper, {
  poolName: ${JSON.stringify(POOL)},
  batchSize: 2,
  output: [new sky.JsonWriter(out + '/one.jsonl', 'output'), new sky.JsonWriter(out + '/two.jsonl', ['prompt', 'n']), new sky.ImageWriter(out + '/images', 'img')],
});
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(out, 'one.jsonl')), rows(4).map((x) => ({ output: x.text.toUpperCase() })));
    assert.deepEqual(readJsonl(path.join(out, 'two.jsonl')), rows(4).map((x, i) => ({ prompt: x.text, n: i % 2 })));
    assert.deepEqual(listFiles(path.join(out, 'images')), ['00000000.png', '00000001.png', '00000002.png', '00000003.png', '_manifest.jsonl']);
    assert.equal(PNG.sync.read(fs.readFileSync(path.join(out, 'images', '00000001.png'))).data[0], 1);
  });

  test('writer options that would silently write every column are refused at construction', () => {
    assert.throws(() => new JsonWriter('out.jsonl', { columns: ['output'] } as never), badOption('columns', /JsonWriter\(out\.jsonl\): unknown option columns; expected column/));
    assert.throws(() => new JsonWriter('out.jsonl', 5 as never), badOption('options', /must be an options object \{ column \} or a column name, got number 5/));
    assert.throws(() => new JsonWriter('out.jsonl', []), badOption('column', /non-empty list of names/));
    assert.throws(() => new ImageWriter('imgs/', ['a', 'b'] as never), badOption('column', /writes one image column, got \["a","b"\]/));
    assert.throws(() => new ImageWriter('imgs/', { column: 7 } as never), badOption('column', /got 7/));
    assert.equal(new ImageWriter('imgs/', ['picture']).column, 'picture');
    assert.deepEqual(new JsonWriter('out.jsonl', ['a', 'b']).options, { column: ['a', 'b'] }, 'the normalized options are what reaches workers');
    // a user's subclass may carry options of its own
    class TaggedWriter extends JsonWriter {
      constructor(p: string, o: { column?: string; tag: string }) {
        super(p, o);
      }
    }
    assert.deepEqual(new TaggedWriter('out.jsonl', { column: 'a', tag: 'x' }).options, { column: 'a', tag: 'x' });
  });

  test("a reader's downloadBatch failure has SKYBATCH_E_READER: a plain Error is retried, a TypeError fails the job at once", async () => {
    const marker = path.join(sb.dir, 'reader-once');
    const flaky = sb.file(
      'flaky-reader.ts',
      rangeReaderScript({
        // batch [0, 1] is the first its worker runs: never given back unstarted (a batch given
        // back at the job's tail takes the failure of its prefetched download with it, and runs
        // again elsewhere, where the download works: the failure would not be seen)
        download: `if (i === 0 && !fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, ''); throw new Error('bucket hiccup'); }`,
        output: path.join(sb.dir, 'flaky-reader.jsonl'),
        extra: PRINT_CODES,
      }),
    );
    const r = await sb.run(flaky);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ATTEMPT \d+ SKYBATCH_E_READER RangeReader\.downloadBatch\(0, 1\) failed: Error: bucket hiccup/);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'flaky-reader.jsonl')), Array.from({ length: 8 }, (_, i) => ({ index: i })));

    const buggy = sb.file(
      'buggy-reader.ts',
      rangeReaderScript({ download: `if (i === 6) (undefined as unknown as { x: number }).x;`, output: path.join(sb.dir, 'buggy-reader.jsonl'), extra: PRINT_CODES }),
    );
    const b = await sb.run(buggy);
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /SKYBATCH_E_READER/);
    assert.match(b.stderr, /RangeReader\.downloadBatch\(6, 7\) failed: TypeError: Cannot read properties of undefined/);
    assert.match(b.stderr, /buggy-reader\.ts:\d+/, 'the stack points into the reader the user wrote');
    assert.doesNotMatch(b.stderr, /SKYBATCH_E_MAPPER/);
    assert.equal((b.stdout.match(/ATTEMPT/g) ?? []).length, 1, 'a TypeError is not retried');
  });

  test("a prefetched batch whose download failed, given back when its worker's mapper dies, is not charged, and the job log says why", async () => {
    const [downloads, deaths] = [path.join(sb.dir, 'prefetch-failed'), path.join(sb.dir, 'mapper-died')];
    for (const d of [downloads, deaths]) fs.mkdirSync(d);
    const once = (dir: string) => `fs.readdirSync(${JSON.stringify(dir)}).length < 2 && !fs.writeFileSync(${JSON.stringify(dir)} + '/' + process.pid, '')`;
    const script = sb.file(
      'prefetch-failed.ts',
      rangeReaderScript({
        // in each of the first two mapper processes: the second download (the batch prefetched
        // behind the first) fails, and the mapper dies 300 ms into its first batch
        call: `if (calls === 2 && ${once(downloads)}) throw new Error('bucket hiccup');`,
        download: '',
        map: `if (${once(deaths)}) { await new Promise((r) => setTimeout(r, 300)); throw new Error('mapper crashed'); }`,
        output: path.join(sb.dir, 'prefetch-failed.jsonl'),
        extra: PRINT_CODES,
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'prefetch-failed.jsonl')), Array.from({ length: 8 }, (_, i) => ({ index: i })));
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    const log = (await sb.cli(['jobs', 'logs', jobId])).stdout;
    assert.match(log, /batch \[\d, \d\] attempt 1 given back by local-\d; its download, started ahead, had failed: RangeReader\.downloadBatch\(\d, \d\) failed: Error: bucket hiccup/);
    assert.equal((r.stdout.match(/ATTEMPT \d+ SKYBATCH_E_MAPPER/g) ?? []).length, 2, r.stdout);
  });

  test('code written with sky.batch.* (as ported from the reference) runs the same on the client and in the mapper', async () => {
    const out = path.join(sb.dir, 'ported.jsonl');
    const script = sb.file(
      'ported.ts',
      `import * as sky from 'skybatch';

class RangeReader extends sky.batch.ioFormats.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }
  downloadBatch(startIdx: number, endIdx: number) {
    return Array.from({ length: endIdx - startIdx + 1 }, (_, k) => ({ text: 'r' + (startIdx + k) }));
  }
}
sky.batch.registry.INPUT_READER_REGISTRY.register('ported-range', RangeReader);

const doubleText = sky.batch.remoteFunction(async function doubleText() {
  for await (const batch of sky.batch.load()) {
    await sky.batch.saveResults(batch.map((item) => ({ output: String(item.text).repeat(2), batchPath: sky.batch.utils.getBatchPath('out.jsonl', 0, 1, 'j') })));
  }
});

const ds = new sky.batch.Dataset(new RangeReader('', { count: 5 }));
const job = await ds.map(doubleText, { poolName: ${JSON.stringify(POOL)}, batchSize: 2, output: new sky.batch.JsonWriter(${JSON.stringify(out)}, 'output') });
console.log('RESULT', job.jobId, job.status, sky.batch.Dataset === sky.Dataset);
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT \d+ SUCCEEDED true/);
    assert.deepEqual(readJsonl(out), ['r0', 'r1', 'r2', 'r3', 'r4'].map((t) => ({ output: t + t })));
  });
});
