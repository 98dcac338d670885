// The quickstart with its mapper in Python (mapper.py): double every text of a JSONL file.
//   skybatch pool apply samples/python-quickstart/pool.yaml --pool my-pool -y
//   skybatch run samples/python-quickstart/double_text.ts
import * as path from 'node:path';
import * as sky from 'skybatch';

const here = path.dirname(new URL(import.meta.url).pathname);
const input = process.env.INPUT ?? path.join(here, 'data.jsonl');
const output = process.env.OUTPUT ?? path.join(here, 'output', 'output.jsonl');

// 1. Point to your input data
const ds = new sky.Dataset(new sky.JsonReader(input));

// 2. The processing function is double_text in mapper.py (relative to this script)
// 3. Run it
const job = await ds.map(sky.pythonFunction('mapper.py', 'double_text'), {
  poolName: process.env.POOL ?? 'my-pool',
  batchSize: 2,
  output: new sky.JsonWriter(output),
});
console.log(`job ${job.jobId} ${job.status}: ${output}`);
