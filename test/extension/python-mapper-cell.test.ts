import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as esbuild from 'esbuild';
import { generateJobScript } from '../../extension/core/job-script.js';
import { JobTracker } from '../../extension/core/job-tracker.js';
import { parse, serialize, type NotebookCellData } from '../../extension/core/notebook-format.js';
import { pythonSyntaxCheck } from '../../extension/core/python-check.js';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { formatTraceback, mapStack, scriptMapOf } from '../../extension/core/script-map.js';
import { validateNotebook } from '../../extension/core/validate.js';
import { JobLauncher, scriptPathFor } from '../../extension/job-launcher.js';
import * as errors from '../../runtime/control/error-channel.js';
import { CLI, Sandbox, jsonl, readJsonl } from '../harness.js';
import { DEBIAN_PYTHON_PATH } from '../engine/python-harness.js';

const POOL = 'pycell';

const MAPPER = `import skybatch as sky


def shout(text):
    if text == "t3":
        raise ValueError("no shouting at " + text)
    return text.upper()


@sky.batch.remote_function
def double_text():
    for batch in sky.batch.load():
        sky.batch.save_results([{"output": shout(item["text"]) * 2} for item in batch])
`;

const notebook = (mapper: string, run = `pool: ${POOL}\nbatchSize: 2\nretryBaseMs: 20`): NotebookCellData[] => [
  { kind: 'markdown', source: '# Python' },
  { kind: 'code', role: 'reader', language: 'typescript', source: "new sky.JsonReader('in.jsonl')" },
  { kind: 'markdown', source: 'The mapper, in Python.' },
  { kind: 'code', role: 'mapper', language: 'python', source: mapper },
  { kind: 'code', role: 'writers', language: 'typescript', source: "new sky.JsonWriter('out/out.jsonl')" },
  { kind: 'code', role: 'run', language: 'yaml', source: run },
];

