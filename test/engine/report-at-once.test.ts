import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, readJsonl } from '../harness.js';

/**
 * A mapper whose batches run synchronously (CPU-bound work) goes from saveResults straight
 * into its next batch without giving the event loop a turn. The batch it finished must still
 * be reported, and committed by the coordinator, while the next one runs: else the
 * coordinator learns of every batch a batch late, and times, credits and balances by that.
 */
describe('reports of a synchronous mapper', () => {
  const sb = new Sandbox('report-at-once');
  before(async () => {
    await sb.applyPool('sync', 'pool:\n  workers: 1\n');
  });
  after(() => sb.cleanup());

  test('a batch is committed while the next batch runs synchronously in the same mapper process', async () => {
    const out = path.join(sb.dir, 'out.jsonl');
    // Each batch spins (no await) for 20 ms, and batch i > 0 then until the journal holds batch
    // i-1's commit, for at most 20 s.
    const script = sb.file(
      'sync.ts',
      `import * as fs from 'node:fs';
import * as path from 'node:path';
import * as sky from 'skybatch';
const journal = () => path.join(process.env.SKYBATCH_HOME!, 'jobs', process.env.SKYBATCH_JOB_ID!, 'journal.jsonl');
// No I/O anywhere in a batch (a reader and a writer that answer at once), as with CPU-bound
// work on items that are generated: nothing gives the event loop a turn between batches.
@sky.registry.INPUT_READER_REGISTRY.typeRegister('report-test-range')
class Range extends sky.InputReader<{ count: number }> {
  length() {
    return this.options.count;
  }
  downloadBatch(s: number, e: number) {
    return Array.from({ length: e - s + 1 }, (_, k) => ({ i: s + k }));
  }
}
@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('report-test-discard')
class Discard extends sky.OutputWriter<Record<string, never>> {
  uploadBatch() {
    return '';
  }
}
const spin = sky.remoteFunction(async function spin() {
  for await (const batch of sky.load()) {
    const i = batch[0].i;
    // every batch is CPU work (20 ms at least): a batch of a few µs may still share a write with the next
    const busyUntil = Date.now() + 20;
    while (Date.now() < busyUntil);
    let sawPrevious = i === 0;
    const until = Date.now() + 20_000;
    while (!sawPrevious && Date.now() < until) {
      sawPrevious = fs.readFileSync(journal(), 'utf8').includes('"e":"commit","i":' + (i - 1) + ',');
    }
    fs.appendFileSync(${JSON.stringify(out)}, JSON.stringify({ i, sawPrevious }) + '\\n');
    await sky.saveResults([{ i }]);
  }
});
const job = await new sky.Dataset(new Range('', { count: 3 })).map(spin, { poolName: 'sync', batchSize: 1, output: new Discard('') });
console.log('RESULT', job.status);
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT SUCCEEDED/);
    assert.deepEqual(readJsonl(out), [0, 1, 2].map((i) => ({ i, sawPrevious: true })));
  });
});
