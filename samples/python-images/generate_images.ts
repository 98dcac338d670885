// The reference's image-generation example with its mapper in Python (generate_images.py):
// PNGs through ImageWriter and a manifest of prompts through a JsonWriter with columns.
//   skybatch pool apply samples/python-images/pool.yaml --pool diffusion-pool -y
//   skybatch run samples/python-images/generate_images.ts
import * as path from 'node:path';
import * as sky from 'skybatch';

const here = path.dirname(new URL(import.meta.url).pathname);
const out = process.env.OUTPUT_DIR ?? path.join(here, 'output');
const ds = new sky.Dataset(new sky.JsonReader(process.env.INPUT ?? path.join(here, 'prompts.jsonl')));

const job = await ds.map(sky.pythonFunction('generate_images.py', 'generate_images'), {
  poolName: process.env.POOL ?? 'diffusion-pool',
  batchSize: 3,
  output: [new sky.ImageWriter(`${out}/images/`, 'image'), new sky.JsonWriter(`${out}/manifest.jsonl`, ['prompt'])],
  // as in the reference, when setup made a virtualenv: activateEnv: 'source .venv/bin/activate',
});
console.log(`job ${job.jobId} ${job.status}: ${out}/images/ and ${out}/manifest.jsonl`);
