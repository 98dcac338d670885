/**
 * `node reduce-process.js JOB_ID [--recover] [--no-cleanup]`: takes the job's reduce lock,
 * loads the job's bundle (so the user's own writer classes are registered; not when every
 * writer is built-in), then publishes every writer's output and cleans up (see
 * reduce-step.ts). Its last stdout line is
 * `SKYBATCH_REDUCE {report}`; a failure is one `SKYBATCH_ERROR {json}` line on stderr and
 * exit code 1.
 */
import * as path from 'node:path';
import { toWireError } from '../formats/common/errors.js';
import { loadBundle, makeWriters } from './bundle-loader.js';
import { loadPackageApi } from './package-api.js';
import { bundleFile, readJournal, readSpec } from './store/job-store.js';
import { jobDir } from './store/pool-store.js';
import { FileLock } from './file-lock.js';
import { reduceJob } from './reduce-step.js';
import { onlyBuiltinWriters } from './coordinator/builtin-reduce.js';

const [jobId, ...flags] = process.argv.slice(2);
// A reduce whose coordinator was killed carries on to the end: writing to its closed pipes must not kill it.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
const say = (line: string) => process.stdout.write(line + '\n');

try {
  const spec = readSpec(jobId);
  if (spec.cwd) {
    try {
      process.chdir(spec.cwd);
    } catch {
      // the submitting machine's folder may not exist here; paths in the spec are absolute
    }
  }
  process.argv = spec.argv;
  // One reduce per job at a time: an orphan of a killed coordinator finishes before a new one starts.
  const lock = await FileLock.acquire(path.join(jobDir(jobId), 'reduce.lock'), `reduce of job ${jobId}`, {
    timeoutMs: Infinity,
    onWait: (h) => say(`waiting for reduce process ${h.pid} (started ${h.since}) to finish: it is reducing this job already`),
  });
  let report;
  try {
    // Built-in writers (here: with cloud outputs, which take the job's environment) need
    // nothing of the job's script: its import was most of this process's time.
    let writers = onlyBuiltinWriters(spec);
    if (!writers) {
      await loadBundle(bundleFile(spec.bundleHash), await loadPackageApi());
      writers = makeWriters(spec.writers);
    }
    // read under the lock: a reduce that held it before may have published meanwhile
    report = await reduceJob(spec, readJournal(jobId), writers, { recover: flags.includes('--recover'), cleanup: !flags.includes('--no-cleanup'), say });
  } finally {
    lock.release();
  }
  say(`SKYBATCH_REDUCE ${JSON.stringify(report)}`);
  process.exit(0);
} catch (err) {
  process.stderr.write(`SKYBATCH_ERROR ${JSON.stringify(toWireError(err, { jobId }))}\n`);
  process.exit(1);
}
