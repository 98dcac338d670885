/**
 * `NODE_OPTIONS=--import=<this file>` with SKYBATCH_BENCH_PROFILE_DIR set: every Node
 * process of a bench run writes a V8 CPU profile there when it exits (Node 20 refuses
 * `--cpu-prof` in NODE_OPTIONS, and the pool's processes are started by skybatch, not by
 * the bench). A process that SIGTERM would end without a handler of its own still writes
 * its profile, then exits as the signal would have.
 */
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as path from 'node:path';

const dir = process.env.SKYBATCH_BENCH_PROFILE_DIR;
if (dir) {
  const argv = [...process.argv]; // mapper and reduce processes replace process.argv with the user's
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    // an in-thread session answers synchronously, so this works inside 'exit'
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${Date.now()}-${process.pid}.cpuprofile`);
      fs.writeFileSync(file, JSON.stringify(res.profile));
      fs.writeFileSync(`${file}.argv`, JSON.stringify(argv));
    });
  };
  process.on('exit', write);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      if (process.listenerCount(sig) > 1) return; // the process handles it and exits itself
      write();
      process.exit(128 + (sig === 'SIGTERM' ? 15 : 2));
    });
  }
}
