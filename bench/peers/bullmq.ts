import { ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import type { RedisServer } from './redis.js';

const WORKER = fileURLToPath(new URL('./bullmq-worker.js', import.meta.url));

export interface BullmqResult {
  jobs: number;
  seconds: number;
  perSec: number;
}

/**
 * BullMQ's figure for the dispatch bench: `workers` worker processes at `concurrency` each,
 * already connected (a warm pool), then `jobs` no-op jobs added with addBulk; timed from
 * the first addBulk to the last completion the workers report. Defaults everywhere else
 * (completed jobs are kept, as a user who sets nothing gets).
 */
export async function runBullmq(redis: RedisServer, opts: { jobs: number; workers: number; concurrency: number }): Promise<BullmqResult> {
  const name = `bench-${process.pid}-${opts.concurrency}-${Date.now()}`;
  const connection = { host: '127.0.0.1', port: redis.port };
  const queue = new Queue(name, { connection });
  const procs: ChildProcess[] = [];
  try {
    await queue.waitUntilReady();
    const counts = new Array<number>(opts.workers).fill(0);
    let onDone: () => void = () => {};
    const allDone = new Promise<void>((r) => (onDone = r));
    const ready = Array.from({ length: opts.workers }, (_, i) => {
      const p = fork(WORKER, [String(redis.port), name, String(opts.concurrency)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      procs.push(p);
      return new Promise<void>((resolve, reject) => {
        p.on('message', (m: { type: string; done?: number }) => {
          if (m.type === 'ready') resolve();
          else if (m.type === 'done') {
            counts[i] = m.done!;
            if (counts.reduce((a, b) => a + b, 0) >= opts.jobs) onDone();
          }
        });
        p.once('exit', (code) => reject(new Error(`bullmq worker exited with code ${code}`)));
      });
    });
    await Promise.all(ready);
    const t0 = performance.now();
    // addBulk in chunks, as a producer of this many jobs would: one huge MULTI holds Redis for its whole length.
    const CHUNK = 1000;
    for (let i = 0; i < opts.jobs; i += CHUNK) {
      const n = Math.min(CHUNK, opts.jobs - i);
      await queue.addBulk(Array.from({ length: n }, (_, k) => ({ name: 'noop', data: { i: i + k } })));
    }
    await allDone;
    const seconds = (performance.now() - t0) / 1000;
    return { jobs: opts.jobs, seconds, perSec: opts.jobs / seconds };
  } finally {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const t = setTimeout(() => p.kill('SIGKILL'), 5000);
            p.once('exit', () => (clearTimeout(t), resolve()));
            p.send({ type: 'stop' });
          }),
      ),
    );
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}
