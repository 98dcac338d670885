// Image generation without a GPU: each caption becomes a 128x128 procedural picture
// (colours and waves derived from the text). Two outputs from the same results: the PNGs
// (ImageWriter) and a JSONL of prompts (JsonWriter with columns).
//   skybatch pool apply samples/images/pool.yaml --pool image-pool -y
//   skybatch run samples/images/generate_images.ts
import * as path from 'node:path';
import * as sky from 'skybatch';

const generateImages = sky.remoteFunction(async function generateImages() {
  // One-time setup per worker per job: here a palette; with a GPU, loading the model.
  const size = Number(process.env.IMAGE_SIZE ?? 128);
  const hash = (s: string) => [...s].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 2166136261);

  for await (const batch of sky.load()) {
    const results = batch.map((item) => {
      const prompt = String(item.prompt);
      const h = hash(prompt);
      const [r0, g0, b0] = [h & 255, (h >>> 8) & 255, (h >>> 16) & 255];
      const freq = 2 + (h % 7);
      const data = new Uint8Array(size * size * 4);
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const wave = (Math.sin((x / size) * Math.PI * freq) + Math.cos((y / size) * Math.PI * freq)) / 4 + 0.5;
          const o = (y * size + x) * 4;
          data[o] = r0 * wave;
          data[o + 1] = g0 * (1 - wave) + 64 * wave;
          data[o + 2] = b0 * ((x + y) / (2 * size));
          data[o + 3] = 255;
        }
      }
      return { prompt, image: { width: size, height: size, data }, score: Number((wave01(h) * 100).toFixed(2)) };
    });
    await sky.saveResults(results);
  }

  function wave01(h: number) {
    return (h % 1000) / 1000;
  }
});

const here = path.dirname(new URL(import.meta.url).pathname);
const out = process.env.OUTPUT_DIR ?? path.join(here, 'output');
const ds = new sky.Dataset(new sky.JsonReader(process.env.INPUT ?? path.join(here, 'prompts.jsonl')));

const job = await ds.map(generateImages, {
  poolName: process.env.POOL ?? 'image-pool',
  batchSize: 3,
  output: [new sky.ImageWriter(`${out}/images/`, { column: 'image' }), new sky.JsonWriter(`${out}/manifest.jsonl`, { column: ['prompt', 'score'] })],
});
console.log(`job ${job.jobId} ${job.status}: ${out}/images/ and ${out}/manifest.jsonl`);
