// Runs the VS Code tests in a real VS Code (code-server 1.100 in Debian's Chromium):
// the extension core's node tests, the mocha suites inside the extension host, and the UI
// steps with one screenshot each under test-results/vscode/. Prints `N passed, M failed`.
// Every run has its own temp dir and SKYBATCH_HOME and stops every pool it started.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { killPools, startCodeServer, workbenchUrl, type Server } from './code-server.mjs';
import { runHostTests, type TestResult } from './host-run.mjs';
import { runUiSteps, uiSteps, vsixSampleSteps } from './ui-steps.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const only = process.argv.slice(2);
const want = (what: string) => only.length === 0 || only.includes(what);
const log = (l: string) => console.log(l);

const FAILING_NOTEBOOK = `# A job that fails on purpose

Item 7 throws, with one attempt per batch: the job fails and its finished batches wait for "Sky Batch: Recover Partial Results".

\`\`\`ts reader
new sky.JsonReader('data.jsonl')
\`\`\`

\`\`\`ts mapper
for await (const batch of sky.load()) {
  if (batch.some((item) => item.n === 7)) throw new Error('deliberate failure on item 7');
  await sky.saveResults(batch.map((item) => ({ n: item.n, square: (item.n as number) ** 2 })));
}
\`\`\`

\`\`\`ts writers
new sky.JsonWriter('output/output.jsonl')
\`\`\`

\`\`\`yaml run
pool: image-pool
batchSize: 2
maxAttempts: 1
poolFile: ../images/pool.yaml
\`\`\`
`;

/** The failing job, fixed: it succeeds and writes the output the failed job would have (the recover question's newer job). */
const FIXED_NOTEBOOK = FAILING_NOTEBOOK.replace('# A job that fails on purpose', '# The same job, fixed').replace("  if (batch.some((item) => item.n === 7)) throw new Error('deliberate failure on item 7');\n", '');

/** 150 batches of 400 ms each on the pool's 2 workers (about 30 s): long enough to reload the page mid-job and see both reattach (about 7 s) while it runs. */
const SLOW_NOTEBOOK = `# A slow job, for the reload test

\`\`\`ts reader
new sky.JsonReader('data.jsonl')
\`\`\`

\`\`\`ts mapper
for await (const batch of sky.load()) {
  await new Promise((r) => setTimeout(r, 400));
  await sky.saveResults(batch.map((item) => ({ n: item.n })));
}
\`\`\`

\`\`\`ts writers
new sky.JsonWriter('output/output.jsonl')
\`\`\`

\`\`\`yaml run
pool: image-pool
batchSize: 1
poolFile: ../images/pool.yaml
\`\`\`
`;

/** The Python quickstart sample on the UI run's pool: a notebook whose mapper cell is Python. */
const PYTHON_NOTEBOOK = fs.readFileSync(path.join(ROOT, 'samples', 'python-quickstart', 'python-quickstart.skybatch'), 'utf8').replace('pool: my-pool\nbatchSize: 2', 'pool: image-pool\nbatchSize: 2\npoolFile: ../images/pool.yaml');

