// Bench (c): a CPU-bound mapper, a fixed number of feature-hashing rounds per item
// (bench/lib/cpu-work.ts), so the job's time is compute and the scaling from 1 to 2 workers
// can be read off.
import * as sky from 'skybatch';
import { featureHash } from '../lib/cpu-work.js';

@sky.registry.INPUT_READER_REGISTRY.typeRegister('bench-cpu-range')
class CpuRange extends sky.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }
  downloadBatch(s: number, e: number) {
    return Array.from({ length: e - s + 1 }, (_, i) => ({ i: s + i }));
  }
}

@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('bench-cpu-discard')
class Discard extends sky.OutputWriter<Record<string, never>> {
  uploadBatch() {
    return '';
  }
}

const ROUNDS = Number(process.env.ROUNDS ?? 2500);

const hash = sky.remoteFunction(async function hash() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((item) => ({ i: item.i, h: featureHash(item.i, ROUNDS) })));
  }
});

const count = Number(process.env.ITEMS ?? 400);
const t0 = performance.now();
const job = await new sky.Dataset(new CpuRange('', { count })).map(hash, {
  poolName: process.env.POOL!,
  batchSize: Number(process.env.BATCH_SIZE ?? 10),
  output: new Discard(''),
  progress: false,
});
console.log(JSON.stringify({ jobId: job.jobId, seconds: (performance.now() - t0) / 1000 }));
