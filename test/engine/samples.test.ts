import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { parse as parseYaml } from 'yaml';
import { ROOT, Sandbox, listFiles, readJsonl } from '../harness.js';

describe('samples run as written on a local pool', () => {
  const sb = new Sandbox('samples');
  before(async () => {
    await sb.applyPool('samples', fs.readFileSync(path.join(ROOT, 'samples/quickstart/pool.yaml'), 'utf8'));
  });
  after(() => sb.cleanup());

  test('quickstart doubles every text, in order', async () => {
    const out = path.join(sb.dir, 'quick', 'output.jsonl');
    const r = await sb.run(path.join(ROOT, 'samples/quickstart/double_text.ts'), { POOL: 'samples', OUTPUT: out });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(out), [{ output: 'hellohello' }, { output: 'worldworld' }, { output: 'skysky' }, { output: 'batchbatch' }]);
    assert.deepEqual(listFiles(path.dirname(out)), ['output.jsonl'], 'no temp files are left');
  });

  test('custom formats: 20 text files and one merged metadata.yaml in index order', async () => {
    const bucket = path.join(sb.dir, 'custom');
    const r = await sb.run(path.join(ROOT, 'samples/custom-formats/process_range.ts'), { POOL: 'samples', BUCKET: bucket });
    assert.equal(r.code, 0, r.stderr);
    const files = listFiles(bucket);
    const texts = Array.from({ length: 20 }, (_, i) => `texts/${String(i).padStart(8, '0')}.txt`);
    assert.deepEqual(files, ['metadata.yaml', ...texts].sort());
    assert.equal(fs.readFileSync(path.join(bucket, 'texts/00000007.txt'), 'utf8'), 'Item 7: token_7 | token_8 | token_9 | token_10 | token_11');
    const meta = parseYaml(fs.readFileSync(path.join(bucket, 'metadata.yaml'), 'utf8')) as { metadata: { id: number; squared: number; tag: string } }[];
    assert.equal(meta.length, 20);
    meta.forEach((m, i) => {
      assert.equal(m.metadata.id, i);
      assert.equal(m.metadata.squared, i * i);
      assert.ok(['alpha', 'beta', 'gamma'].includes(m.metadata.tag));
    });
  });

  test('image sample writes one real PNG per caption, a manifest, and the prompts', async () => {
    const out = path.join(sb.dir, 'img');
    const r = await sb.run(path.join(ROOT, 'samples/images/generate_images.ts'), { POOL: 'samples', OUTPUT_DIR: out, IMAGE_SIZE: '32' });
    assert.equal(r.code, 0, r.stderr);
    const prompts = readJsonl(path.join(ROOT, 'samples/images/prompts.jsonl')) as { prompt: string }[];
    const pngs = Array.from({ length: prompts.length }, (_, i) => `images/${String(i).padStart(8, '0')}.png`);
    assert.deepEqual(listFiles(out), ['images/_manifest.jsonl', ...pngs, 'manifest.jsonl'].sort());
    const png = PNG.sync.read(fs.readFileSync(path.join(out, pngs[5])));
    assert.equal(png.width, 32);
    assert.equal(png.height, 32);
    assert.deepEqual(
      readJsonl(path.join(out, 'images/_manifest.jsonl')),
      pngs.map((p, i) => ({ file: path.basename(p), index: i })),
    );
    const meta = readJsonl(path.join(out, 'manifest.jsonl')) as { prompt: string; score: number }[];
    assert.deepEqual(meta.map((m) => m.prompt), prompts.map((p) => p.prompt));
    assert.deepEqual(Object.keys(meta[0]), ['prompt', 'score']);
  });
});
