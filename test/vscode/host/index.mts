// The in-VS-Code test runner: VS Code loads out/vscode-tests/index.cjs as the
// extensionTestsPath and calls run(). Each result is printed as one `SKYBATCH_TEST` line
// (the driver reads them from the browser console) and the run's exit code reaches the
// driver through the workbench's codeAutomationExit.
import * as fs from 'node:fs';
import Mocha from 'mocha';
import { cellsSuite } from './cells.test.mjs';
import { commandsSuite } from './commands.test.mjs';
import { controllerSuite } from './controller.test.mjs';
import { serializerSuite } from './serializer.test.mjs';
import { treeSuite } from './tree.test.mjs';

export function run(): Promise<void> {
  // SKYBATCH_TEST_GREP (set on the driver) runs only the tests whose titles match.
  const mocha = new Mocha({ ui: 'bdd', timeout: 60_000, ...(process.env.SKYBATCH_TEST_GREP ? { grep: process.env.SKYBATCH_TEST_GREP } : {}), reporter: class {
    constructor(runner: Mocha.Runner) {
      const file = process.env.SKYBATCH_TEST_RESULTS;
      const say = (o: object) => {
        console.log(`SKYBATCH_TEST ${JSON.stringify(o)}`);
        if (file) fs.appendFileSync(file, JSON.stringify(o) + '\n');
      };
      runner.on('pass', (t) => say({ state: 'passed', title: t.fullTitle(), ms: t.duration }));
      runner.on('fail', (t, err: Error) => say({ state: 'failed', title: t.fullTitle(), error: String(err?.stack ?? err).slice(0, 2000) }));
      runner.on('end', () => say({ state: 'end', passed: runner.stats?.passes ?? 0, failed: runner.stats?.failures ?? 0 }));
    }
  } as unknown as Mocha.ReporterConstructor });
  for (const suite of [serializerSuite, controllerSuite, cellsSuite, commandsSuite, treeSuite]) mocha.suite.addSuite(suite(Mocha));
  return new Promise((resolve, reject) => mocha.run((failures) => (failures ? reject(new Error(`${failures} test(s) failed`)) : resolve())));
}
