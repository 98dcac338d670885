// Bench (b): the quickstart's double-text job over a large JSONL file.
import * as sky from 'skybatch';

const double = sky.remoteFunction(async function double() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((item) => ({ output: String(item.text).repeat(2) })));
  }
});

const t0 = performance.now();
const calledAt = Date.now();
const job = await new sky.Dataset(new sky.JsonReader(process.env.INPUT!)).map(double, {
  poolName: process.env.POOL!,
  batchSize: Number(process.env.BATCH_SIZE ?? 10000),
  output: new sky.JsonWriter(process.env.OUTPUT!),
  progress: false,
});
console.log(JSON.stringify({ jobId: job.jobId, seconds: (performance.now() - t0) / 1000, calledAt, returnedAt: Date.now() }));
