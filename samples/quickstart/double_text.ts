// The quickstart: double every text of a JSONL file on a pool of workers.
//   skybatch pool apply samples/quickstart/pool.yaml --pool my-pool -y
//   skybatch run samples/quickstart/double_text.ts
import * as path from 'node:path';
import * as sky from 'skybatch';

const here = path.dirname(new URL(import.meta.url).pathname);
const input = process.env.INPUT ?? path.join(here, 'data.jsonl');
const output = process.env.OUTPUT ?? path.join(here, 'output', 'output.jsonl');

// 1. Point to your input data
const ds = new sky.Dataset(new sky.JsonReader(input));

// 2. Define your processing function
const doubleText = sky.remoteFunction(async function doubleText() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((item) => ({ output: String(item.text).repeat(2) })));
  }
});

// 3. Run it
const job = await ds.map(doubleText, {
  poolName: process.env.POOL ?? 'my-pool',
  batchSize: 2,
  output: new sky.JsonWriter(output),
});
console.log(`job ${job.jobId} ${job.status}: ${output}`);
