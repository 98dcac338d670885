// Bench (failure detection): batches of one item that each take SLEEP_MS, long enough for
// the bench to kill or freeze the worker running one of them.
import * as sky from 'skybatch';

@sky.registry.INPUT_READER_REGISTRY.typeRegister('bench-sleepy-range')
class SleepyRange extends sky.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }
  downloadBatch(s: number, e: number) {
    return Array.from({ length: e - s + 1 }, (_, i) => ({ i: s + i }));
  }
}

@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('bench-sleepy-discard')
class Discard extends sky.OutputWriter<Record<string, never>> {
  uploadBatch() {
    return '';
  }
}

const SLEEP_MS = Number(process.env.SLEEP_MS ?? 300);

const sleepy = sky.remoteFunction(async function sleepy() {
  for await (const batch of sky.load()) {
    await new Promise((r) => setTimeout(r, SLEEP_MS));
    await sky.saveResults(batch);
  }
});

const job = await new sky.Dataset(new SleepyRange('', { count: Number(process.env.ITEMS ?? 400) })).map(sleepy, {
  poolName: process.env.POOL!,
  batchSize: 1,
  output: new Discard(''),
  progress: false,
});
console.log(JSON.stringify({ jobId: job.jobId }));
