import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, readJsonl, waitFor } from '../harness.js';
import { DEBIAN_PYTHON_PATH, type PythonJobOptions, pythonJob, pythonMappers, rows } from './python-harness.js';

const POOL = 'pyerr';

describe("a Python mapper's failures reach the user with their traceback, file and line", () => {
  const sb = new Sandbox('python-errors');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n', DEBIAN_PYTHON_PATH);
    sb.file('in8.jsonl', jsonl(rows(8)));
    sb.file('in20.jsonl', jsonl(rows(20).map((r, i) => (i === 13 ? { text: 'poison' } : r))));
  });
  after(() => sb.cleanup());

  const job = (name: string, py: string, opts: PythonJobOptions = {}) => pythonJob(sb, POOL, name, py, opts);

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
      { input: 'in20.jsonl', batchSize: 4, extra: ", onItemError: 'skip', maxAttempts: 1" },
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
