import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Sandbox, mapperScript, readJsonl } from '../harness.js';

describe('JSONL input as editors and other tools write it', () => {
  const sb = new Sandbox('jsonl-input');
  after(() => sb.cleanup());

  test('a UTF-8 BOM and whitespace-only lines are skipped like blank lines, and every item lands in its place', async () => {
    await sb.applyPool('jsonl', 'pool:\n  workers: 2\n');
    const blanks = ['  ', '\t', ' \t \r', '\r', ''];
    let text = '\uFEFF';
    for (let i = 0; i < 23; i++) text += `${JSON.stringify({ i })}${i % 3 ? '\n' : '\r\n'}${i % 4 === 1 ? blanks[i % blanks.length] + '\n' : ''}`;
    text += '   \n\t';
    sb.file('bom.jsonl', text);
    const script = sb.file(
      'bom.ts',
      mapperScript({
        input: path.join(sb.dir, 'bom.jsonl'),
        output: path.join(sb.dir, 'bom-out.jsonl'),
        pool: 'jsonl',
        batchSize: 2,
        body: `await sky.saveResults(batch.map((x) => ({ out: x.i })));`,
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT \d+ SUCCEEDED/);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'bom-out.jsonl')), Array.from({ length: 23 }, (_, i) => ({ out: i })));
  });
});
