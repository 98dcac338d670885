import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ROOT, listFiles } from '../harness.js';

const sources = (dir: string) => listFiles(path.join(ROOT, dir)).filter((f) => /\.m?ts$/.test(f)).map((f) => path.join(dir, f));
const imports = (file: string) => [...fs.readFileSync(path.join(ROOT, file), 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2]);

test('the engine and the pure extension core never import vscode', () => {
  for (const f of [...sources('formats'), ...sources('runtime'), ...sources('extension/core'), 'index.ts']) {
    assert.ok(!imports(f).includes('vscode'), `${f} imports vscode`);
  }
});

test('the webview imports only protocol types and its own files', () => {
  for (const f of sources('webview')) {
    for (const i of imports(f)) assert.ok(i.startsWith('./') || i === '../runtime/protocol.js', `${f} imports ${i}`);
  }
});

test('the engine never imports the extension', () => {
  for (const f of [...sources('formats'), ...sources('runtime')]) {
    for (const i of imports(f)) assert.ok(!/(^|\/)(extension|webview)\//.test(i), `${f} imports ${i}`);
  }
});
