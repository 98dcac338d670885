import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { SkybatchError } from '../../formats/errors.js';
import { PACKAGE_VERSION } from '../build-id.js';
import { waitForJob } from '../client/wait-for-job.js';
import { WorkerAgent } from '../worker/agent.js';
import { cancelJob, jobLogs, listJobs, recoverJob, recoverSummary, resumeJob } from './job-commands.js';
import { applyPool, describeResources, poolDown, poolStatus } from './pool-commands.js';
import { runScript } from './run-script.js';

const say = (line: string) => process.stdout.write(line + '\n');
const note = (line: string) => process.stderr.write(line + '\n');

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

const program = new Command('skybatch')
  .description('Map a function over a large dataset on a pool of reused workers.')
  .version(PACKAGE_VERSION)
  .showHelpAfterError()
  .enablePositionalOptions();

const pool = program.command('pool').description('create, inspect and tear down worker pools');

pool
  .command('apply')
  .argument('<pool.yaml>', 'the pool file: pool.workers, resources, setup, envs')
  .requiredOption('--pool <name>', 'pool name')
  .option('-y, --yes', 'do not ask for confirmation', false)
  .option('--no-wait', 'return before the workers finish setup')
  .description('create or update a pool; its workers stay up across jobs')
  .action(async (file: string, o: { pool: string; yes: boolean; wait: boolean }) => {
    const s = await applyPool(file, o.pool, { yes: o.yes, wait: o.wait, log: note });
    const ready = s.workers.filter((w) => w.state === 'idle' || w.state === 'busy').length;
    say(`pool ${o.pool}: ${ready}/${s.workersWanted} workers ready (coordinator ${s.url}, pid ${s.pid})`);
  });

pool
  .command('status')
  .argument('[name]', 'one pool (default: all)')
  .description('show pools, their workers and what each is doing')
  .action(async (name?: string) => {
    const pools = await poolStatus(name);
    if (!pools.length) {
      say('no pools');
      return;
    }
    for (const p of pools) {
      if (!p.running || !p.status) {
        say(`${p.pool}: not running`);
        continue;
      }
      const s = p.status;
      say(`${p.pool}: running, ${s.workers.length}/${s.workersWanted} workers, coordinator ${s.url} (pid ${s.pid})`);
      // STATE is the coordinator's view of a worker's connection; ENGINE its backend's (ssh session, process).
      const engine = new Map((s.backend?.workers ?? []).map((b) => [b.name, b]));
      const rows = [['WORKER', 'HOST', 'STATE', 'JOB', 'DEVICES', 'BATCHES', 'ENGINE']];
      for (const w of s.workers) {
        rows.push([w.name, w.host, w.state, w.jobId ?? '-', describeResources(w.resources), w.batches.map((b) => `[${b[0]},${b[1]}]`).join(' ') || '-', engine.get(w.name)?.state ?? '-']);
      }
      const connected = new Set(s.workers.filter((w) => w.state !== 'gone').map((w) => w.name));
      for (const b of engine.values()) if (!connected.has(b.name)) rows.push([b.name, b.host, '-', '-', '-', '-', b.state]);
      say(table(rows));
      for (const w of s.workers) for (const n of w.resources?.notes ?? []) say(`note: ${w.name}: ${n}`);
      for (const b of engine.values()) if (b.reason && b.state !== 'running') say(`${b.state}: ${b.name} on ${b.host}: ${b.reason} (since ${b.since})`);
    }
  });

pool
  .command('down')
  .argument('<name>', 'pool name')
  .option('-y, --yes', 'do not ask for confirmation', false)
  .description('stop the pool and its workers (job records are kept for recovery)')
  .action(async (name: string, o: { yes: boolean }) => {
    if (await poolDown(name, { ...o, log: note })) say(`pool ${name} is down`);
  });

const jobs = program.command('jobs').description('list, cancel and read the logs of jobs');

