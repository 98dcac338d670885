import * as os from 'node:os';
import { Command } from 'commander';
import { SkybatchError } from '../../formats/common/errors.js';
import { PACKAGE_VERSION } from '../build-id.js';
import { reportError } from '../control/error-channel.js';
import { runWorker } from '../worker/run-worker.js';
import { registerJobCommands } from './job-commands.js';
import { note } from './output.js';
import { registerPoolCommands } from './pool-commands.js';
import { runScript } from './run-script.js';

/**
 * `skybatch`: parses arguments and prints. What each command does is in runtime/control/
 * (shared with the extension) and, for `worker`, runtime/worker/run-worker.ts.
 */
const program = new Command('skybatch')
  .description('Map a function over a large dataset on a pool of reused workers.')
  .version(PACKAGE_VERSION)
  .showHelpAfterError()
  .enablePositionalOptions();

registerPoolCommands(program);
registerJobCommands(program);

program
  .command('run')
  .argument('<script>', 'a .ts or .js script')
  .argument('[args...]', "the script's own arguments")
  .allowUnknownOption()
  .passThroughOptions()
  .description('run a TypeScript script with top-level await, no build step')
  .action(async (script: string, args: string[]) => {
    process.exitCode = await runScript(script, args);
  });

program
  .command('worker')
  .requiredOption('--coordinator <url>', "the coordinator's ws:// URL")
  .option('--token <token>', 'the pool token (default: $SKYBATCH_TOKEN)')
  .option('--name <name>', 'worker name', `${os.hostname()}-${process.pid}`)
  .option('--workdir <dir>', 'working directory (setup runs here once)')
  .option('--ca <file>', 'PEM certificate to trust for a wss:// coordinator (default: $SKYBATCH_CA)')
  .option('--launch <id>', "which start of this worker it is, for a backend that fences earlier starts (e.g. a pod's UID); the coordinator's backend must know it")
  .description('start a worker by hand that joins a pool')
  .action((o: { coordinator: string; token?: string; name: string; workdir?: string; ca?: string; launch?: string }) => runWorker(o));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof SkybatchError) {
    reportError(err);
    note(`error [${err.code}]: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
