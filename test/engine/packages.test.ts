import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ROOT, Sandbox, readJsonl } from '../harness.js';

const POOL = 'packages';

interface Pkg {
  name: string;
  version: string;
  files: Record<string, string>;
  deps?: string[];
}

/**
 * Small real packages of a user's project. `datapkg` (CommonJS) reads its word list through
 * `__dirname` and gets its separator from `wordsep`, a dependency the project does not list
 * itself; `shoutpkg` is CommonJS; `esmpkg` is ESM and reads a table through `import.meta.url`.
 */
const PACKAGES: Pkg[] = [
  {
    name: 'wordsep',
    version: '2.0.0',
    files: { 'package.json': JSON.stringify({ name: 'wordsep', version: '2.0.0', main: 'index.js' }), 'index.js': `module.exports = '\\n';\n` },
  },
  {
    name: 'datapkg',
    version: '1.0.0',
    deps: ['wordsep'],
    files: {
      'package.json': JSON.stringify({ name: 'datapkg', version: '1.0.0', main: 'index.js' }),
      'index.js': `const fs = require('fs');\nconst path = require('path');\nconst sep = require('wordsep');\nexports.words = () => fs.readFileSync(path.join(__dirname, 'data', 'words.txt'), 'utf8').split(sep).filter(Boolean);\n`,
      'data/words.txt': ['amber', 'basalt', 'cobalt', 'dune', 'ember', 'fjord', 'glacier', 'harbor', 'iris', 'jade', 'kelp'].join('\n') + '\n',
    },
  },
  {
    name: 'shoutpkg',
    version: '3.1.0',
    files: { 'package.json': JSON.stringify({ name: 'shoutpkg', version: '3.1.0', main: 'index.js' }), 'index.js': `module.exports = function shout(s) { return s.toUpperCase() + '!'; };\n` },
  },
  {
    name: 'esmpkg',
    version: '0.4.0',
    files: {
      'package.json': JSON.stringify({ name: 'esmpkg', version: '0.4.0', type: 'module', exports: './index.js' }),
      'index.js': `import { readFileSync } from 'node:fs';\nexport const table = JSON.parse(readFileSync(new URL('./table.json', import.meta.url), 'utf8'));\n`,
      'table.json': JSON.stringify({ amber: 1, cobalt: 3, ember: 5, glacier: 7, iris: 9, kelp: 11 }),
    },
  },
];
const DIRECT = ['datapkg', 'shoutpkg', 'esmpkg'];

function write(dir: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
}

/** npm's flat node_modules, or pnpm's: real files in node_modules/.pnpm/<name>@<v>/node_modules/<name>, symlinks elsewhere. */
function installPackages(project: string, layout: 'flat' | 'pnpm'): void {
  const nm = path.join(project, 'node_modules');
  for (const p of PACKAGES) {
    if (layout === 'flat') {
      write(path.join(nm, p.name), p.files);
      continue;
    }
    const store = path.join(nm, '.pnpm', `${p.name}@${p.version}`, 'node_modules');
    write(path.join(store, p.name), p.files);
    for (const dep of p.deps ?? []) {
      const d = PACKAGES.find((x) => x.name === dep)!;
      fs.symlinkSync(path.join('..', '..', `${d.name}@${d.version}`, 'node_modules', d.name), path.join(store, dep));
    }
    if (DIRECT.includes(p.name)) fs.symlinkSync(path.join('.pnpm', `${p.name}@${p.version}`, 'node_modules', p.name), path.join(nm, p.name));
  }
}

function jobScript(out: string): string {
  return `import * as sky from 'skybatch';
import { words } from 'datapkg';
import { table } from 'esmpkg';
import loud from './lib/legacy.cjs';

// Items come from a package that reads its data file through __dirname.
@sky.registry.INPUT_READER_REGISTRY.typeRegister('words')
class WordsReader extends sky.InputReader<Record<string, never>> {
  length() {
    return words().length;
  }
  async downloadBatch(start: number, end: number) {
    return words().slice(start, end + 1).map((word: string, i: number) => ({ index: start + i, word }));
  }
}

const tagWords = sky.remoteFunction(async function tagWords() {
  const { default: shout } = await import('shoutpkg');
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((x) => ({ index: x.index, word: x.word, shout: shout(String(x.word)), loud: loud(String(x.word)), n: table[String(x.word)] ?? 0 })));
  }
});

const job = await new sky.Dataset(new WordsReader('', {})).map(tagWords, { poolName: '${POOL}', batchSize: 3, output: new sky.JsonWriter(${JSON.stringify(out)}), retryBaseMs: 50 });
console.log('RESULT', job.jobId, job.status);
`;
}