function prepareWorkspaces(run: string): { hostWs: string; uiWs: string } {
  const hostWs = path.join(run, 'host-ws');
  const uiWs = path.join(run, 'ui-ws');
  fs.mkdirSync(path.join(run, 'ws'), { recursive: true });
  for (const s of ['quickstart', 'custom-formats', 'images']) {
    for (const ws of [hostWs, uiWs]) {
      const dir = path.join(ws, 'samples', s);
      fs.mkdirSync(dir, { recursive: true });
      for (const f of fs.readdirSync(path.join(ROOT, 'samples', s))) {
        if (/\.(skybatch|jsonl|yaml)$/.test(f)) fs.copyFileSync(path.join(ROOT, 'samples', s, f), path.join(dir, f));
      }
    }
  }
  const failing = path.join(uiWs, 'samples', 'failing');
  fs.mkdirSync(failing, { recursive: true });
  fs.writeFileSync(path.join(failing, 'failing.skybatch'), FAILING_NOTEBOOK);
  fs.writeFileSync(path.join(failing, 'fixed.skybatch'), FIXED_NOTEBOOK);
  fs.writeFileSync(path.join(failing, 'data.jsonl'), Array.from({ length: 12 }, (_, n) => JSON.stringify({ n })).join('\n') + '\n');
  const py = path.join(uiWs, 'samples', 'python');
  fs.mkdirSync(py, { recursive: true });
  fs.writeFileSync(path.join(py, 'python.skybatch'), PYTHON_NOTEBOOK);
  fs.copyFileSync(path.join(ROOT, 'samples', 'python-quickstart', 'data.jsonl'), path.join(py, 'data.jsonl'));
  // A pool nobody started and no pool file: the notebook offers ways on, not a dead end.
  const nopool = path.join(uiWs, 'samples', 'nopool');
  fs.mkdirSync(nopool, { recursive: true });
  fs.writeFileSync(path.join(nopool, 'nopool.skybatch'), FIXED_NOTEBOOK.replace('pool: image-pool', 'pool: nowhere-pool').replace('poolFile: ../images/pool.yaml\n', ''));
  fs.writeFileSync(path.join(nopool, 'data.jsonl'), Array.from({ length: 4 }, (_, n) => JSON.stringify({ n })).join('\n') + '\n');
  const slow = path.join(uiWs, 'samples', 'slow');
  fs.mkdirSync(slow, { recursive: true });
  fs.writeFileSync(path.join(slow, 'slow.skybatch'), SLOW_NOTEBOOK);
  fs.writeFileSync(path.join(slow, 'data.jsonl'), Array.from({ length: 150 }, (_, n) => JSON.stringify({ n })).join('\n') + '\n');
  return { hostWs, uiWs };
}

/**
 * A private copy of the built extension (what the .vsix ships, plus the test bundle), so a
 * rebuild of the working tree during the run (the engine is developed alongside) cannot
 * change the code under test halfway; node_modules is linked, not copied.
 */
