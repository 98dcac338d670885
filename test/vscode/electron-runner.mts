// Runs the in-VS-Code suites with @vscode/test-electron, for machines that can download
// VS Code (this CI cannot; scripts/vscode-tests.sh uses code-server instead and nothing
// depends on this file). Build first: npm run build && npm run build:extension, then
//   node --experimental-strip-types test/vscode/electron-runner.mts   (Node 22+), or bundle it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTests } from '@vscode/test-electron';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-electron-'));
const ws = path.join(run, 'ws');
fs.cpSync(path.join(root, 'samples'), path.join(ws, 'samples'), { recursive: true, filter: (p) => !p.includes('/output') });
process.env.SKYBATCH_HOME = path.join(run, 'home');
process.env.SKYBATCH_TEST_WS = ws;
try {
  await runTests({
    extensionDevelopmentPath: root,
    extensionTestsPath: path.join(root, 'out/vscode-tests/index.cjs'),
    launchArgs: [ws, '--disable-extensions', '--disable-workspace-trust', `--user-data-dir=${path.join(run, 'data')}`],
  });
} finally {
  fs.rmSync(run, { recursive: true, force: true });
}
