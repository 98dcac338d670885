// Bench (c): a CPU-bound mapper, a fixed number of sha256 rounds per item, so the job's
// time is compute and the scaling from 1 to 2 workers can be read off.
import { createHash } from 'node:crypto';
import * as sky from 'skybatch';

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

const ROUNDS = Number(process.env.ROUNDS ?? 10000);

const hash = sky.remoteFunction(async function hash() {
  for await (const batch of sky.load()) {
    await sky.saveResults(
      batch.map((item) => {
        let h: Buffer = Buffer.from(String(item.i));
        for (let r = 0; r < ROUNDS; r++) h = createHash('sha256').update(h).digest();
        return { i: item.i, h: h.toString('hex') };
      }),
    );
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
