import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { ROOT, Sandbox, jsonl, listFiles, readJsonl, waitFor } from '../harness.js';

const POOL = 'py';
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `t${i}` }));
/**
 * Debian's python3 (with python3-pil and python3-numpy, which scripts/test.sh installs) is
 * /usr/bin/python3; a developer machine may put another python3 (pyenv) first on PATH.
 * The workers get this PATH from `pool apply`, as a pool started by hand would.
 */
const DEBIAN_PYTHON_PATH = { PATH: `/usr/bin:${process.env.PATH}` };

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

/** Python mapper processes (`python -m skybatch._worker`) still running under `home`. */
function pythonMappers(home: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('skybatch._worker')) continue;
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (fs.readlinkSync(`/proc/${d}/cwd`).startsWith(home) && stat[stat.lastIndexOf(')') + 2] !== 'Z') out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

describe('Python mappers run on workers as written in the reference', () => {
  const sb = new Sandbox('python');
  const setupCount = path.join(sb.home, 'pools', POOL, 'workers', 'setup-count.txt');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\nsetup: |\n  echo ran >> ../setup-count.txt\n  python3 -c "import PIL, numpy"\n', DEBIAN_PYTHON_PATH);
    sb.file('in8.jsonl', jsonl(rows(8)));
    sb.file('in20.jsonl', jsonl(rows(20).map((r, i) => (i === 13 ? { text: 'poison' } : r))));
  });
  after(() => sb.cleanup());

  /** Writes `name.py` and a `name.ts` that maps its function `fn` over `input`; returns the script. */
  const job = (name: string, py: string, opts: { fn?: string; input?: string; batchSize?: number; extra?: string; output?: string } = {}) => {
    sb.file(`${name}.py`, py);
    const output = opts.output ?? `new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, name, 'out.jsonl'))})`;
    return sb.file(
      `${name}.ts`,
      `import * as sky from 'skybatch';
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, opts.input ?? 'in8.jsonl'))}));
const job = await ds.map(sky.pythonFunction('${name}.py'${opts.fn ? `, '${opts.fn}'` : ''}), { poolName: ${JSON.stringify(POOL)}, batchSize: ${opts.batchSize ?? 2}, output: ${output}, retryBaseMs: 50 ${opts.extra ?? ''} });
console.log('RESULT', job.jobId, job.status);
`,
    );
  };

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
    assert.deepEqual(listFiles(out), ['images/manifest.jsonl', ...pngs, 'manifest.jsonl'].sort());
    const decoded = pngs.map((p) => PNG.sync.read(fs.readFileSync(path.join(out, p))));
    for (const png of decoded) assert.deepEqual([png.width, png.height], [48, 48]);
    assert.notDeepEqual(decoded[0].data, decoded[1].data, 'each prompt has its own picture');
    assert.deepEqual(readJsonl(path.join(out, 'images/manifest.jsonl')), pngs.map((p, i) => ({ file: path.basename(p), index: i })));
    assert.deepEqual(readJsonl(path.join(out, 'manifest.jsonl')), prompts.map((p) => ({ prompt: p.prompt })));
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

  test('a value that cannot be sent fails its batch naming the column, the item and the line', async () => {
    const script = job(
      'unsendable',
      `import skybatch as sky

@sky.batch.remote_function
def unsendable():
    import datetime
    for batch in sky.batch.load():
        sky.batch.save_results([{"ok": 1, "when": datetime.date(2024, 1, 1) if item["text"] == "t5" else None} for item in batch])
`,
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_SERIALIZE/);
    assert.match(r.stderr, /batch \[4, 5\]: save_results\(\): column 'when' of item 5 holds a datetime\.date/);
    assert.match(r.stderr, /unsendable\.py:7 in unsendable/);
  });

  test("with onItemError 'skip', an item whose processing raises goes to errors.jsonl with its traceback", async () => {
    const script = job(
      'poison',
      `import skybatch as sky

@sky.batch.remote_function
def poison():
    for batch in sky.batch.load():
        results = []
        for item in batch:
            if item["text"] == "poison":
                raise ValueError("cannot tokenize " + item["text"])
            results.append({"out": item["text"]})
        sky.batch.save_results(results)
`,
      { input: 'in20.jsonl', batchSize: 4, extra: ", onItemError: 'skip', maxAttempts: 2" },
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      readJsonl(path.join(sb.dir, 'poison', 'out.jsonl')),
      rows(20).filter((_, i) => i !== 13).map((x) => ({ out: x.text })),
    );
    const errors = readJsonl(path.join(sb.dir, 'poison', 'errors.jsonl')) as { index: number; input: unknown; error: string; code: string; stack: string }[];
    assert.equal(errors.length, 1);
    assert.equal(errors[0].index, 13);
    assert.deepEqual(errors[0].input, { text: 'poison' });
    assert.equal(errors[0].code, 'SKYBATCH_E_MAPPER');
    assert.match(errors[0].error, /^ValueError: cannot tokenize poison \(.*poison\.py:9 in poison\)$/);
    assert.match(errors[0].stack, /^Traceback \(most recent call last\):\n {2}File ".*poison\.py", line 9, in poison\n {4}raise ValueError\("cannot tokenize " \+ item\["text"\]\)\nValueError: cannot tokenize poison$/);
  });

  test("items the mapper marks with fail_item are skipped with the traceback of the exception it caught", async () => {
    const script = job(
      'marked',
      `import skybatch as sky

def parse(text):
    return 10 // (int(text[1:]) % 3)

@sky.batch.remote_function
def marked():
    for batch in sky.batch.load():
        results = []
        for item in batch:
            try:
                results.append({"q": parse(item["text"])})
            except ZeroDivisionError as e:
                results.append(sky.batch.fail_item(e))
        sky.batch.save_results(results)
`,
      { extra: ", onItemError: 'skip'" },
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'marked', 'out.jsonl')), [1, 2, 4, 5, 7].map((n) => ({ q: Math.floor(10 / (n % 3)) })));
    const errors = readJsonl(path.join(sb.dir, 'marked', 'errors.jsonl')) as { index: number; error: string; stack: string }[];
    assert.deepEqual(errors.map((e) => e.index), [0, 3, 6]);
    assert.match(errors[0].error, /^ZeroDivisionError: integer division or modulo by zero \(.*marked\.py:4 in parse\)$/);
    assert.match(errors[0].stack, /line 12, in marked\n[\s\S]*line 4, in parse\n[\s\S]*ZeroDivisionError/);
  });

  test('a mapper that raises before its first batch fails the job at once with its traceback', async () => {
    const script = job(
      'early',
      `import skybatch as sky

@sky.batch.remote_function
def load_model():
    import os
    weights = os.path.join("models", "sd-v1-5.safetensors")
    raise FileNotFoundError("model weights not found: " + weights)
    for batch in sky.batch.load():
        sky.batch.save_results(batch)
`,
      { fn: 'load_model' },
    );
    const t0 = Date.now();
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.ok(Date.now() - t0 < 20_000, 'the job failed at once, without retries');
    assert.match(r.stderr, /SKYBATCH_E_MAPPER/);
    assert.match(r.stderr, /FileNotFoundError: model weights not found: models\/sd-v1-5\.safetensors \(.*early\.py:7 in load_model\)/);
    assert.match(r.stderr, /Traceback \(most recent call last\):\n {2}File ".*early\.py", line 7, in load_model\n {4}raise FileNotFoundError/);
    assert.match(r.stderr, /recover them with: skybatch recover \d+/);
    assert.doesNotMatch(r.stderr, /retrying/);
  });

  test('a batch that hangs in Python times out, and its Python process is stopped with its mapper process', async () => {
    const script = job(
      'hang',
      `import time
import skybatch as sky

@sky.batch.remote_function
def hang():
    for batch in sky.batch.load():
        if batch[0]["text"] == "t4":
            time.sleep(600)
        sky.batch.save_results(batch)
`,
      { extra: ', batchTimeoutMs: 2000, maxAttempts: 1' },
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /batch \[4, 5\] ran longer than 2000 ms/);
    await waitFor('the hung Python process to be gone', () => pythonMappers(sb.home).length === 0 || undefined, 15_000);
  });

  test('a Python process that dies without a word fails its batch, even while a process it forked holds its pipe', async () => {
    const script = job(
      'dies',
      `import os, time
import skybatch as sky

@sky.batch.remote_function
def dies():
    node = os.getppid()
    if os.fork() == 0:  # e.g. a data-loader worker: outlives this process, not the mapper process
        for _ in range(300):
            if not os.path.exists("/proc/%d" % node):
                break
            time.sleep(0.2)
        os._exit(0)
    for batch in sky.batch.load():
        print("about to exit", flush=True)
        os._exit(3)
`,
      { extra: ', maxAttempts: 1' },
    );
    const t0 = Date.now();
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the Python mapper process \(python3\) exited with code 3 without reporting an error/);
    assert.ok(Date.now() - t0 < 40_000, 'the forked child did not hold the job up');
  });

  test('a file that does not parse, an unmarked function, a missing interpreter or file: clear errors', async () => {
    const py = `import skybatch as sky\n\ndef plain():\n    pass\n`;
    const noPython = job('nopython', py, { fn: 'plain' });
    fs.writeFileSync(noPython, fs.readFileSync(noPython, 'utf8').replace("'plain')", "'plain', { interpreter: 'python3-not-installed' })"));
    const missing = job('missing', py, { fn: 'plain' });
    fs.rmSync(missing.replace(/\.ts$/, '.py'));
    // independent jobs: submitted together, they queue on the pool
    const [broken, unmarked, nopython, m] = await Promise.all([
      sb.run(job('broken', `import skybatch as sky\n\n@sky.batch.remote_function\ndef broken():\n    for batch in sky.batch.load()\n        pass\n`)),
      sb.run(job('unmarked', py, { fn: 'plain' })),
      sb.run(noPython),
      sb.run(missing),
    ]);
    assert.notEqual(broken.code, 0);
    assert.match(broken.stderr, /SKYBATCH_E_MAPPER.*SyntaxError: .*broken\.py, line 5/);

    assert.notEqual(unmarked.code, 0);
    assert.match(unmarked.stderr, /SKYBATCH_E_MAPPER_NOT_FOUND.*plain in .*unmarked\.py is not marked as a mapper: put @sky\.batch\.remote_function on it/);

    assert.notEqual(nopython.code, 0);
    assert.match(nopython.stderr, /SKYBATCH_E_PYTHON.*cannot start the Python interpreter 'python3-not-installed' on worker local-\d: spawn python3-not-installed ENOENT/);

    assert.notEqual(m.code, 0);
    assert.match(m.stderr, /SKYBATCH_E_BAD_OPTION/);
    assert.match(m.stderr, /pythonFunction\('missing\.py'\): cannot read .*missing\.py/);
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