jobs
  .command('queue')
  .option('--pool <name>', 'only this pool')
  .option('--json', 'print a JSON array of job summaries (for scripts)', false)
  .description('list jobs with their status and progress')
  .action(async (o: { pool?: string; json: boolean }) => {
    const list = await listJobs(o.pool);
    if (o.json) {
      say(JSON.stringify(list, null, 2));
      return;
    }
    if (!list.length) {
      say('no jobs');
      return;
    }
    const rows = [['ID', 'POOL', 'STATUS', 'BATCHES', 'ITEMS', 'SUBMITTED', 'SCRIPT']];
    for (const j of list) {
      rows.push([j.jobId, j.pool, j.status, `${j.batchesDone}/${j.batchesTotal}`, `${j.itemsDone}/${j.itemsTotal}`, j.createdAt.replace('T', ' ').slice(0, 19), path.basename(j.scriptPath)]);
    }
    say(table(rows));
  });

jobs
  .command('cancel')
  .argument('<jobId>')
  .description('cancel a job; the pool keeps running and finished batches are kept')
  .action(async (jobId: string) => {
    const j = await cancelJob(jobId);
    say(`job ${jobId}: ${j.status} (${j.batchesDone}/${j.batchesTotal} batches done); recover them with: skybatch recover ${jobId}`);
  });

jobs
  .command('resume')
  .argument('<jobId>')
  .option('--no-wait', 'return once the job is queued')
  .description('run the batches of a failed or cancelled job that did not finish')
  .action(async (jobId: string, o: { wait: boolean }) => {
    const j = await resumeJob(jobId, o);
    say(`job ${jobId} ${o.wait ? j.status : 'resumed'}`);
  });

jobs
  .command('wait')
  .argument('<jobId>')
  .option('--pool <name>', "the job's pool (default: the one its record names)")
  .description('wait for a job to end, showing its progress; exits 0 only if it succeeded')
  .action(async (jobId: string, o: { pool?: string }) => {
    const j = await waitForJob(jobId, { poolName: o.pool });
    say(`job ${jobId}: ${j.status} (${j.summary?.batchesDone}/${j.summary?.batchesTotal} batches, ${j.summary?.itemsDone} items) into ${j.summary?.outputs.join(', ')}`);
  });

jobs
  .command('logs')
  .argument('<jobId>')
  .option('-f, --follow', 'keep printing until the job ends', false)
  .description("print a job's log: mapper output and what the coordinator did")
  .action(async (jobId: string, o: { follow: boolean }) => jobLogs(jobId, o.follow, say));

program
  .command('recover')
  .argument('<jobId>')
  .option('--keep-temp', 'keep the temporary batch files (for debugging)', false)
  .description("merge a failed or cancelled job's finished batches into its outputs, then clean up")
  .action(async (jobId: string, o: { keepTemp: boolean }) => {
    const { report } = await recoverJob(jobId, { keepTemp: o.keepTemp, log: note });
    say(recoverSummary(report));
  });

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
  .description('start a worker by hand that joins a pool')
  .action(async (o: { coordinator: string; token?: string; name: string; workdir?: string; ca?: string }) => {
    const token = o.token ?? process.env.SKYBATCH_TOKEN;
    if (!token) throw new SkybatchError('SKYBATCH_E_AUTH', 'a pool token is needed: --token or $SKYBATCH_TOKEN');
    const caFile = o.ca ?? process.env.SKYBATCH_CA;
    const agent = new WorkerAgent({
      url: o.coordinator,
      token,
      name: o.name,
      workdir: path.resolve(o.workdir ?? path.join(os.homedir(), '.skybatch-worker', o.name)),
      ca: caFile ? fs.readFileSync(caFile) : undefined,
    });
    process.on('SIGTERM', () => agent.shutdown(0));
    process.on('SIGINT', () => agent.shutdown(0));
    agent.start();
    await agent.done;
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof SkybatchError) {
    note(`error [${err.code}]: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
