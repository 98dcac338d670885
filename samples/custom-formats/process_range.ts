// The complete custom-formats example: a RangeReader that counts instead of reading a
// file, a TextWriter writing one .txt per item, and a YamlWriter merging batches into one
// YAML file.
//   skybatch pool apply samples/custom-formats/pool.yaml --pool custom-fmt-pool -y
//   skybatch run samples/custom-formats/process_range.ts
import * as path from 'node:path';
import * as sky from 'skybatch';
import { utils } from 'skybatch';

// Custom InputReader: generate items from a range (no file I/O)
@sky.registry.INPUT_READER_REGISTRY.typeRegister('range')
class RangeReader extends sky.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }

  async downloadBatch(startIdx: number, endIdx: number) {
    const out = [];
    for (let i = startIdx; i <= endIdx; i++) out.push({ index: i });
    return out;
  }
}

// Custom OutputWriter: per-item .txt files (no reduce needed)
@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('text')
class TextWriter extends sky.OutputWriter<{ column: string }> {
  async uploadBatch(results: sky.Item[], startIdx: number) {
    const outputDir = this.path.replace(/\/+$/, '');
    for (let i = 0; i < results.length; i++) {
      const text = String(results[i][this.options.column] ?? '');
      await utils.uploadBytesToCloud(Buffer.from(text, 'utf8'), `${outputDir}/${String(startIdx + i).padStart(8, '0')}.txt`);
    }
    return outputDir;
  }
}

// Custom OutputWriter: single merged YAML file (batch + merge pattern)
@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('yaml')
class YamlWriter extends sky.OutputWriter<{ column: string }> {
  async uploadBatch(results: sky.Item[], startIdx: number, endIdx: number, jobId: string) {
    const batchPath = utils.getBatchPath(this.path, startIdx, endIdx, jobId);
    await utils.saveJsonlToCloud(results.map((r) => ({ [this.options.column]: r[this.options.column] })), batchPath);
    return batchPath;
  }

  override async reduceResults(jobId: string) {
    // Stream through batch files one at a time: memory holds one batch, never the whole output.
    const yaml = await import('yaml');
    const batchFiles = await utils.listBatchFiles(this.path, jobId);
    if (!batchFiles.length) return; // already merged (a second recover): leave the output as it is
    async function* yamlChunks() {
      for (const batchPath of batchFiles) {
        const items = await utils.loadJsonlFromCloud(batchPath);
        if (items.length) yield Buffer.from(yaml.stringify(items));
      }
    }
    await (await sky.storageFor(this.path)).put(this.path, yamlChunks());
  }

  override async cleanup(jobId: string) {
    await utils.deleteBatchFiles(this.path, jobId);
    await utils.deleteInputBatchFiles(this.path, jobId);
  }
}

// Mapper function
const processItems = sky.remoteFunction(async function processItems() {
  const tags = ['alpha', 'beta', 'gamma'];
  for await (const batch of sky.load()) {
    const results = batch.map((item) => {
      const idx = item.index as number;
      const tokens = Array.from({ length: 5 }, (_, j) => `token_${idx + j}`);
      return {
        text: `Item ${idx}: ` + tokens.join(' | '),
        metadata: { id: idx, squared: idx ** 2, tag: tags[Math.floor(Math.random() * tags.length)] },
      };
    });
    await sky.saveResults(results);
  }
});

// Main
const here = path.dirname(new URL(import.meta.url).pathname);
const BUCKET = process.env.BUCKET ?? path.join(here, 'output');
const POOL_NAME = process.env.POOL ?? 'custom-fmt-pool';

const ds = new sky.Dataset(new RangeReader('', { count: 20 }));

const job = await ds.map(processItems, {
  poolName: POOL_NAME,
  batchSize: 5,
  output: [new TextWriter(`${BUCKET}/texts/`, { column: 'text' }), new YamlWriter(`${BUCKET}/metadata.yaml`, { column: 'metadata' })],
});
console.log(`job ${job.jobId} ${job.status}: ${BUCKET}/texts/ and ${BUCKET}/metadata.yaml`);