function stageExtension(run: string): string {
  const dir = path.join(run, 'extension');
  for (const p of ['package.json', 'bin', 'out/index.js', 'out/index.d.ts', 'out/formats', 'out/runtime', 'out/extension', 'out/webview', 'out/vscode-tests/index.cjs', 'webview/icon.png', 'webview/icon.svg', 'python']) {
    fs.cpSync(path.join(ROOT, p), path.join(dir, p), { recursive: true });
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

function nodeTests(): TestResult[] {
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', path.join(ROOT, 'out/test/extension/')], { encoding: 'utf8', cwd: ROOT });
  const results: TestResult[] = [];
  // Leaf tests are the indented `ok`/`not ok` lines; top-level ones are suites or single tests.
  const lines = r.stdout.split('\n');
  lines.forEach((line, i) => {
    const m = /^ *(ok|not ok) \d+ - (.*)$/.exec(line);
    if (!m) return;
    const end = lines.findIndex((l, j) => j > i && /^ *\.\.\.$/.test(l));
    if (lines.slice(i + 1, end).some((l) => /type: 'suite'/.test(l))) return;
    results.push({ state: m[1] === 'ok' ? 'passed' : 'failed', title: `node: ${m[2]}`, error: m[1] === 'ok' ? undefined : lines.slice(i + 1, end).join('\n') });
    log(`  ${m[1] === 'ok' ? 'ok  ' : 'FAIL'} node: ${m[2]}`);
  });
  if (r.status !== 0 && !results.some((x) => x.state === 'failed')) results.push({ state: 'failed', title: 'node tests', error: r.stdout + r.stderr });
  return results;
}

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/** The .vsix under test: SKYBATCH_VSIX, else one made now with `npx @vscode/vsce package` (scripts/package-extension.sh). */
function vsixUnderTest(): string {
  if (process.env.SKYBATCH_VSIX) return path.resolve(process.env.SKYBATCH_VSIX);
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/package-extension.sh')], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`packaging the extension failed:\n${r.stdout.slice(-3000)}${r.stderr.slice(-3000)}`);
  const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return path.join(ROOT, `skybatch-${version}.vsix`);
}

async function main(): Promise<number> {
  const t0 = Date.now();
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-vscode-'));
  const shots = path.join(ROOT, 'test-results', 'vscode');
  if (want('ui')) fs.rmSync(shots, { recursive: true, force: true });
  fs.mkdirSync(shots, { recursive: true });
  const results: TestResult[] = [];
  const servers: { server: Server; home: string }[] = [];
  let browser;
  try {
    if (want('node')) results.push(...nodeTests());
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    if (want('host') || want('ui')) {
      const { hostWs, uiWs } = prepareWorkspaces(run);
      const home = path.join(run, 'skybatch-home');
      const resultsFile = path.join(run, 'host-results.jsonl');
      const extDir = stageExtension(run);
      const server = await startCodeServer(ROOT, run, { SKYBATCH_HOME: home, SKYBATCH_TEST_WS: hostWs, SKYBATCH_TEST_RESULTS: resultsFile });
      servers.push({ server, home });
      if (want('host')) {
        log(`extension-host tests (code-server ${server.url})`);
        results.push(...(await runHostTests(browser, server, { folder: hostWs, extDir, testsPath: path.join(extDir, 'out/vscode-tests/index.cjs'), resultsFile, timeoutMs: 300_000, log })));
      }
      if (want('ui')) {
        log('UI tests');
        const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
        await page.goto(workbenchUrl(server, uiWs, extDir));
        results.push(...(await runUiSteps({ page, shots, log, ws: uiWs }, uiSteps({ pool: 'image-pool' }))));
        await page.close();
      }
    }
    if (want('vsix')) {
      // The packaged extension, installed the way a user installs it, in a VS Code of its own:
      // a person's first steps (open the image sample, start the pool, run it, see images).
      const vsix = vsixUnderTest();
      log(`UI tests on the installed ${path.basename(vsix)} (${(fs.statSync(vsix).size / 1e6).toFixed(1)} MB)`);
      const sub = path.join(run, 'vsix');
      const { uiWs } = prepareWorkspaces(sub);
      const home = path.join(sub, 'skybatch-home');
      const server = await startCodeServer(ROOT, sub, { SKYBATCH_HOME: home, SKYBATCH_VSIX: vsix });
      servers.push({ server, home });
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(workbenchUrl(server, uiWs, undefined));
      const vsixShots = path.join(shots, 'vsix');
      fs.rmSync(vsixShots, { recursive: true, force: true });
      fs.mkdirSync(vsixShots, { recursive: true });
      results.push(...(await runUiSteps({ page, shots: vsixShots, log, label: 'vsix', ws: uiWs }, [...uiSteps({ pool: 'image-pool' }).slice(0, 7), ...vsixSampleSteps()])));
      await page.close();
    }
  } catch (err) {
    results.push({ state: 'failed', title: 'test driver', error: String((err as Error).stack ?? err) });
  } finally {
    await browser?.close().catch(() => undefined);
    for (const { server, home } of servers) {
      await server.stop();
      killPools(home);
    }
    for (const [i, { server }] of servers.entries()) fs.copyFileSync(server.log, path.join(shots, i ? `code-server-${i + 1}.log` : 'code-server.log'));
  }
  const failed = results.filter((r) => r.state === 'failed');
  for (const f of failed) log(`\nFAILED ${f.title}\n${(f.error ?? '').split('\n').slice(0, 25).join('\n')}`);
  if (!failed.length) fs.rmSync(run, { recursive: true, force: true });
  else log(`(kept ${run} for inspection)`);
  log(`\nvscode tests took ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${path.relative(ROOT, shots)}/`);
  log(`${results.length - failed.length} passed, ${failed.length} failed`);
  return failed.length ? 1 : 0;
}

// exit now: a lingering browser or socket handle must not hold up CI for minutes
process.exit(await main());
