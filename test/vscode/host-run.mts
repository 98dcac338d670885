import * as fs from 'node:fs';
import type { Browser } from 'playwright-core';
import { workbenchUrl, type Server } from './code-server.mjs';

export interface TestResult {
  state: 'passed' | 'failed';
  title: string;
  error?: string;
  ms?: number;
}

/**
 * Runs the mocha suites inside VS Code's extension host (extensionTestsPath) and collects
 * their results from the file the in-host reporter appends to; the workbench reports the
 * runner's exit code through codeAutomationExit.
 */
export async function runHostTests(browser: Browser, server: Server, opts: { folder: string; extDir: string; testsPath: string; resultsFile: string; timeoutMs: number; log: (l: string) => void }): Promise<TestResult[]> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const seen = new Set<string>();
  const onLine = (line: string) => {
    const note = /SKYBATCH_NOTE (.*)/.exec(line);
    if (note && !seen.has(line)) (seen.add(line), opts.log(`    note: ${note[1]}`));
    const m = /SKYBATCH_TEST (\{.*\})/.exec(line);
    if (!m || seen.has(m[1])) return;
    seen.add(m[1]);
    const r = JSON.parse(m[1]) as TestResult & { state: string };
    if (r.state === 'passed' || r.state === 'failed') opts.log(`  ${r.state === 'passed' ? 'ok  ' : 'FAIL'} host: ${r.title}${r.ms ? ` (${r.ms} ms)` : ''}`);
  };
  page.on('console', (msg) => onLine(msg.text()));
  let exit!: (code: number) => void;
  const exited = new Promise<number>((r) => (exit = r));
  await page.exposeFunction('codeAutomationLog', (_type: string, args: unknown[]) => onLine((args ?? []).map(String).join(' ')));
  await page.exposeFunction('codeAutomationExit', (code: number) => exit(code));
  await page.goto(workbenchUrl(server, opts.folder, opts.extDir, opts.testsPath));
  const timedOut = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), opts.timeoutMs));
  const how = await Promise.race([exited, timedOut]);
  await page.close().catch(() => undefined);
  const results: TestResult[] = fs.existsSync(opts.resultsFile)
    ? fs.readFileSync(opts.resultsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TestResult).filter((r) => r.state === 'passed' || r.state === 'failed')
    : [];
  if (how === 'timeout') results.push({ state: 'failed', title: `host tests finished within ${opts.timeoutMs / 1000} s` });
  else if (how !== 0 && !results.some((r) => r.state === 'failed')) results.push({ state: 'failed', title: `host test runner exited with ${how}` });
  return results;
}
