import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { WireError } from '../../formats/common/errors.js';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import { Journal } from '../../runtime/store/journal.js';
import { appendJournalRecord, readJournal } from '../../runtime/store/job-store.js';
import { jobDir } from '../../runtime/store/pool-store.js';
import { spec, useTempHome } from './spec.js';

const retryable: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'boom', retryable: true } as WireError;
let nextId = 1;

function newJob(): string {
  const id = String(nextId++);
  fs.mkdirSync(jobDir(id), { recursive: true });
  return id;
}

function journalFile(id: string): string {
  return path.join(jobDir(id), 'journal.jsonl');
}

describe('job journal', () => {
  useTempHome();

  it('replays commits, failures, splits, dead letters and status into a new JobRun', () => {
    const id = newJob();
    const s = spec({ jobId: id, total: 9, batchSize: 3, onItemError: 'skip', maxAttempts: 1 });
    const j = new Journal(id);
    const run = new JobRun(s, undefined, j);
    run.setStatus('RUNNING');
    const b0 = run.next(0)!;
    const b1 = run.next(0)!;
    run.lease(b0, 'w1');
    run.lease(b1, 'w2');
    run.commit(0, b0.current, 'w1', 3);
    assert.equal(run.fail(1, b1.current, retryable), 'split');
    run.split(1);
    const single = run.next(0)!;
    assert.equal(single.index, 3);
    run.lease(single, 'w1');
    assert.equal(run.fail(3, single.current, retryable), 'skip');
    run.skip(3, { index: 3, error: retryable } as never);
    j.close();

    const state = readJournal(id);
    assert.equal(state.status, 'RUNNING');
    assert.equal(state.loads, 1);
    assert.deepEqual([...state.committed], [[0, b0.current]]);
    assert.deepEqual(state.winners, [{ start: 0, end: 2, attempt: b0.current }]);
    assert.deepEqual(state.splits, [{ i: 1, base: 3 }]);
    assert.deepEqual([...state.skipped], [3]);
    assert.equal(state.deadLetters.length, 1);
    assert.equal(state.itemsDone, 3);
    assert.equal(state.retries, 2);

    const again = new JobRun(s, state);
    assert.equal(again.batchCount, 6);
    assert.deepEqual(again.batchList().map((b) => b.state), ['done', 'split', 'pending', 'skipped', 'pending', 'pending']);
    assert.equal(again.batchesDone, 3);
    assert.equal(again.itemsDone, 3);
    assert.equal(again.itemsFailed, 1);
    // What is left goes out: the split's remaining singles, then the untouched batch.
    const left: number[] = [];
    for (let b = again.next(0); b; b = again.next(0)) {
      again.lease(b, 'w1');
      left.push(b.index);
    }
    assert.deepEqual(left.sort((a, b) => a - b), [2, 4, 5]);
  });

  it('keeps the first commit of a batch, forgets a lost one, and voids publication on change', () => {
    const id = newJob();
    const lines = [
      { e: 'commit', i: 0, s: 0, x: 9, a: 1, w: 'w1', n: 10 },
      { e: 'commit', i: 0, s: 0, x: 9, a: 2, w: 'w2', n: 10 },
      { e: 'commit', i: 1, s: 10, x: 19, a: 3, w: 'w1', n: 10 },
      { e: 'published', at: 'T', outputs: [{ writer: 'jsonl', path: '/out' }] },
    ];
    fs.writeFileSync(journalFile(id), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    let state = readJournal(id);
    assert.deepEqual([...state.committed], [[0, 1], [1, 3]]);
    assert.equal(state.itemsDone, 20);
    assert.deepEqual(state.published, { at: 'T', outputs: [{ writer: 'jsonl', path: '/out' }] });
    assert.equal(state.attemptsUpTo, 3);

    appendJournalRecord(id, { e: 'lost', i: 1, a: 3 });
    state = readJournal(id);
    assert.deepEqual([...state.committed], [[0, 1]]);
    assert.equal(state.itemsDone, 10);
    assert.equal(state.published, undefined, 'a lost batch voids the publication');
  });

  it('records a cleanup over the publication only, and a lost batch takes its skipped items with it (its run again skips them again)', () => {
    const id = newJob();
    const dead = (index: number) => ({ index, input: index, error: 'bad', code: 'SKYBATCH_E_ITEM_FAILED' });
    appendJournalRecord(id, [
      { e: 'cleaned', at: 'T0' }, // nothing published yet: says nothing
      { e: 'commit', i: 0, s: 0, x: 9, a: 1, w: 'w1', n: 9 },
      { e: 'dead', d: [dead(3)] },
      { e: 'commit', i: 1, s: 10, x: 19, a: 1, w: 'w1', n: 9 },
      { e: 'dead', d: [dead(12)] },
    ]);
    assert.equal(readJournal(id).published, undefined);
    appendJournalRecord(id, { e: 'published', at: 'T1', outputs: [] });
    appendJournalRecord(id, { e: 'cleaned', at: 'T2' });
    assert.deepEqual(readJournal(id).published, { at: 'T1', outputs: [], cleaned: 'T2' });

    appendJournalRecord(id, { e: 'lost', i: 1, a: 1 });
    const state = readJournal(id);
    assert.equal(state.published, undefined);
    assert.deepEqual(state.deadLetters.map((d) => d.index), [3]);
    assert.deepEqual([...state.committed], [[0, 1]]);
  });

  it('skips a torn last line, and the next writer starts on a line of its own', () => {
    const id = newJob();
    const good = JSON.stringify({ e: 'commit', i: 0, s: 0, x: 9, a: 1, w: 'w1', n: 10 });
    fs.writeFileSync(journalFile(id), good + '\n' + '{"e":"commit","i":1,"s":10');
    assert.deepEqual([...readJournal(id).committed], [[0, 1]]);

    const j = new Journal(id);
    j.append({ e: 'commit', i: 2, s: 20, x: 29, a: 5, w: 'w2', n: 10 });
    j.close();
    assert.deepEqual([...readJournal(id).committed], [[0, 1], [2, 5]]);
    assert.match(fs.readFileSync(path.join(jobDir(id), 'job.log'), 'utf8'), /torn last line/);

    appendJournalRecord(id, { e: 'status', status: 'RUNNING', at: 'T' });
    fs.appendFileSync(journalFile(id), '{"e":"status"');
    appendJournalRecord(id, { e: 'commit', i: 3, s: 30, x: 39, a: 6, w: 'w1', n: 10 });
    assert.deepEqual([...readJournal(id).committed], [[0, 1], [2, 5], [3, 6]]);
  });

  it('reads a missing journal as a pending job', () => {
    const state = readJournal(newJob());
    assert.equal(state.status, 'PENDING');
    assert.equal(state.loads, 0);
    assert.equal(state.committed.size, 0);
  });

  it('never hands out an attempt number twice across loads, even with the status record lost', () => {
    const id = newJob();
    const s = spec({ jobId: id, total: 20 });
    const seen = new Set<string>();
    const attempts: number[] = [];
    for (let load = 0; load < 3; load++) {
      const j = new Journal(id);
      const run = new JobRun(s, readJournal(id), j);
      // The second load loses its status record (not written): the reservation covers it.
      if (load !== 1) run.setStatus('RUNNING');
      for (let b = run.next(0); b; b = run.next(0)) {
        run.lease(b, 'w');
        const key = `${b.index}:${b.current}`;
        assert.ok(!seen.has(key), `batch ${b.index} attempt ${b.current} handed out again on load ${load}`);
        seen.add(key);
        attempts.push(b.current);
      }
      j.close();
    }
    const state = readJournal(id);
    assert.ok(state.attemptsUpTo >= Math.max(...attempts));
  });

  it('compacts a long journal into a snapshot that replays to the same state, with later records applied on top', () => {
    const compacted = newJob();
    const plain = newJob();
    const records: Parameters<Journal['append']>[0][] = [{ e: 'status', status: 'RUNNING', at: 'T0' }, { e: 'attempts', upTo: 1000 }];
    // a commit record without an attempt number survives compaction as written (reduce says what is wrong with it)
    records.push({ e: 'commit', i: 70_000, s: 140_000, x: 140_001, w: 'w', n: 2 } as never);
    // 60,000 batches of 2 items: a compaction at the 50,000th commit; some retried, one with a skipped item, one split
    for (let i = 0; i < 60_000; i++) {
      if (i === 70) records.push({ e: 'fail', i, a: 1, w: 'w1', code: 'SKYBATCH_E_MAPPER' });
      if (i === 80) {
        records.push({ e: 'split', i, base: 60_000 });
        records.push({ e: 'dead', d: [{ index: 161, input: 'x', error: 'bad', code: 'SKYBATCH_E_ITEM_FAILED' }], b: 60_001 });
        records.push({ e: 'commit', i: 60_000, s: 160, x: 160, a: 1, w: 'w2', n: 1 });
        continue;
      }
      const a = i === 70 || i % 997 === 0 ? 2 : 1;
      records.push({ e: 'commit', i, s: 2 * i, x: 2 * i + 1, a, w: `w${i % 3}`, n: i === 90 ? 1 : 2 });
      if (i === 100) records.push({ e: 'dead', d: [{ index: 201, input: 'y', error: 'bad', code: 'SKYBATCH_E_ITEM_FAILED' }] });
    }
    records.push({ e: 'lost', i: 5, a: 1 });
    const j = new Journal(compacted);
    for (const r of records) j.append(r);
    j.close();
    fs.writeFileSync(journalFile(plain), records.map((r) => JSON.stringify(r)).join('\n') + '\n');

    const lines = fs.readFileSync(journalFile(compacted), 'utf8').trim().split('\n');
    assert.equal((JSON.parse(lines[0]) as { e: string }).e, 'snap', 'the journal starts with its snapshot');
    assert.ok(lines.length < 20_000, `${lines.length} lines left after compaction`);
    assert.ok(fs.statSync(journalFile(compacted)).size < fs.statSync(journalFile(plain)).size / 3);
    const got = readJournal(compacted);
    const want = readJournal(plain);
    assert.deepEqual([...got.committed].sort((x, y) => x[0] - y[0]), [...want.committed].sort((x, y) => x[0] - y[0]));
    assert.deepEqual(got.winners, want.winners);
    const { committed: _c1, commits: _m1, winners: _w1, ...restGot } = got;
    const { committed: _c2, commits: _m2, winners: _w2, ...restWant } = want;
    assert.deepEqual(restGot, restWant);
    assert.equal(got.committed.has(5), false, 'a lost record after the snapshot still applies');
    assert.deepEqual(got.commits.get(70_000), { s: 140_000, x: 140_001, a: undefined, n: 2 });

    // appending to a compacted journal, and loading it into a JobRun, work as before
    appendJournalRecord(compacted, { e: 'commit', i: 5, s: 10, x: 11, a: 3, w: 'w1', n: 2 });
    const s = spec({ jobId: compacted, total: 120_000, batchSize: 2, onItemError: 'skip' });
    const run = new JobRun(s, readJournal(compacted));
    assert.equal(run.batchesDone, 60_000 + 2); // every batch (the split one too), and its two singles: one committed, one skipped
    assert.equal(run.itemsDone, want.itemsDone + 2);
  });
});
