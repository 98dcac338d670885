import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, readJsonl } from '../harness.js';

const POOL = 'toplevel';

describe("only what the job needs runs on workers; the script's top level runs once, in the client", () => {
  const sb = new Sandbox('toplevel');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('all.jsonl', jsonl(Array.from({ length: 60 }, (_, i) => ({ id: i, text: `row ${i}` }))));
  });
  after(() => sb.cleanup());

  test('a script that writes a file, appends to a log and draws a random sample before map(): each happens once, in the client', async () => {
    const dir = path.join(sb.dir, 'effects');
    fs.mkdirSync(dir);
    const script = sb.file(
      'effects.ts',
      `import * as fs from 'node:fs';
import * as path from 'node:path';
import * as sky from 'skybatch';

const DIR = ${JSON.stringify(dir)};
const where = process.env.SKYBATCH_WORKER ?? 'the client';
fs.appendFileSync(path.join(DIR, 'runs.log'), \`top level ran in \${where}, pid \${process.pid}\\n\`);
fs.writeFileSync(path.join(DIR, 'manifest.json'), JSON.stringify({ writtenBy: where, pid: process.pid }));
const all = fs.readFileSync(${JSON.stringify(path.join(sb.dir, 'all.jsonl'))}, 'utf8').split('\\n').filter(Boolean);
const sample = all.filter(() => Math.random() < 0.5).slice(0, 14);
fs.writeFileSync(path.join(DIR, 'sample.jsonl'), sample.join('\\n') + '\\n');
console.log('SAMPLE', JSON.stringify(sample.map((l) => JSON.parse(l).id)));
console.log('top level printed in', where);

const TAG = process.env.TAG ?? 'untagged';
const label = (text: string) => \`\${TAG}:\${text}\`;

const tagRows = sky.remoteFunction(async function tagRows() {
  for await (const batch of sky.load()) {
    await new Promise((r) => setTimeout(r, 20));
    await sky.saveResults(batch.map((x) => ({ id: x.id, label: label(String(x.text)), pid: process.pid })));
  }
});

const job = await new sky.Dataset(new sky.JsonReader(path.join(DIR, 'sample.jsonl'))).map(tagRows, {
  poolName: '${POOL}',
  batchSize: 2,
  output: new sky.JsonWriter(path.join(DIR, 'out.jsonl')),
});
console.log('RESULT', job.jobId, job.status);
`,
    );
    const r = await sb.run(script, { TAG: 'env-tag' });
    assert.equal(r.code, 0, r.stderr);
    const clientPid = Number(/top level ran in the client, pid (\d+)/.exec(fs.readFileSync(path.join(dir, 'runs.log'), 'utf8'))?.[1]);
    assert.deepEqual(fs.readFileSync(path.join(dir, 'runs.log'), 'utf8').trim().split('\n'), [`top level ran in the client, pid ${clientPid}`], 'the log got one line, from the client');
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')), { writtenBy: 'the client', pid: clientPid });
    const drawn = JSON.parse(/SAMPLE (.*)/.exec(r.stdout)![1]) as number[];
    assert.deepEqual((readJsonl(path.join(dir, 'sample.jsonl')) as { id: number }[]).map((x) => x.id), drawn, "the input is the client's sample, never redrawn");
    const out = readJsonl(path.join(dir, 'out.jsonl')) as { id: number; label: string; pid: number }[];
    assert.deepEqual(out.map((o) => o.id), drawn);
    assert.deepEqual(out.map((o) => o.label), drawn.map((id) => `env-tag:row ${id}`), 'a setting read from process.env at top level reaches the workers');
    assert.ok(out.every((o) => o.pid !== clientPid), 'the mapper ran on workers');
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    const logs = await sb.cli(['jobs', 'logs', jobId]);
    assert.doesNotMatch(logs.stdout, /top level printed in/, 'no worker ran the top level');
  });

  test("pruning keeps which mapper runs: same-named mappers, a mapper written inside map(), a custom writer's reduce", async () => {
    const dir = path.join(sb.dir, 'which');
    const script = sb.file(
      'which.ts',
      `import * as fs from 'node:fs';
import * as sky from 'skybatch';
fs.appendFileSync(${JSON.stringify(path.join(sb.dir, 'which.log'))}, 'ran\\n');
const first = sky.remoteFunction(async function pick() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map(() => ({ v: 'first' })));
});
const second = sky.remoteFunction(async function pick() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ v: 'second', id: x.id })));
});

@sky.registry.OUTPUT_WRITER_REGISTRY.typeRegister('ids-csv')
class IdsCsv extends sky.OutputWriter<Record<string, never>> {
  async uploadBatch(results: sky.Item[], start: number, end: number, jobId: string) {
    const p = sky.utils.getBatchPath(this.path, start, end, jobId);
    await sky.utils.saveJsonlToCloud(results, p);
    return p;
  }
  override async reduceResults(jobId: string) {
    const rows = [];
    for (const f of await sky.utils.listBatchFiles(this.path, jobId)) rows.push(...(await sky.utils.loadJsonlFromCloud(f)));
    await sky.utils.uploadBytesToCloud(rows.map((r) => \`\${r.id},\${r.v}\`).join('\\n') + '\\n', this.path);
  }
  override async cleanup(jobId: string) {
    await sky.utils.deleteBatchFiles(this.path, jobId);
  }
}

const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'all.jsonl'))}));
const a = await ds.map(second, { poolName: '${POOL}', batchSize: 7, output: new IdsCsv(${JSON.stringify(path.join(dir, 'second.csv'))}, {}) });
const b = await ds.map(sky.remoteFunction(async () => {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ v: 'inline', id: x.id })));
}), { poolName: '${POOL}', batchSize: 7, output: new sky.JsonWriter(${JSON.stringify(path.join(dir, 'inline.jsonl'))}) });
console.log('RESULT', a.status, b.status, first.name);
`,
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT SUCCEEDED SUCCEEDED pick/);
    assert.equal(fs.readFileSync(path.join(dir, 'second.csv'), 'utf8'), Array.from({ length: 60 }, (_, i) => `${i},second`).join('\n') + '\n');
    assert.deepEqual(readJsonl(path.join(dir, 'inline.jsonl')), Array.from({ length: 60 }, (_, i) => ({ v: 'inline', id: i })));
    assert.equal(fs.readFileSync(path.join(sb.dir, 'which.log'), 'utf8'), 'ran\n', 'neither the workers nor the reduce step ran the top level');
  });

  test('a mapper that uses a value top-level code builds after its declaration is refused at submission, naming the lines', async () => {
    const script = sb.file(
      'travel.ts',
      `import * as sky from 'skybatch';
let model: { name: string } | undefined;
model = { name: 'loaded by top-level code' };
const m = sky.remoteFunction(async function m() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map(() => ({ model: model!.name })));
});
await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'all.jsonl'))})).map(m, { poolName: '${POOL}', batchSize: 10, output: new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'travel.jsonl'))}) });
`,
    );
    const before = (await sb.cli(['jobs', 'queue', '--pool', POOL])).stdout;
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_CANNOT_TRAVEL/);
    assert.match(r.stderr, /travel\.ts:3: this statement does not run on workers, but it assigns 'model' \(declared at line 2\)/);
    assert.equal((await sb.cli(['jobs', 'queue', '--pool', POOL])).stdout, before, 'nothing was submitted');
  });
});
