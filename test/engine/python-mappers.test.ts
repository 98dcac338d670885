import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { jobRequest } from '../../runtime/protocol-guards.js';
import { ROOT, Sandbox, jsonl, listFiles, readJsonl } from '../harness.js';
import { DEBIAN_PYTHON_PATH, type PythonJobOptions, pythonJob, rows } from './python-harness.js';

const POOL = 'py';

/** Which workers ran a Python mapper's one-time part: lines "<worker> <pid>" of `file`. */
function loads(file: string): { worker: string; pid: string }[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [worker, pid] = l.split(' ');
      return { worker, pid };
    });
}

describe('Python mappers run on workers as written in the reference', () => {
  const sb = new Sandbox('python');
  const setupCount = path.join(sb.home, 'pools', POOL, 'workers', 'setup-count.txt');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\nsetup: |\n  echo ran >> ../setup-count.txt\n  python3 -c "import PIL, numpy"\n', DEBIAN_PYTHON_PATH);
    sb.file('in8.jsonl', jsonl(rows(8)));
  });
  after(() => sb.cleanup());

  const job = (name: string, py: string, opts: PythonJobOptions = {}) => pythonJob(sb, POOL, name, py, opts);

  test('the Python quickstart sample doubles every text, in order', async () => {
    const out = path.join(sb.dir, 'quick', 'output.jsonl');
    const r = await sb.run(path.join(ROOT, 'samples/python-quickstart/double_text.ts'), { POOL, OUTPUT: out });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(out), [{ output: 'hellohello' }, { output: 'worldworld' }, { output: 'skysky' }, { output: 'batchbatch' }]);
    assert.deepEqual(listFiles(path.dirname(out)), ['output.jsonl'], 'no temp files are left');
  });

  test('setup runs once per worker; the mapper is loaded once per worker per job', async () => {
    const count = path.join(sb.dir, 'loads.txt');
    const script = job(
      'counted',
      `import os
import skybatch as sky

@sky.batch.remote_function
def double_text():
    with open(${JSON.stringify(count)}, "a") as f:
        f.write("%s %d\\n" % (os.environ["SKYBATCH_WORKER"], os.getpid()))
    print("mapper loaded on", os.environ["SKYBATCH_WORKER"])
    for batch in sky.batch.load():
        results = [{"output": item["text"] * 2} for item in batch]
        sky.batch.save_results(results)
`,
      { fn: 'double_text', batchSize: 1 },
    );
    const setupBefore = fs.readFileSync(setupCount, 'utf8');
    assert.equal(setupBefore, 'ran\nran\n', 'setup ran once on each of the two workers');
    for (let n = 1; n <= 2; n++) {
      const before = loads(count).length;
      const r = await sb.run(script);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(readJsonl(path.join(sb.dir, 'counted', 'out.jsonl')), rows(8).map((x) => ({ output: x.text + x.text })));
      const mine = loads(count).slice(before);
      const workers = mine.map((l) => l.worker);
      assert.ok(mine.length >= 1 && mine.length <= 2, `job ${n}: ${mine.length} loads for 8 batches on 2 workers`);
      assert.equal(new Set(workers).size, workers.length, `job ${n}: a worker loaded the mapper twice: ${workers.join(', ')}`);
      const log = (await sb.cli(['jobs', 'logs', /RESULT (\d+)/.exec(r.stdout)![1]])).stdout;
      for (const w of workers) assert.match(log, new RegExp(`\\[${w}\\] mapper loaded on ${w}`), "the mapper's prints are in the job log");
    }
    assert.equal(new Set(loads(count).map((l) => l.pid)).size, loads(count).length, 'each job starts its own Python process');
    assert.equal(fs.readFileSync(setupCount, 'utf8'), setupBefore, 'jobs do not run setup again');
  });

  test('the image sample writes valid PNGs from PIL images and an exact manifest through a JsonWriter with columns', async () => {
    const out = path.join(sb.dir, 'img');
    const r = await sb.run(path.join(ROOT, 'samples/python-images/generate_images.ts'), { POOL, OUTPUT_DIR: out, IMAGE_SIZE: '48' });
    assert.equal(r.code, 0, r.stderr);
    const prompts = readJsonl(path.join(ROOT, 'samples/python-images/prompts.jsonl')) as { prompt: string }[];
    const pngs = prompts.map((_, i) => `images/${String(i).padStart(8, '0')}.png`);
    assert.deepEqual(listFiles(out), ['images/_manifest.jsonl', ...pngs, 'manifest.jsonl'].sort());
    const decoded = pngs.map((p) => PNG.sync.read(fs.readFileSync(path.join(out, p))));
    for (const png of decoded) assert.deepEqual([png.width, png.height], [48, 48]);
    assert.notDeepEqual(decoded[0].data, decoded[1].data, 'each prompt has its own picture');
    assert.deepEqual(readJsonl(path.join(out, 'images/_manifest.jsonl')), pngs.map((p, i) => ({ file: path.basename(p), index: i })));
    assert.deepEqual(readJsonl(path.join(out, 'manifest.jsonl')), prompts.map((p) => ({ prompt: p.prompt })));
  });

  test("custom TypeScript formats feed a Python mapper: the reference's complete custom-formats example", async () => {
    sb.file(
      'process_range.py',
      `import skybatch as sky

@sky.batch.remote_function
def process_items():
    import random

    for batch in sky.batch.load():
        results = []
        for item in batch:
            idx = item['index']
            tokens = [f'token_{j}' for j in range(idx, idx + 5)]
            text = f'Item {idx}: ' + ' | '.join(tokens)
            metadata = {
                'id': idx,
                'squared': idx ** 2,
                'tag': random.choice(['alpha', 'beta', 'gamma']),
            }
            results.append({'text': text, 'metadata': metadata})
        sky.batch.save_results(results)
`,
    );
    const out = path.join(sb.dir, 'range');
    const script = sb.file(
      'process_range.ts',
      `import * as sky from 'skybatch';

@sky.registry.INPUT_READER_REGISTRY.typeRegister('range')
class RangeReader extends sky.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }
  async downloadBatch(startIdx: number, endIdx: number) {
    const out = [];
    for (let i = startIdx; i <= endIdx; i++) out.push({ index: i });
    return out;
  }
}

@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('text')
class TextWriter extends sky.OutputWriter<{ column: string }> {
  async uploadBatch(results: sky.Item[], startIdx: number) {
    for (let i = 0; i < results.length; i++) {
      await sky.utils.uploadBytesToCloud(Buffer.from(String(results[i][this.options.column])), \`\${this.path}/\${String(startIdx + i).padStart(8, '0')}.txt\`);
    }
    return this.path;
  }
}

const ds = new sky.Dataset(new RangeReader('', { count: 20 }));
await ds.map(sky.pythonFunction('process_range.py', 'process_items'), {
  poolName: ${JSON.stringify(POOL)},
  batchSize: 5,
  output: [new TextWriter(${JSON.stringify(path.join(out, 'texts'))}, { column: 'text' }), new sky.JsonWriter(${JSON.stringify(path.join(out, 'metadata.jsonl'))}, 'metadata')],
});
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    const texts = Array.from({ length: 20 }, (_, i) => `texts/${String(i).padStart(8, '0')}.txt`);
    assert.deepEqual(listFiles(out), ['metadata.jsonl', ...texts].sort());
    assert.equal(fs.readFileSync(path.join(out, 'texts/00000007.txt'), 'utf8'), 'Item 7: token_7 | token_8 | token_9 | token_10 | token_11');
    const meta = readJsonl(path.join(out, 'metadata.jsonl')) as { metadata: { id: number; squared: number; tag: string } }[];
    assert.deepEqual(meta.map((m) => [m.metadata.id, m.metadata.squared]), Array.from({ length: 20 }, (_, i) => [i, i * i]));
    assert.ok(meta.every((m) => ['alpha', 'beta', 'gamma'].includes(m.metadata.tag)));
  });

  test('a failed Python job resumes (resumeFrom) with its fixed mapper file and completes', async () => {
    const mapper = (bad: string) => `import skybatch as sky

@sky.batch.remote_function
def double_text():
    for batch in sky.batch.load():
        if any(item["text"] == ${JSON.stringify(bad)} for item in batch):
            raise TypeError("cannot double " + ${JSON.stringify(bad)})
        sky.batch.save_results([{"output": item["text"] * 2} for item in batch])
`;
    const script = job('resumed', mapper('t5'), { extra: ', resumeFrom: process.env.RESUME' });
    const first = await sb.run(script);
    assert.notEqual(first.code, 0);
    assert.match(first.stderr, /TypeError: cannot double t5/);
    const jobId = /job (\d+) failed/.exec(first.stderr)![1];
    sb.file('resumed.py', mapper('no such text'));
    const again = await sb.run(script, { RESUME: jobId });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`RESULT ${jobId} SUCCEEDED`));
    assert.deepEqual(readJsonl(path.join(sb.dir, 'resumed', 'out.jsonl')), rows(8).map((x) => ({ output: x.text + x.text })));
  });

  test('results convert: NumPy values become JSON, PNG bytes reach ImageWriter, NaN becomes null', async () => {
    const out = path.join(sb.dir, 'convert');
    const script = job(
      'convert',
      `import skybatch as sky

@sky.batch.remote_function
def convert():
    import io
    import numpy as np
    from PIL import Image
    for batch in sky.batch.load():
        results = []
        for item in batch:
            n = int(item["text"][1:])
            buf = io.BytesIO()
            Image.new("L", (n + 1, 2), 200).save(buf, format="PNG")
            results.append({"n": np.int64(n), "half": np.float32(n / 2), "even": np.bool_(n % 2 == 0),
                            "row": np.arange(3) * n, "grid": np.eye(2, dtype=np.uint8), "nan": float("nan"),
                            "pair": (n, "x"), "png": buf.getvalue()})
        sky.batch.save_results(results)
`,
      {
        batchSize: 3,
        output: `[new sky.JsonWriter(${JSON.stringify(path.join(out, 'out.jsonl'))}, ['n', 'half', 'even', 'row', 'grid', 'nan', 'pair']), new sky.ImageWriter(${JSON.stringify(path.join(out, 'png/'))}, 'png')]`,
      },
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      readJsonl(path.join(out, 'out.jsonl')),
      rows(8).map((_, n) => ({ n, half: n / 2, even: n % 2 === 0, row: [0, n, 2 * n], grid: [[1, 0], [0, 1]], nan: null, pair: [n, 'x'] })),
    );
    const png = PNG.sync.read(fs.readFileSync(path.join(out, 'png', '00000005.png')));
    assert.deepEqual([png.width, png.height], [6, 2]);
  });

});

describe('the skybatch Python package outside a worker', () => {
  const python = (code: string) =>
    spawnSync('/usr/bin/python3', ['-c', code], { env: { ...process.env, PYTHONPATH: path.join(ROOT, 'python') }, encoding: 'utf8' });

  test('imports with the standard library only and leaves `sky` (SkyPilot) alone', () => {
    const r = python(`import sys, skybatch as sky
assert sky.batch.load is sky.load and sky.batch.save_results is sky.save_results
print(sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "PIL", "sky")))`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '[]');
  });

  test('the client-side names of the reference say where they belong; load() says where it works', () => {
    const r = python(`import skybatch as sky
try:
    sky.batch.Dataset
except AttributeError as e:
    print(e)
@sky.batch.remote_function
def m():
    for batch in sky.batch.load():
        pass
try:
    m()
except sky.SkybatchError as e:
    print(e.code, e)`);
    assert.equal(r.status, 0, r.stderr);
    const [dataset, load] = r.stdout.trim().split('\n');
    assert.match(dataset, /sky\.batch\.Dataset belongs to the script that submits the job, which is TypeScript in skybatch: .*sky\.pythonFunction\('<this file>\.py', '<function name>'\)/);
    assert.match(load, /^SKYBATCH_E_SAVE_RESULTS sky\.batch\.load\(\) only works inside a mapper running on a worker/);
  });
});

describe("a Python mapper's job request is checked like every frame", () => {
  const request = (python: unknown) => ({
    bundleHash: 'a'.repeat(64),
    mapperId: 'python:mapper.py:fn',
    scriptPath: '/w/run.ts',
    reader: { type: 'json', path: '/w/in.jsonl', options: {} },
    writers: [{ type: 'json', path: '/w/out.jsonl', options: {} }],
    batchSize: 2,
    total: 4,
    env: {},
    argv: [],
    cwd: '/w',
    python,
  });

  test('a file name workers can store and a Python identifier pass; anything else names the field', () => {
    assert.ok(jobRequest.safeParse(request({ file: '/w/mapper.py', source: 'x = 1\n', function: 'generate_images', interpreter: '.venv/bin/python' })).success);
    for (const [python, field] of [
      [{ file: '/w/..', source: '' }, 'file'],
      [{ file: '/w/', source: '' }, 'file'],
      [{ file: '/w/m.py', source: '', function: 'a-b' }, 'function'],
      [{ file: '/w/m.py', source: '', interpreter: '' }, 'interpreter'],
      [{ file: '/w/m.py' }, 'source'],
    ] as const) {
      const r = jobRequest.safeParse(request(python));
      assert.ok(!r.success, JSON.stringify(python));
      assert.deepEqual(r.error.issues[0].path, ['python', field]);
    }
  });
});
