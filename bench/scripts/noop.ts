// Bench (a): a no-op mapper at batchSize 1, through a writer that stores nothing, so what is
// measured is the engine's own cost per batch. MAPPER=python runs the same no-op in Python
// (noop.py), so the difference between the two figures is the Python bridge.
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

const noop =
  process.env.MAPPER === 'python'
    ? sky.pythonFunction('noop.py', 'noop')
    : sky.remoteFunction(async function noop() {
        for await (const batch of sky.load()) await sky.saveResults(batch);
      });

const count = Number(process.env.BATCHES ?? 5000);
const t0 = performance.now();
const job = await new sky.Dataset(new BenchRange('', { count })).map(noop, { poolName: process.env.POOL!, batchSize: 1, output: new Discard(''), progress: false });
console.log(JSON.stringify({ jobId: job.jobId, seconds: (performance.now() - t0) / 1000, batches: count }));
