import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { deleteBatchFiles } from '../../formats/utils.js';

/**
 * A job's cleanup leaves nothing of its temp folder, also when a writer killed mid-write
 * (frozen, then stopped at its batch's timeout) left a `.partial` beside the batch files: the
 * partial was removed after the folders were pruned, and the empty folders stayed
 * (the frozen-mappers chaos test saw `.sky_batch_tmp` left next to its output).
 */
describe('a job cleanup with half-written uploads', () => {
  let dir: string;
  let out: string;
  const tmp = (...p: string[]) => path.join(dir, '.sky_batch_tmp', ...p);
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-cleanup-'));
    out = path.join(dir, 'out.jsonl');
    fs.writeFileSync(out, '{}\n');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('batch files and a .partial: the temp folder goes', async () => {
    fs.mkdirSync(tmp('7', 'out.jsonl'), { recursive: true });
    fs.writeFileSync(tmp('7', 'out.jsonl', 'batch_0_2.jsonl'), '{}\n{}\n{}\n');
    fs.writeFileSync(tmp('7', 'out.jsonl', 'batch_3_5.jsonl.1a2b3c4d.partial'), '{}\n');
    await deleteBatchFiles(out, 7);
    assert.deepEqual(fs.readdirSync(dir), ['out.jsonl']);
  });

  test('only a .partial (every batch file merged and gone): the temp folder goes', async () => {
    fs.mkdirSync(tmp('7', 'out.jsonl'), { recursive: true });
    fs.writeFileSync(tmp('7', 'out.jsonl', 'batch_3_5.jsonl.1a2b3c4d.partial'), '{}\n');
    await deleteBatchFiles(out, 7);
    assert.deepEqual(fs.readdirSync(dir), ['out.jsonl']);
  });

  test("another job's temp folder and a file that is no upload's are kept", async () => {
    fs.mkdirSync(tmp('7', 'out.jsonl'), { recursive: true });
    fs.mkdirSync(tmp('8', 'out.jsonl'), { recursive: true });
    fs.writeFileSync(tmp('7', 'out.jsonl', 'batch_3_5.jsonl.1a2b3c4d.partial'), '{}\n');
    fs.writeFileSync(tmp('7', 'out.jsonl', 'notes.txt.partial'), 'mine\n');
    fs.writeFileSync(tmp('8', 'out.jsonl', 'batch_0_2.jsonl'), '{}\n');
    await deleteBatchFiles(out, 7);
    assert.deepEqual(fs.readdirSync(tmp('7', 'out.jsonl')), ['notes.txt.partial']);
    assert.deepEqual(fs.readdirSync(tmp('8', 'out.jsonl')), ['batch_0_2.jsonl']);
  });
});
