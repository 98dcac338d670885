// A mapper that runs a real ONNX model with onnxruntime-node (a native addon, installed in
// this sample's own node_modules): each text gets an 8-d embedding and a score.
//   (cd samples/onnx-embed && npm ci)          # .npmrc skips onnxruntime-node's CUDA download
//   skybatch pool apply samples/onnx-embed/pool.yaml --pool onnx-pool -y
//   skybatch run samples/onnx-embed/embed.ts
// Your own model: MODEL=/path/to/model.onnx (input `features` [batch, 32]; outputs
// `embedding` and `score`), or change model.ts to your model's inputs and outputs.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sky from 'skybatch';
import { scoreTexts } from './model.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MODEL = process.env.MODEL ?? path.join(here, 'model.onnx');
const input = process.env.INPUT ?? path.join(here, 'texts.jsonl');
const output = process.env.OUTPUT ?? path.join(here, 'output', 'scores.jsonl');

const embed = sky.remoteFunction(async function embed() {
  // One-time setup per worker: load the runtime and the model once, then score batches.
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
  for await (const batch of sky.load()) {
    await sky.saveResults(await scoreTexts(ort, session, batch.map((item) => String(item.text))));
  }
});

const ds = new sky.Dataset(new sky.JsonReader(input));
const job = await ds.map(embed, {
  poolName: process.env.POOL ?? 'onnx-pool',
  batchSize: Number(process.env.BATCH_SIZE ?? 8),
  output: new sky.JsonWriter(output),
});
console.log(`job ${job.jobId} ${job.status}: ${output}`);
