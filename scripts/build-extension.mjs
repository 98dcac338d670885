// Builds the VS Code extension: type-checks it (tsconfig.extension.json), bundles
// extension/extension.ts to out/extension/extension.cjs (CommonJS, for the extension
// host; `vscode` and the engine's npm packages stay external) and its typed-cells worker
// thread to out/extension/cell-types-worker.cjs, webview/ to out/webview/
// (the job panel's script and the cell output renderer),
// copies the webview toolkit and static files there, and bundles the in-VS-Code tests to
// out/vscode-tests/. Needs the engine built first (`npm run build`): the extension loads
// out/runtime at run time.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = (...p) => path.join(root, 'out', ...p);
const skipCheck = process.argv.includes('--no-check');

if (!skipCheck) execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.extension.json')], { stdio: 'inherit' });

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const external = ['vscode', ...Object.keys(pkg.dependencies ?? {})];

await Promise.all([
  ...['extension', 'cell-types-worker'].map((name) =>
    esbuild.build({
      entryPoints: [path.join(root, `extension/${name}.ts`)],
      outfile: out('extension', `${name}.cjs`),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      sourcemap: true,
      external,
      logLevel: 'warning',
    }),
  ),
  esbuild.build({
    entryPoints: [path.join(root, 'webview/job-panel.ts')],
    outfile: out('webview', 'job-panel.js'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    logLevel: 'warning',
  }),
  esbuild.build({
    entryPoints: [path.join(root, 'webview/output-renderer.ts')],
    outfile: out('webview', 'output-renderer.js'),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    logLevel: 'warning',
  }),
  esbuild.build({
    entryPoints: [path.join(root, 'test/vscode/host/index.mts')],
    outfile: out('vscode-tests', 'index.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'inline',
    external,
    logLevel: 'error',
  }),
  esbuild.build({
    entryPoints: [path.join(root, 'test/vscode/driver.mts')],
    outfile: out('vscode-tests', 'driver.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['playwright-core'],
    logLevel: 'warning',
  }),
]);

for (const f of ['job-panel.css', 'icon.svg', 'icon.png']) fs.copyFileSync(path.join(root, 'webview', f), out('webview', f));
fs.copyFileSync(path.join(root, 'node_modules/@vscode/webview-ui-toolkit/dist/toolkit.min.js'), out('webview', 'toolkit.min.js'));
console.log('built out/extension/extension.cjs, out/webview/, out/vscode-tests/');