/** The same computation in this one process, with the project's packages. */
async function expected(project: string): Promise<unknown[]> {
  const req = createRequire(path.join(project, 'package.json'));
  const words = (req('datapkg') as { words(): string[] }).words();
  const shout = req('shoutpkg') as (s: string) => string;
  const { table } = (await import(pathToFileURL(req.resolve('esmpkg')).href)) as { table: Record<string, number> };
  return words.map((word, index) => ({ index, word, shout: shout(word), loud: `${shout(word)}${shout(word)}`, n: table[word] ?? 0 }));
}

describe("the user's installed packages work on workers as they do for the user", () => {
  const sb = new Sandbox('packages');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
  });
  after(() => sb.cleanup());

  for (const layout of ['flat', 'pnpm'] as const) {
    test(`a reader whose items come from a package reading files via __dirname, CommonJS and ESM packages, ${layout} node_modules`, async () => {
      const project = path.join(sb.dir, layout);
      write(project, {
        'package.json': JSON.stringify({ name: `user-project-${layout}`, private: true, type: 'module' }),
        // The user's own CommonJS file, bundled: its require() resolves from the project on workers.
        'lib/legacy.cjs': `const shout = require('shoutpkg');\nmodule.exports = (s) => shout(s) + shout(s);\n`,
      });
      installPackages(project, layout);
      const out = path.join(project, 'out.jsonl');
      const script = path.join(project, 'job.ts');
      fs.writeFileSync(script, jobScript(out));
      assert.throws(() => createRequire(path.join(ROOT, 'package.json')).resolve('datapkg'), /Cannot find module/, "the packages are installed in the user's project only, not in skybatch's");
      const r = await sb.run(script);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /RESULT \d+ SUCCEEDED/);
      assert.deepEqual(readJsonl(out), await expected(project));
    });
  }

  test('a real ONNX model with onnxruntime-node (a native addon in the sample project only) scores rows as one process does', async () => {
    const sample = path.join(ROOT, 'samples', 'onnx-embed');
    assert.ok(
      fs.existsSync(path.join(sample, 'node_modules', 'onnxruntime-node', 'package.json')),
      'samples/onnx-embed/node_modules is installed (scripts/test.sh runs `npm ci` there; its .npmrc skips the CUDA download)',
    );
    assert.throws(() => createRequire(path.join(ROOT, 'package.json')).resolve('onnxruntime-node'), /Cannot find module/, "onnxruntime-node is not one of skybatch's own packages");
    const model = path.join(sb.dir, 'rebuilt.onnx');
    const built = await sb.run(path.join(sample, 'build_model.ts'), {}, [model]);
    assert.equal(built.code, 0, built.stderr);
    assert.deepEqual(fs.readFileSync(model), fs.readFileSync(path.join(sample, 'model.onnx')), 'the shipped model.onnx is what build_model.ts makes');

    const out = path.join(sb.dir, 'onnx', 'scores.jsonl');
    const r = await sb.run(path.join(sample, 'embed.ts'), { POOL, OUTPUT: out, BATCH_SIZE: '6' });
    assert.equal(r.code, 0, r.stderr);
    const reference = path.join(sb.dir, 'onnx', 'reference.jsonl');
    const local = await sb.run(path.join(sample, 'embed_local.ts'), { BATCH_SIZE: '6' }, [reference]);
    assert.equal(local.code, 0, local.stderr);
    const rows = readJsonl(out) as { text: string; score: number; embedding: number[] }[];
    assert.equal(rows.length, 40);
    assert.ok(rows.every((row) => row.score > 0 && row.score < 1 && row.embedding.length === 8));
    assert.deepEqual(rows, readJsonl(reference));
  });

  test('a package missing where a worker looks for it is a clear error naming the package, the worker and the fix', async () => {
    const project = path.join(sb.dir, 'bare');
    write(project, { 'package.json': JSON.stringify({ name: 'bare-project', private: true, type: 'module' }), 'in.jsonl': '{"t":1}\n{"t":2}\n' });
    const script = path.join(project, 'job.ts');
    fs.writeFileSync(
      script,
      `import * as sky from 'skybatch';
const m = sky.remoteFunction(async function m() {
  const { default: shout } = await import('shoutpkg');
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ v: shout(String(x.t)) })));
});
await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(project, 'in.jsonl'))})).map(m, { poolName: '${POOL}', batchSize: 1, output: new sky.JsonWriter(${JSON.stringify(path.join(project, 'out.jsonl'))}) });
`,
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_PACKAGE_MISSING/);
    assert.match(r.stderr, /package 'shoutpkg', imported by the job's script .*job\.ts, cannot be found on worker local-\d/);
    assert.match(r.stderr, /npm install shoutpkg/);
  });
});
