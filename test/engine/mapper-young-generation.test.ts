import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HOLD_YOUNG_GENERATION } from '../../runtime/worker/young-generation.js';
import { Sandbox, jsonl, readJsonl } from '../harness.js';

const MB = 2 ** 20;

/** Whether this Node's V8 takes the growth factor set at run time (see young-generation.ts). */
function heldByThisV8(): boolean {
  const grow = `const v8 = require('node:v8');
const keep = []; for (let i = 0; i < 1e6; i++) keep.push({ i, s: 'x' + i });
process.stdout.write(String(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));`;
  return Number(execFileSync(process.execPath, [...HOLD_YOUNG_GENERATION, '-e', grow], { encoding: 'utf8' })) <= 4 * MB;
}

/**
 * A mapper process meets its first batch with the young generation V8 gives a fresh
 * process, not one grown by loading skybatch and the bundle (which made a CPU-bound mapper
 * spend about a fifth more CPU per batch), and the young generation still grows when the
 * job's own batches keep objects alive.
 */
describe('a mapper process young generation', () => {
  const sb = new Sandbox('young-gen');
  let script: string;

  before(async () => {
    await sb.applyPool('yg', 'pool:\n  workers: 1\n');
    sb.file('in.jsonl', jsonl([{ n: 0 }, { n: 1 }]));
    script = sb.file(
      'yg.ts',
      `import * as v8 from 'node:v8';
import * as sky from 'skybatch';
const newSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;
const mapper = sky.remoteFunction(async function mapper() {
  const atStart = newSpace();
  for await (const batch of sky.load()) {
    // objects that live across many scavenges, as parsed rows of a big batch do
    const keep: object[] = [];
    for (let i = 0; i < 1e6; i++) keep.push({ i, s: 'x' + i });
    await sky.saveResults(batch.map(() => ({ atStart, afterWork: newSpace(), kept: keep.length })));
  }
});
const job = await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))})).map(mapper, { poolName: 'yg', batchSize: 2, output: new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'out.jsonl'))}) });
console.log('RESULT', job.status);
`,
    );
  });
  after(() => sb.cleanup());

  test('is at its starting size when the first batch runs, and grows for a job that keeps objects alive', async () => {
    // the Node versions we support (20, 24) take it; a V8 that stops taking it loses the fix, and this says so
    assert.ok(heldByThisV8(), `this Node's V8 (${process.versions.v8}) ignores --semi-space-growth-factor set at run time: mappers start with a grown young generation again`);
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT SUCCEEDED/);
    const [row] = readJsonl(path.join(sb.dir, 'out.jsonl')) as { atStart: number; afterWork: number }[];
    assert.ok(fs.existsSync(path.join(sb.dir, 'out.jsonl')));
    assert.ok(row.atStart <= 4 * MB, `young generation at the mapper's start: ${row.atStart / MB} MB (a fresh process has 1 MB; grown by loading: 16 MB)`);
    assert.ok(row.afterWork > row.atStart, `it grows again for the job's own survivors (${row.atStart / MB} -> ${row.afterWork / MB} MB)`);
  });
});
