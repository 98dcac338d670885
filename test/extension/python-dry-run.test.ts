import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { generateJobScript } from '../../extension/core/job-script.js';
import type { NotebookCellData } from '../../extension/core/notebook-format.js';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { mapStack, scriptMapOf } from '../../extension/core/script-map.js';
import { JobLauncher } from '../../extension/job-launcher.js';
import * as errors from '../../runtime/control/error-channel.js';
import { CLI, ROOT, Sandbox, jsonl } from '../harness.js';
import { DEBIAN_PYTHON_PATH } from '../engine/python-harness.js';

const RUNNER = pathToFileURL(path.join(ROOT, 'out', 'runtime', 'client', 'cell-run.js')).href;

const MAPPER = `import skybatch as sky


@sky.batch.remote_function
def double_text():
    for batch in sky.batch.load():
        print("python saw", len(batch), "items")
        for item in batch:
            if item["text"] == "boom":
                raise ValueError("no booms please")
        sky.batch.save_results([{"output": item["text"] * 2} for item in batch])
`;

const cells = (mapper: string): NotebookCellData[] => [
  { kind: 'code', role: 'reader', language: 'typescript', source: "new sky.JsonReader('in.jsonl')" },
  { kind: 'code', role: 'mapper', language: 'python', source: mapper },
  { kind: 'code', role: 'writers', language: 'typescript', source: "new sky.JsonWriter('out/out.jsonl')" },
  { kind: 'code', role: 'run', language: 'yaml', source: 'pool: pydry\nbatchSize: 3' },
];

/** Runs the mapper cell on its own as the extension does (its script, `skybatch run`, the launcher). */
async function dryRun(sb: Sandbox, dir: string, nb: NotebookCellData[]) {
  const settings = parseRunSettings('pool: pydry\nbatchSize: 3').settings!;
  const notebook = path.join(dir, 'py.skybatch');
  const script = generateJobScript(nb, settings, path.basename(notebook), { kind: 'mapper', runner: RUNNER });
  const file = path.join(dir, '.py.skybatch.mapper.ts');
  let out: { kind: string; results?: unknown[]; error?: { code: string; message: string; stack?: string } } | undefined;
  const lines: string[] = [];
  const launcher = new JobLauncher({
    engine: { cli: CLI, errors },
    notebookPath: notebook,
    scriptPath: file,
    script,
    env: { SKYBATCH_HOME: sb.home, ...DEBIAN_PYTHON_PATH },
    onEvent: () => undefined,
    onOutput: (line) => {
      if (line.startsWith('SKYBATCH_CELL ')) out = JSON.parse(line.slice('SKYBATCH_CELL '.length));
      else lines.push(line);
    },
  });
  await launcher.run();
  assert.ok(out, `no SKYBATCH_CELL line:\n${lines.join('\n')}`);
  return { out, lines, map: scriptMapOf(script, file) };
}

describe('a Python mapper cell run on its own', () => {
  const sb = new Sandbox('py-dry-run');
  after(() => sb.cleanup());

  test('dry-runs the Python mapper on one small batch in the mapper process, with no pool, writing nothing', async () => {
    const dir = path.join(sb.dir, 'ok');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'in.jsonl'), jsonl(['a', 'b', 'c', 'd'].map((text) => ({ text }))));
    const { out, lines } = await dryRun(sb, dir, cells(MAPPER));
    assert.equal(out.kind, 'mapper', JSON.stringify(out));
    assert.deepEqual(out.results, [{ output: 'aa' }, { output: 'bb' }, { output: 'cc' }]);
    assert.ok(lines.includes('python saw 3 items'), lines.join('\n'));
    assert.equal(fs.existsSync(path.join(dir, 'out')), false, 'a dry run writes no output');
    assert.equal(fs.existsSync(path.join(sb.home, 'pools')), false, 'no pool was started');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['in.jsonl'], 'no generated file is left behind');
  });

  test("a Python exception in the dry run maps to the mapper cell's raising line", async () => {
    const dir = path.join(sb.dir, 'boom');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'in.jsonl'), jsonl(['a', 'boom'].map((text) => ({ text }))));
    const { out, map } = await dryRun(sb, dir, cells(MAPPER));
    assert.equal(out.kind, 'error', JSON.stringify(out));
    assert.match(out.error!.message, /no booms please/);
    const m = mapStack(out.error!.stack ?? out.error!.message, map);
    assert.equal(m.origin?.cell, 1);
    assert.equal(m.origin?.cellLine, MAPPER.split('\n').findIndex((l) => l.includes('raise ValueError')));
  });
});
