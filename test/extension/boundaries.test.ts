import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, listFiles } from '../harness.js';

const sources = (dir: string) => listFiles(path.join(ROOT, dir)).filter((f) => /\.m?ts$/.test(f)).map((f) => path.join(dir, f));
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
/** Every module specifier a file imports or re-exports: static, side-effect only, or `import()` of a literal. */
const importsIn = (text: string) =>
  [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|(?:^|\n)\s*import\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
const imports = (file: string) => importsIn(read(file));

/** Where a relative specifier of `file` points, from the repository root, without its extension (`runtime/store/job-store`). */
function target(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  return path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.(m?js|m?ts)$/, '');
}
const targets = (file: string, text: string) => importsIn(text).flatMap((s) => target(file, s) ?? []);

/** A rule: the violations it finds in one file's text, given the file's path from the root. */
type Rule = (file: string, text: string) => string[];

/**
 * The extension drives the engine through runtime/control/ (the same calls as the CLI) and
 * the client connection; it never reaches into the coordinator or the CLI, neither by
 * import nor by a path its engine loader imports at run time.
 */
const extensionUsesControl: Rule = (file, text) =>
  [...text.matchAll(/['"](?:[\w./]*\/)?(runtime\/(?:coordinator|cli)\/[\w./-]*)['"]/g)].map((m) => `${file} imports or loads ${m[1]}`);

/** The package's index.ts re-exports the runtime; only package-api.ts, which hands it to hosted code, names it. */
const PACKAGE_API = 'runtime/package-api.ts';
const runtimeNeverImportsIndex: Rule = (file, text) => {
  if (file === PACKAGE_API) return [];
  const urls = [...text.matchAll(/new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g)].map((m) => m[1]);
  return [...importsIn(text), ...urls].flatMap((s) => (target(file, s) === 'index' ? [`${file} imports the package index (${s}); go through ${PACKAGE_API}`] : []));
};

/**
 * store/ is the floor the coordinator, control and the extension read from: it imports none
 * of them. control/ takes from the coordinator only what it runs itself: the reduce step
 * (`recover`), the on-disk cancel of a dead pool's jobs (`pool down`), and the node flags
 * the coordinator process starts with (`pool apply`).
 */
const CONTROL_MAY_USE = new Set(['runtime/coordinator/reducer', 'runtime/coordinator/pool-down', 'runtime/coordinator/node-flags']);
const storeAndControlStayNarrow: Rule = (file, text) =>
  targets(file, text).flatMap((t) => {
    if (file.startsWith('runtime/store/') && /^runtime\/(coordinator|control|cli|client|worker|backends)\//.test(t)) return [`${file} imports ${t}`];
    if (file.startsWith('runtime/control/') && /^runtime\/cli\//.test(t)) return [`${file} imports ${t}`];
    if (file.startsWith('runtime/control/') && /^runtime\/coordinator\//.test(t) && !CONTROL_MAY_USE.has(t)) return [`${file} imports coordinator internal ${t}`];
    return [];
  });

/** The CLI parses and prints: what it does goes through control/ (or the client, the worker entry), never the coordinator or the store directly. */
const cliGoesThroughControl: Rule = (file, text) => (file.startsWith('runtime/cli/') ? targets(file, text).filter((t) => /^runtime\/(coordinator|store)\//.test(t)).map((t) => `${file} imports ${t}`) : []);

/** Storage (local, s3, gcs) stands on formats/common/ only; the write-scope guard wraps it from above (formats/storage-for.ts). */
const storageStandsOnCommon: Rule = (file, text) =>
  targets(file, text).flatMap((t) => {
    if (file.startsWith('formats/storage/') && !/^formats\/(storage|common)\//.test(t)) return [`${file} imports ${t}`];
    if (file.startsWith('formats/common/') && !t.startsWith('formats/common/')) return [`${file} imports ${t}`];
    return [];
  });

const violations = (rule: Rule, files: string[]) => files.flatMap((f) => rule(f, read(f)));

test('the engine and the pure extension core never import vscode', () => {
  for (const f of [...sources('formats'), ...sources('runtime'), ...sources('extension/core'), 'index.ts']) {
    assert.ok(!imports(f).includes('vscode'), `${f} imports vscode`);
  }
});

test('the webview imports only protocol types, the job-events fold and its own files', () => {
  for (const f of sources('webview')) {
    for (const i of imports(f)) assert.ok(i.startsWith('./') || i === '../runtime/protocol.js' || i === '../runtime/job-events.js', `${f} imports ${i}`);
  }
});

test('job-events stays pure, so the webview bundle can carry it', () => {
  for (const i of imports('runtime/job-events.ts')) assert.equal(i, './protocol.js', `runtime/job-events.ts imports ${i}`);
  assert.doesNotMatch(fs.readFileSync(path.join(ROOT, 'runtime/job-events.ts'), 'utf8'), /^import (?!type )/m, 'job-events imports types only');
});

test('the engine never imports the extension', () => {
  for (const f of [...sources('formats'), ...sources('runtime')]) {
    for (const i of imports(f)) assert.ok(!/(^|\/)(extension|webview)\//.test(i), `${f} imports ${i}`);
  }
});

test('the extension never imports or loads runtime/coordinator or runtime/cli', () => {
  assert.deepEqual(violations(extensionUsesControl, sources('extension')), []);
  // the rule sees what it must: a type import, a side-effect import, a path the engine loader imports
  assert.equal(extensionUsesControl('extension/x.ts', "import type * as J from '../runtime/coordinator/job-run.js';").length, 1);
  assert.equal(extensionUsesControl('extension/commands/x.ts', "import '../../runtime/cli/main.js';").length, 1);
  assert.equal(extensionUsesControl('extension/engine.ts', "load<typeof P>('runtime/cli/pool-commands.js')").length, 1);
  assert.deepEqual(extensionUsesControl('extension/engine.ts', "load<typeof P>('runtime/control/pools.js')"), []);
});

test('the runtime never imports the package index.ts, except package-api.ts which injects it into hosted code', () => {
  assert.deepEqual(violations(runtimeNeverImportsIndex, [...sources('formats'), ...sources('runtime')]), []);
  assert.ok(fs.existsSync(path.join(ROOT, PACKAGE_API)));
  assert.equal(runtimeNeverImportsIndex('runtime/bundle-loader.ts', "const runtime = await import('../index.js');").length, 1);
  assert.equal(runtimeNeverImportsIndex('runtime/client/bundle.ts', "import * as sky from '../../index.js';").length, 1);
  assert.equal(runtimeNeverImportsIndex('runtime/host-packages.ts', "const u = new URL('../index.js', import.meta.url).href;").length, 1);
  assert.deepEqual(runtimeNeverImportsIndex('runtime/sky-batch.ts', "import { JsonReader } from '../formats/index.js';"), []);
});

test('store/ imports no coordinator, control or CLI; control/ only the coordinator parts it runs; the CLI goes through control/', () => {
  const runtime = sources('runtime');
  assert.deepEqual(violations(storeAndControlStayNarrow, runtime), []);
  assert.deepEqual(violations(cliGoesThroughControl, runtime), []);
  assert.equal(storeAndControlStayNarrow('runtime/store/job-view.ts', "import { JobRun } from '../coordinator/job-run.js';").length, 1);
  assert.equal(storeAndControlStayNarrow('runtime/control/jobs.ts', "import { JobRun } from '../coordinator/job-run.js';").length, 1);
  assert.equal(storeAndControlStayNarrow('runtime/control/jobs.ts', "import { say } from '../cli/output.js';").length, 1);
  assert.deepEqual(storeAndControlStayNarrow('runtime/control/jobs.ts', "import { runReduce } from '../coordinator/reducer.js';"), []);
  assert.equal(cliGoesThroughControl('runtime/cli/job-commands.ts', "import { readJournal } from '../store/job-store.js';").length, 1);
});

test('storage stands on the common floor (errors, path algebra) and nothing else of skybatch; the floor on nothing', () => {
  assert.deepEqual(violations(storageStandsOnCommon, [...sources('formats/storage'), ...sources('formats/common')]), []);
  assert.equal(storageStandsOnCommon('formats/storage/factory.ts', "import { assertWritable } from '../write-scope.js';").length, 1);
  assert.equal(storageStandsOnCommon('formats/common/paths.ts', "import { schemeOf } from '../storage/storage.js';").length, 1);
  assert.deepEqual(storageStandsOnCommon('formats/storage/s3.ts', "import { splitBucketPath } from '../common/paths.js';\nimport { Upload } from '@aws-sdk/lib-storage';"), []);
});
