/**
 * `node reduce-process.js JOB_ID [--no-cleanup]`: loads the job's bundle (so the user's own
 * writer classes are registered), then runs reduceResults and cleanup of every writer.
 * A failure is printed as one `SKYBATCH_ERROR {json}` line on stderr and exit code 1.
 */
import { toWireError } from '../formats/errors.js';
import { loadBundle, makeWriters, reduceAndCleanup } from './bundle-loader.js';
import { bundleFile, readJournal, readSpec } from './coordinator/job-store.js';
import { withWinners } from '../formats/attempts.js';
import { errorsPath, saveJsonlToCloud } from '../formats/utils.js';

const [jobId, flag] = process.argv.slice(2);
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
  await loadBundle(bundleFile(spec.bundleHash));
  const { winners, deadLetters } = readJournal(jobId);
  await withWinners({ jobId, winners }, () => reduceAndCleanup(makeWriters(spec.writers), jobId, { cleanup: flag !== '--no-cleanup' }));
  for (const w of spec.writers) console.log(`wrote ${w.path}`);
  if (deadLetters.length) {
    const file = errorsPath(spec.writers[0].path);
    await saveJsonlToCloud(deadLetters, file);
    console.log(`wrote ${file}: ${deadLetters.length} skipped item(s)`);
  }
  process.exit(0);
} catch (err) {
  process.stderr.write(`SKYBATCH_ERROR ${JSON.stringify(toWireError(err, { jobId }))}\n`);
  process.exit(1);
}