describe('a notebook whose mapper cell is Python', () => {
  test('is written as a ```py mapper fence and reads back as the same cells', () => {
    const cells = notebook(MAPPER);
    const text = serialize(cells);
    assert.ok(text.includes('\n```py mapper\nimport skybatch as sky\n'), text);
    assert.deepEqual(parse(text), cells);
    assert.equal(serialize(parse(text)), text);
    // A Python cell saved without a role (another tool) is the mapper: Python can be nothing else.
    assert.deepEqual(parse('```py mapper\nx = 1\n```\n'), [{ kind: 'code', role: 'mapper', language: 'python', source: 'x = 1' }]);
  });

  test('validation compiles it with Python and puts a syntax error on its line and column', async () => {
    const bad = MAPPER.replace('def double_text():', 'def double_text(:');
    const r = await validateNotebook(notebook(bad), esbuild.transform, { python: pythonSyntaxCheck() });
    assert.equal(r.settings, undefined);
    const errors = r.problems.filter((p) => p.severity === 'error');
    assert.equal(errors.length, 1, JSON.stringify(r.problems));
    assert.equal(errors[0].cell, 3);
    assert.equal(errors[0].line, 10, 'the def line of the cell (0-based)');
    assert.match(errors[0].message, /^SyntaxError: /);
    const good = await validateNotebook(notebook(MAPPER), esbuild.transform, { python: pythonSyntaxCheck() });
    assert.deepEqual(good.problems, []);
    assert.ok(good.settings);
  });

  test('a cell without its remote function, or with two, is an error before anything runs', async () => {
    const none = await validateNotebook(notebook('def f():\n    pass\n'), esbuild.transform, { python: pythonSyntaxCheck() });
    assert.match(none.problems.map((p) => p.message).join('\n'), /defines no @sky\.batch\.remote_function/);
    const two = await validateNotebook(notebook(`${MAPPER}\n\n@sky.batch.remote_function\ndef other():\n    pass\n`), esbuild.transform, { python: pythonSyntaxCheck() });
    assert.match(two.problems.map((p) => p.message).join('\n'), /defines 2 remote functions/);
    const noPython = await validateNotebook(notebook(MAPPER), esbuild.transform, { python: pythonSyntaxCheck('/nonexistent/python3') });
    assert.deepEqual(noPython.problems.map((p) => p.severity), ['warning'], 'no local Python: not checked, not failed');
  });

  test('the generated script passes it to sky.pythonFunction, with the run cell\'s interpreter', () => {
    const settings = parseRunSettings(`pool: ${POOL}\nbatchSize: 2\npython: /usr/bin/python3`).settings!;
    const s = generateJobScript(notebook(MAPPER), settings, 'py.skybatch');
    assert.match(s.code, /^const __skybatchMapper = sky\.pythonFunction\("\.py\.skybatch\.py", undefined, \{ interpreter: "\/usr\/bin\/python3" \}\);$/m);
    assert.deepEqual(s.python, { cell: 3, file: '.py.skybatch.py', source: MAPPER });
    assert.ok(!s.spans.some((x) => x.role === 'mapper'), 'no Python line is in the TypeScript script');
  });

  test('a traceback through a library and a chained exception: cell frames innermost first, the last exception is the head', () => {
    const map = scriptMapOf(generateJobScript(notebook(MAPPER), { pool: POOL, batchSize: 2 }, 'py.skybatch'), '/w/nb/.py.skybatch.ts');
    assert.equal(map.python?.path, '/w/nb/.py.skybatch.py');
    const tb = [
      'Traceback (most recent call last):',
      '  File "/w/nb/.py.skybatch.py", line 6, in shout',
      '    raise ValueError("no shouting at " + text)',
      'ValueError: no shouting at t3',
      '',
      'During handling of the above exception, another exception occurred:',
      '',
      'Traceback (most recent call last):',
      '  File "/w/nb/.py.skybatch.py", line 13, in double_text',
      '    sky.batch.save_results([{"output": shout(item["text"]) * 2} for item in batch])',
      '  File "/usr/lib/python3/dist-packages/lib.py", line 40, in wrap',
      '    raise RuntimeError("wrapped")',
      '    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^',
      'RuntimeError: wrapped',
    ].join('\n');
    const m = mapStack(tb, map);
    assert.equal(m.head, 'RuntimeError: wrapped');
    assert.deepEqual(m.cellFrames.map((f) => [f.cellLine + 1, f.fn]), [[13, 'double_text'], [6, 'shout']]);
    assert.deepEqual(m.otherFrames, ['File "/usr/lib/python3/dist-packages/lib.py", line 40, in wrap']);
    assert.equal(m.origin?.cellLine, 12);
    assert.match(formatTraceback(m, { 3: MAPPER }), /\nlibrary frames:\n {4}File "\/usr\/lib/);
  });

  describe('running on a real pool', () => {
    const sb = new Sandbox('python-cell');
    before(async () => {
      await sb.applyPool(POOL, 'pool:\n  workers: 1\n', DEBIAN_PYTHON_PATH);
      sb.file('in.jsonl', jsonl(Array.from({ length: 6 }, (_, i) => ({ text: `t${i}` }))));
    });
    after(() => sb.cleanup());

    /** Runs the notebook as the controller does: its generated script through `skybatch run`, events folded by a tracker. */
    async function runNotebook(cells: NotebookCellData[]) {
      const notebookPath = path.join(sb.dir, 'py.skybatch');
      const run = cells.find((c): c is Extract<NotebookCellData, { kind: 'code' }> => c.kind === 'code' && c.role === 'run')!;
      const settings = parseRunSettings(run.source).settings!;
      const script = generateJobScript(cells, settings, path.basename(notebookPath));
      const tracker = new JobTracker(settings.pool);
      const out: string[] = [];
      const launcher = new JobLauncher({
        engine: { cli: CLI, errors },
        notebookPath,
        script,
        env: { SKYBATCH_HOME: sb.home, ...DEBIAN_PYTHON_PATH },
        onEvent: (e) => void tracker.handle(e),
        onOutput: (l) => out.push(l),
      });
      const result = await launcher.run();
      return { result, tracker, out, map: scriptMapOf(script, scriptPathFor(notebookPath)) };
    }

    test('runs the cell as the job\'s mapper to exact output, and leaves no generated file behind', async () => {
      const r = await runNotebook(notebook(MAPPER.replace('if text == "t3":', 'if text == "never":')));
      assert.equal(r.tracker.state.status, 'SUCCEEDED', r.out.join('\n'));
      assert.deepEqual(readJsonl(path.join(sb.dir, 'out', 'out.jsonl')), ['T0T0', 'T1T1', 'T2T2', 'T3T3', 'T4T4', 'T5T5'].map((output) => ({ output })));
      assert.deepEqual(fs.readdirSync(sb.dir).filter((f) => f.startsWith('.py.skybatch')), []);
    });

    test("a Python exception's traceback lands on the mapper cell's lines, the raising line first", async () => {
      const r = await runNotebook(notebook(MAPPER, `pool: ${POOL}\nbatchSize: 2\nmaxAttempts: 1`));
      assert.equal(r.tracker.state.status, 'FAILED', r.out.join('\n'));
      const err = r.tracker.state.error!;
      assert.ok(err.stack, `the failure carries the traceback: ${JSON.stringify(err)}`);
      const m = mapStack(err.stack, r.map);
      assert.equal(m.head, 'ValueError: no shouting at t3');
      assert.deepEqual(m.origin, { cell: 3, role: 'mapper', cellLine: 5, column: 0, label: 'mapper cell', fn: 'shout' });
      // Innermost first: shout, the list comprehension, double_text (Python 3.11 names the comprehension <listcomp>).
      assert.deepEqual(m.cellFrames.map((f) => [f.cellLine + 1, f.fn]).filter(([, fn]) => fn !== '<listcomp>'), [[6, 'shout'], [13, 'double_text']]);
      const tb = formatTraceback(m, { 3: MAPPER }, { cell: 3, executionOrder: 4 });
      assert.ok(tb.includes('mapper cell, line 6, in shout:\nCell In[4], line 6\n'), tb);
      assert.ok(tb.includes('----> 6         raise ValueError("no shouting at " + text)'), tb);
    });
  });
});
