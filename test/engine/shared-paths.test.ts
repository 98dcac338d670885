import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SkybatchError } from '../../formats/common/errors.js';
import { assertSeparateOutputs } from '../../formats/output-claims.js';
import { Sandbox, jsonl, listFiles, readJsonl } from '../harness.js';

const POOL = 'paths';

describe('writers of one job never share a path', () => {
  const sb = new Sandbox('paths');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 1\n');
    sb.file('in.jsonl', jsonl([{ prompt: 'red' }, { prompt: 'green' }, { prompt: 'blue' }]));
  });
  after(() => sb.cleanup());

  const script = (name: string, outputs: string, extra = '') =>
    sb.file(
      `${name}.ts`,
      `import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((x) => ({ prompt: x.prompt, image: { width: 1, height: 1, data: new Uint8Array([1, 2, 3, 255]) } })));
  }
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}));
const job = await ds.map(mapper, { poolName: ${JSON.stringify(POOL)}, batchSize: 2, output: ${outputs} ${extra} });
console.log('RESULT', job.jobId, job.status);
`,
    );

  test("a user's manifest.jsonl next to ImageWriter's PNGs is kept: ImageWriter's own index is _manifest.jsonl", async () => {
    const dir = path.join(sb.dir, 'images') + '/';
    const r = await sb.run(script('manifest', `[new sky.ImageWriter(${JSON.stringify(dir)}, { column: 'image' }), new sky.JsonWriter(${JSON.stringify(dir + 'manifest.jsonl')}, { column: 'prompt' })]`));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listFiles(dir), ['00000000.png', '00000001.png', '00000002.png', '_manifest.jsonl', 'manifest.jsonl']);
    assert.deepEqual(readJsonl(path.join(dir, 'manifest.jsonl')), [{ prompt: 'red' }, { prompt: 'green' }, { prompt: 'blue' }]);
    assert.deepEqual(readJsonl(path.join(dir, '_manifest.jsonl')), [0, 1, 2].map((i) => ({ file: `0000000${i}.png`, index: i })));
  });

  test('two writers with one output path are refused at submission, naming both; no job is created', async () => {
    const out = path.join(sb.dir, 'same', 'out.jsonl');
    const r = await sb.run(script('same', `[new sky.JsonWriter(${JSON.stringify(out)}, { column: 'prompt' }), new sky.JsonWriter(${JSON.stringify(out)})]`));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_OUTPUT_CONFLICT/);
    assert.ok(r.stderr.includes(`JsonWriter(${out}) would write ${out}, and JsonWriter(${out}) would write ${out}`), r.stderr);
    assert.doesNotMatch(r.stdout, /RESULT/);
    assert.deepEqual(listFiles(path.join(sb.dir, 'same')), []);
  });

  test("a writer on the job's errors.jsonl is refused when items may be skipped into it", async () => {
    const r = await sb.run(
      script('errfile', `[new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'e', 'out.jsonl'))}), new sky.JsonWriter(${JSON.stringify(path.join(sb.dir, 'e', 'errors.jsonl'))})]`, `, onItemError: 'skip'`),
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_OUTPUT_CONFLICT/);
    assert.match(r.stderr, /the job's list of skipped items \(onItemError: 'skip'\) would write .*errors\.jsonl, and JsonWriter\(.*errors\.jsonl\)/);
  });

  test('the coordinator refuses a job whose writers share a path even from a client that skips Dataset.map', async () => {
    const out = path.join(sb.dir, 'raw', 'out.jsonl');
    const raw = sb.file(
      'raw.ts',
      `import { createHash } from 'node:crypto';
import * as sky from 'skybatch';
const code = 'export {};';
const client = await sky.CoordinatorClient.forPool(${JSON.stringify(POOL)});
const writer = { type: 'json', path: ${JSON.stringify(out)}, options: {} };
try {
  await client.request({
    type: 'submit',
    bundle: code,
    job: {
      bundleHash: createHash('sha256').update(code).digest('hex'),
      mapperId: 'mapper#1',
      scriptPath: 'raw.ts',
      reader: { type: 'json', path: ${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}, options: {} },
      writers: [writer, { ...writer, type: 'image' }],
      batchSize: 1,
      total: 3,
      env: {},
      argv: [],
      cwd: process.cwd(),
    },
  } as never);
  console.log('ACCEPTED');
} catch (err) {
  console.log('REFUSED', (err as sky.SkybatchError).code, (err as Error).message);
} finally {
  client.close();
}
`,
    );
    const r = await sb.run(raw);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /REFUSED SKYBATCH_E_OUTPUT_CONFLICT .*writer 1 \('json', .*out\.jsonl\).*writer 2 \('image', .*out\.jsonl\)/);
    assert.doesNotMatch((await sb.cli(['jobs', 'queue'])).stdout, /raw\.ts/);
  });
});

describe('which writer paths conflict', () => {
  const conflict = (writers: { type: string; path: string }[], errorsFile?: string) => {
    try {
      assertSeparateOutputs(writers, { errorsFile });
      return false;
    } catch (err) {
      assert.equal((err as SkybatchError).code, 'SKYBATCH_E_OUTPUT_CONFLICT');
      return true;
    }
  };

  test('distinct files, a folder writer beside a file, and a file inside an ImageWriter folder are fine', () => {
    assert.equal(conflict([{ type: 'json', path: '/a/x.jsonl' }, { type: 'json', path: '/a/y.jsonl' }]), false);
    assert.equal(conflict([{ type: 'text', path: '/a/texts/' }, { type: 'yaml', path: '/a/meta.yaml' }]), false);
    assert.equal(conflict([{ type: 'image', path: '/a/images/' }, { type: 'json', path: '/a/images/prompts.jsonl' }]), false);
    assert.equal(conflict([{ type: 'image', path: 's3://b/images/' }, { type: 'json', path: 's3://b/manifest.jsonl' }]), false);
    assert.equal(conflict([{ type: 'json', path: '/a/out.jsonl' }], '/a/errors.jsonl'), false);
  });

  test('the same file, a file inside a custom folder writer, an ImageWriter name, a file named like a folder writer, and errors.jsonl conflict', () => {
    assert.equal(conflict([{ type: 'json', path: '/a/x.jsonl' }, { type: 'yaml', path: '/a/x.jsonl' }]), true);
    assert.equal(conflict([{ type: 'text', path: '/a/' }, { type: 'json', path: '/a/x.jsonl' }]), true);
    assert.equal(conflict([{ type: 'image', path: '/a/i/' }, { type: 'json', path: '/a/i/_manifest.jsonl' }]), true);
    assert.equal(conflict([{ type: 'image', path: '/a/i/' }, { type: 'text', path: '/a/i/00000003.png' }]), true);
    assert.equal(conflict([{ type: 'image', path: '/a/i/' }, { type: 'text', path: '/a/' }]), true);
    assert.equal(conflict([{ type: 'image', path: '/a/i/' }, { type: 'json', path: '/a/i' }]), true, 'same temp folder');
    assert.equal(conflict([{ type: 'image', path: '/a/i/' }, { type: 'image', path: '/a/i/' }]), true);
    assert.equal(conflict([{ type: 'json', path: '/a/out.jsonl' }, { type: 'json', path: '/a/errors.jsonl' }], '/a/errors.jsonl'), true);
  });
});
