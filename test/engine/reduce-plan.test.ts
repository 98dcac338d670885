import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { appendJournalRecord, readJournal } from '../../runtime/store/job-store.js';
import { planReduce } from '../../runtime/coordinator/reduce-plan.js';
import type { JobSpec } from '../../runtime/protocol.js';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-plan-'));
process.env.SKYBATCH_HOME = home;

function spec(total: number, batchSize: number): JobSpec {
  return { jobId: '1', pool: 'p', createdAt: '', bundleHash: 'x', mapperId: 'm#1', scriptPath: 's', reader: { type: 'json', path: '', options: {} }, writers: [], batchSize, total, env: {}, argv: [], cwd: '/' };
}

/** Writes a journal for job `id` from raw lines and replays it. */
function journal(id: string, lines: unknown[], raw = ''): ReturnType<typeof readJournal> {
  fs.mkdirSync(path.join(home, 'jobs', id), { recursive: true });
  fs.writeFileSync(path.join(home, 'jobs', id, 'journal.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join('') + raw);
  return readJournal(id);
}

const commit = (i: number, s: number, x: number, a?: number, n = x - s + 1) => ({ e: 'commit', i, s, x, ...(a === undefined ? {} : { a }), w: 'w', n });

describe('the reduce plan: what the journal lets reduce publish', () => {
  after(() => fs.rmSync(home, { recursive: true, force: true }));

  test('every batch with a valid commit of its own range is published; one with no attempt or another range is missing', () => {
    const j = journal('1', [commit(0, 0, 1, 1), commit(1, 2, 3), commit(2, 10, 11, 3)]);
    const plan = planReduce(spec(6, 2), j, true);
    assert.deepEqual(plan.winners, [{ index: 0, start: 0, end: 1, attempt: 1, rows: 2 }]);
    assert.deepEqual(
      plan.missing.map((m) => [m.start, m.end, m.why]),
      [
        [2, 3, 'its commit record has no attempt number'],
        [4, 5, 'its commit record names range [10, 11]'],
      ],
    );
  });

  test('a finished job must have every batch; a recover publishes what committed', () => {
    const j = journal('2', [commit(1, 2, 3, 7)]);
    assert.deepEqual(
      planReduce(spec(6, 2), j, true).missing.map((m) => [m.start, m.end]),
      [
        [0, 1],
        [4, 5],
      ],
    );
    const partial = planReduce(spec(6, 2), j, false);
    assert.deepEqual(partial.missing, []);
    assert.deepEqual(partial.winners.map((w) => [w.start, w.end, w.attempt]), [[2, 3, 7]]);
  });

  test('items skipped into errors.jsonl are not expected in the files; split batches count by their single items', () => {
    const dead = (index: number) => ({ index, input: null, error: 'x', code: 'SKYBATCH_E_ITEM_FAILED' });
    const j = journal('3', [
      commit(0, 0, 3, 1, 3),
      { e: 'dead', d: [dead(2)] },
      { e: 'split', i: 1, base: 2 },
      commit(2, 4, 4, 5),
      { e: 'dead', d: [dead(5)], b: 3 },
    ]);
    const plan = planReduce(spec(6, 4), j, true);
    assert.deepEqual(plan.missing, []);
    assert.deepEqual(plan.winners.map((w) => [w.start, w.end, w.rows]), [
      [0, 3, 3],
      [4, 4, 1],
    ]);
  });

  test('a lost batch is no longer committed; a published record holds until the winners change', () => {
    const at = '2026-01-01T00:00:00.000Z';
    const j = journal('4', [commit(0, 0, 1, 1), commit(1, 2, 3, 2), { e: 'lost', i: 1, a: 2 }, { e: 'published', at, outputs: [] }]);
    assert.deepEqual([...j.committed.keys()], [0]);
    assert.equal(j.itemsDone, 2);
    assert.equal(j.published?.at, at);
    assert.equal(journal('5', [commit(0, 0, 1, 1), { e: 'published', at, outputs: [] }, { e: 'status', status: 'PENDING', at }, commit(1, 2, 3, 1002)]).published, undefined);
  });

  test('a record appended by the reduce step after a torn last line starts on its own line', () => {
    journal('6', [commit(0, 0, 1, 1)], '{"e":"commit","i":1,"s"');
    appendJournalRecord('6', { e: 'published', at: 'now', outputs: [] });
    const j = readJournal('6');
    assert.equal(j.published?.at, 'now');
    assert.deepEqual([...j.committed.keys()], [0]);
  });
});
