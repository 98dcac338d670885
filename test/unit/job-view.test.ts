import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { WireError } from '../../formats/common/errors.js';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import type { JobSpec } from '../../runtime/protocol.js';
import { Journal } from '../../runtime/store/journal.js';
import { appendJournalRecord, readJournal, writeSpec } from '../../runtime/store/job-store.js';
import { batchOfItem, readJobView } from '../../runtime/store/job-view.js';
import { jobDir } from '../../runtime/store/pool-store.js';
import { spec as baseSpec, useTempHome } from './spec.js';

const retryable: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'boom', retryable: true };
const fatal: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'TypeError: x is undefined', retryable: false };
let nextId = 1;

/** A job folder with its job.json, as the coordinator's admission writes it. */
function newJob(over: Partial<JobSpec> = {}): JobSpec {
  const id = String(nextId++);
  fs.mkdirSync(jobDir(id), { recursive: true });
  const s = baseSpec({ jobId: id, bundleHash: 'a'.repeat(64), reader: { type: 'jsonl', path: '/in', options: {} }, writers: [{ type: 'jsonl', path: '/out', options: {} }], ...over });
  writeSpec(s);
  return s;
}

describe('job view from disk', () => {
  useTempHome();

  it('numbers batches as the coordinator does once a batch is split, not by start / batchSize', () => {
    // 9 items in batches of 3; batch 1 (items 3-5) keeps failing under 'skip' and is split
    // into batches 3, 4, 5; item 3 is skipped, item 4 committed, item 5 still to run.
    const s = newJob({ total: 9, batchSize: 3, onItemError: 'skip', maxAttempts: 1 });
    const j = new Journal(s.jobId);
    const run = new JobRun(s, undefined, j);
    run.setStatus('RUNNING');
    const b0 = run.next(0)!;
    const b1 = run.next(0)!;
    run.lease(b0, 'w1');
    run.lease(b1, 'w2');
    run.commit(0, b0.current, 'w1', 3);
    assert.equal(run.fail(1, b1.current, retryable), 'split');
    run.split(1);
    const item3 = run.next(0)!;
    const item4 = run.next(0)!;
    run.lease(item3, 'w1');
    run.lease(item4, 'w2');
    assert.equal(run.fail(3, item3.current, retryable), 'skip');
    run.skip(3, { index: 3, error: retryable } as never);
    run.commit(4, item4.current, 'w2', 1);
    j.close();

    const view = readJobView(s.jobId);
    assert.deepEqual(
      view.batches.map((b) => [b.index, b.start, b.end, b.state]),
      [
        [0, 0, 2, 'done'],
        [1, 3, 5, 'split'],
        [2, 6, 8, 'pending'],
        [3, 3, 3, 'skipped'],
        [4, 4, 4, 'done'],
        [5, 5, 5, 'pending'],
      ],
    );
    assert.equal(view.batches[4].attempt, item4.current, 'a done batch carries its winning attempt');
    // What the panel used to compute: item 4 → batch 1, the split one.
    assert.equal(Math.floor(4 / s.batchSize), 1);
    assert.equal(batchOfItem(view.batches, 4), 4);
    assert.equal(batchOfItem(view.batches, 7), 2);
    assert.equal(batchOfItem(view.batches, 9), undefined);
    // The same numbers a JobRun replaying this journal reports.
    const replayed = new JobRun(s, readJournal(s.jobId));
    assert.deepEqual(view.summary, replayed.summary());
    assert.deepEqual(
      view.batches.map((b) => [b.index, b.start, b.end, b.state]),
      replayed.batchInfo().map((b) => [b.index, b.start, b.end, b.state]),
    );
    assert.equal(view.summary.batchesDone, 4);
    assert.equal(view.summary.itemsDone, 4);
    assert.equal(view.summary.itemsFailed, 1);
    assert.deepEqual(
      view.deadLetters.map((d) => d.index),
      [3],
    );
    assert.deepEqual(
      view.failures.map((f) => [f.index, f.worker, f.code]),
      [
        [1, 'w2', 'SKYBATCH_E_MAPPER'],
        [3, 'w1', 'SKYBATCH_E_MAPPER'],
      ],
    );
  });

  it("marks a failed job's last failure as its failed batch, with the job's error and outputs", () => {
    const s = newJob({ total: 30, batchSize: 10, writers: [{ type: 'jsonl', path: '/out/a.jsonl', options: {} }, { type: 'csv', path: '/out/b.csv', options: {} }] });
    const j = new Journal(s.jobId);
    const run = new JobRun(s, undefined, j);
    run.setStatus('RUNNING');
    const b0 = run.next(0)!;
    const b1 = run.next(0)!;
    run.lease(b0, 'w1');
    run.lease(b1, 'w2');
    assert.equal(run.fail(0, b0.current, retryable), 'retry');
    run.commit(1, b1.current, 'w2', 10);
    const again = run.batch(0)!;
    run.lease(again, 'w2');
    assert.equal(run.fail(0, again.current, fatal), 'fatal');
    run.setStatus('FAILED', { ...fatal, context: { jobId: s.jobId, batch: [0, 9] } });
    j.close();

    const view = readJobView(s.jobId);
    assert.equal(view.summary.status, 'FAILED');
    assert.ok(view.summary.finishedAt);
    assert.deepEqual(
      view.batches.map((b) => b.state),
      ['failed', 'done', 'pending'],
    );
    assert.equal(view.batches[0].attempt, again.current);
    assert.equal(view.error?.message, 'TypeError: x is undefined');
    assert.deepEqual(view.error?.context?.batch, [0, 9]);
    assert.deepEqual(view.outputs, ['/out/a.jsonl', '/out/b.csv']);
    assert.deepEqual(view.summary.outputs, view.outputs);
    assert.equal(view.summary.retries, 2);
    assert.equal(view.logFile, path.join(jobDir(s.jobId), 'job.log'));
  });

  it('forgets a commit the reduce step found lost, and keeps what was published until a change', () => {
    const s = newJob({ total: 20, batchSize: 10 });
    const j = new Journal(s.jobId);
    const run = new JobRun(s, undefined, j);
    run.setStatus('RUNNING');
    for (let b = run.next(0); b; b = run.next(0)) {
      run.lease(b, 'w1');
      run.commit(b.index, b.current, 'w1', 10);
    }
    j.close();
    appendJournalRecord(s.jobId, { e: 'published', at: 'T1', outputs: [{ writer: 'jsonl', path: '/out', rows: 20 }] });
    let view = readJobView(s.jobId);
    assert.deepEqual(view.published, { at: 'T1', outputs: [{ writer: 'jsonl', path: '/out', rows: 20 }] });
    assert.equal(view.summary.batchesDone, 2);

    appendJournalRecord(s.jobId, { e: 'lost', i: 1, a: run.batch(1)!.current });
    view = readJobView(s.jobId);
    assert.equal(view.published, undefined);
    assert.deepEqual(
      view.batches.map((b) => b.state),
      ['done', 'pending'],
    );
    assert.equal(view.summary.itemsDone, 10);
  });

  it('skips a torn last line and reads a job with no journal yet as pending', () => {
    const s = newJob({ total: 20, batchSize: 10 });
    assert.equal(readJobView(s.jobId).summary.status, 'PENDING');
    assert.deepEqual(
      readJobView(s.jobId).batches.map((b) => b.state),
      ['pending', 'pending'],
    );
    appendJournalRecord(s.jobId, { e: 'commit', i: 1, s: 10, x: 19, a: 7, w: 'w1', n: 10 });
    fs.appendFileSync(path.join(jobDir(s.jobId), 'journal.jsonl'), '{"e":"commit","i":0,"s":0');
    const view = readJobView(s.jobId);
    assert.deepEqual(
      view.batches.map((b) => [b.state, b.attempt]),
      [
        ['pending', 0],
        ['done', 7],
      ],
    );
  });

  it('refuses a missing job, a bad id and a job.json that is not a job, with coded errors', () => {
    assert.throws(() => readJobView('999'), { code: 'SKYBATCH_E_JOB_NOT_FOUND', context: { jobId: '999' } });
    assert.throws(() => readJobView('../x'), { code: 'SKYBATCH_E_BAD_OPTION', context: { field: 'jobId' } });
    const s = newJob();
    fs.writeFileSync(path.join(jobDir(s.jobId), 'job.json'), JSON.stringify({ ...s, batchSize: 0 }));
    assert.throws(() => readJobView(s.jobId), { code: 'SKYBATCH_E_BAD_OPTION', context: { jobId: s.jobId, field: 'batchSize' } });
  });

  it('counts batches for the summary without building the table, as the table counts them', () => {
    // splits (of a split's single too, twice, out of range), commits and skips in and out of range
    const journals: object[][] = [
      [{ e: 'split', i: 1, base: 3 }, { e: 'commit', i: 4, s: 11, x: 11, a: 1, w: 'w', n: 1 }, { e: 'dead', d: [], b: 5 }, { e: 'commit', i: 0, s: 0, x: 9, a: 1, w: 'w', n: 10 }],
      [{ e: 'split', i: 2, base: 3 }, { e: 'split', i: 5, base: 13 }, { e: 'split', i: 2, base: 14 }, { e: 'split', i: 99, base: 24 }, { e: 'commit', i: 13, s: 22, x: 22, a: 1, w: 'w', n: 1 }],
      [{ e: 'commit', i: 7, s: 0, x: 0, a: 1, w: 'w', n: 1 }, { e: 'dead', d: [], b: 40 }, { e: 'split', i: 0, base: 3 }, { e: 'commit', i: 0, s: 0, x: 9, a: 2, w: 'w', n: 10 }, { e: 'dead', d: [], b: 3 }],
    ];
    for (const records of journals) {
      const s = newJob();
      for (const r of records) appendJournalRecord(s.jobId, r as never);
      const view = readJobView(s.jobId);
      assert.equal(view.summary.batchesTotal, view.batches.length);
      assert.equal(view.summary.batchesDone, view.batches.filter((b) => ['done', 'skipped', 'split'].includes(b.state)).length);
    }
  });
});
