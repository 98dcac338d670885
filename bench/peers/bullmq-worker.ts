/**
 * One BullMQ worker process for the bench: `node bullmq-worker.js PORT QUEUE CONCURRENCY`.
 * Runs no-op jobs and reports its count of completed jobs to the parent over IPC.
 */
import { Worker } from 'bullmq';

const [port, queue, concurrency] = process.argv.slice(2);
let done = 0;
let sent = -1;
const worker = new Worker(queue, async () => undefined, { connection: { host: '127.0.0.1', port: Number(port) }, concurrency: Number(concurrency) });
worker.on('completed', () => done++);
worker.on('error', (err) => process.stderr.write(`bullmq worker: ${err.message}\n`));
await worker.waitUntilReady();
process.send!({ type: 'ready' });
const report = setInterval(() => {
  if (done !== sent) process.send!({ type: 'done', done: (sent = done) });
}, 10);
process.on('message', async (m: { type: string }) => {
  if (m.type !== 'stop') return;
  clearInterval(report);
  await worker.close();
  process.exit(0);
});
