// Bench (a) with a Python no-op mapper (noop.py): the same reader and discarding writer as
// noop.ts, so the difference between the two figures is the Python bridge.
import * as sky from 'skybatch';

@sky.registry.INPUT_READER_REGISTRY.typeRegister('bench-range')
class BenchRange extends sky.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }
  downloadBatch(s: number, e: number) {
    return Array.from({ length: e - s + 1 }, (_, i) => ({ i: s + i }));
  }
}

@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('bench-discard')
class Discard extends sky.OutputWriter<Record<string, never>> {
  uploadBatch() {
    return '';
  }
}

const count = Number(process.env.BATCHES ?? 5000);
const t0 = performance.now();
const job = await new sky.Dataset(new BenchRange('', { count })).map(sky.pythonFunction('noop.py', 'noop'), { poolName: process.env.POOL!, batchSize: 1, output: new Discard(''), progress: false });
console.log(JSON.stringify({ jobId: job.jobId, seconds: (performance.now() - t0) / 1000, batches: count }));
