import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WireError } from '../../formats/common/errors.js';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import { spec } from './spec.js';

const retryable: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'boom', retryable: true } as WireError;
const permanent: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'bad', retryable: false } as WireError;

describe('JobRun', () => {
  it('hands out batches in order and leases each with a fresh attempt', () => {
    const run = new JobRun(spec());
    assert.equal(run.batchCount, 3);
    assert.deepEqual(run.batchList().map((b) => [b.start, b.end]), [[0, 9], [10, 19], [20, 29]]);
    const b0 = run.next(0)!;
    run.lease(b0, 'w1');
    assert.equal(b0.state, 'running');
    assert.equal(b0.current, 1);
    assert.equal(run.next(0)!.index, 1);
    assert.equal(run.next(0)!.index, 2);
    assert.equal(run.next(0), undefined);
  });

  it('accepts only the current lease holder’s commit (fencing)', () => {
    const run = new JobRun(spec());
    const b = run.next(0)!;
    run.lease(b, 'w1');
    assert.equal(run.commit(0, b.current, 'w2', 10), false, 'another worker');
    assert.equal(run.commit(0, b.current + 1, 'w1', 10), false, 'another attempt');
    assert.deepEqual(run.commit(0, b.current, 'w1', 10), {});
    assert.equal(b.state, 'done');
    assert.equal(run.batchesDone, 1);
    assert.equal(run.itemsDone, 10);
    assert.equal(run.commit(0, b.current, 'w1', 10), false, 'a second commit of a done batch');
    assert.equal(run.itemsDone, 10);
  });

  it('ignores the failure of a stale attempt', () => {
    const run = new JobRun(spec({ retryBaseMs: 0 }));
    const b = run.next(0)!;
    run.lease(b, 'w1');
    const first = b.current;
    assert.equal(run.fail(0, first, retryable), 'retry');
    const again = run.next(Date.now() + 1)!;
    assert.equal(again.index, 0);
    run.lease(again, 'w2');
    assert.ok(again.current > first);
    assert.equal(run.fail(0, first, retryable), 'stale');
    assert.equal(run.commit(0, first, 'w1', 10), false);
    assert.deepEqual(run.commit(0, again.current, 'w2', 10), {});
  });

  it('retries with exponential backoff and reports when the next retry is due', () => {
    const run = new JobRun(spec({ retryBaseMs: 1000 }));
    const b = run.next(0)!;
    run.lease(b, 'w1');
    const before = Date.now();
    assert.equal(run.fail(0, b.current, retryable), 'retry');
    assert.equal(b.state, 'retrying');
    assert.equal(run.retries, 1);
    const due1 = run.nextRetryAt()!;
    assert.ok(due1 >= before + 1000 && due1 <= Date.now() + 1000);
    // Not due yet: fresh batches go first.
    assert.equal(run.next(due1 - 1)!.index, 1);
    assert.equal(run.next(due1)!.index, 0);
    run.lease(b, 'w1');
    const before2 = Date.now();
    assert.equal(run.fail(0, b.current, retryable), 'retry');
    assert.ok(run.nextRetryAt()! >= before2 + 2000, 'the second retry waits twice as long');
  });

  it('fails the job after maxAttempts retryable failures, and at once on a permanent one', () => {
    const run = new JobRun(spec({ maxAttempts: 2, retryBaseMs: 0 }));
    const b = run.next(0)!;
    run.lease(b, 'w1');
    assert.equal(run.fail(0, b.current, retryable), 'retry');
    run.lease(run.next(Date.now() + 1)!, 'w1');
    assert.equal(run.fail(0, b.current, retryable), 'fatal');
    assert.equal(b.state, 'failed');
    assert.equal(b.failures, 2);
    assert.deepEqual(b.lastError, retryable);

    const b1 = run.next(Date.now())!;
    run.lease(b1, 'w1');
    assert.equal(run.fail(b1.index, b1.current, permanent), 'fatal');
  });

  it('splits a failing multi-item batch and skips a failing single item under onItemError skip', () => {
    const run = new JobRun(spec({ total: 12, batchSize: 3, onItemError: 'skip', maxAttempts: 1 }));
    const b = run.next(0)!;
    run.lease(b, 'w1');
    assert.equal(run.fail(0, b.current, retryable), 'split');
    const singles = run.split(0);
    assert.deepEqual(singles.map((s) => [s.index, s.start, s.end]), [[4, 0, 0], [5, 1, 1], [6, 2, 2]]);
    assert.equal(b.state, 'split');
    assert.equal(run.batchesDone, 1);
    // The singles go out before the remaining fresh batches.
    const s = run.next(0)!;
    assert.equal(s.index, 4);
    run.lease(s, 'w1');
    assert.equal(run.fail(4, s.current, permanent), 'skip');
    run.skip(4, { index: 0, error: permanent } as never);
    assert.equal(run.batch(4)!.state, 'skipped');
    assert.equal(run.itemsFailed, 1);
    assert.equal(run.next(0)!.index, 5);
  });

  it('copies a straggler near the end of a job and lets the first finisher win', () => {
    const run = new JobRun(spec({ total: 20 }));
    const b0 = run.next(0)!;
    const b1 = run.next(0)!;
    run.lease(b0, 'w1');
    run.lease(b1, 'w2');
    run.markStarted(0, b0.current);
    run.markStarted(1, b1.current);
    const now = Date.now();
    assert.equal(run.rebalance.straggler(now, 'w3'), undefined, 'not running long enough');
    assert.deepEqual(run.commit(1, b1.current, 'w2', 10), {});
    assert.equal(run.rebalance.straggler(now + 10_000, 'w1'), undefined, 'never its own worker');
    const s = run.rebalance.straggler(now + 10_000, 'w2')!;
    assert.equal(s.index, 0);
    const backupAttempt = run.leaseBackup(s, 'w2');
    assert.ok(backupAttempt > b0.current);
    assert.equal(run.rebalance.straggler(now + 10_000, 'w3'), undefined, 'one backup per batch');
    assert.deepEqual(run.heldBy(0, 'w2'), { attempt: backupAttempt, started: false });
    assert.equal(run.markStarted(0, backupAttempt), undefined, 'a copy is not the current attempt');
    assert.deepEqual(run.heldBy(0, 'w2'), { attempt: backupAttempt, started: true });
    // The copy finishes first: the original holder is the loser.
    const original = b0.current;
    assert.deepEqual(run.commit(0, backupAttempt, 'w2', 10), { loser: 'w1', loserAttempt: original });
    assert.equal(b0.current, backupAttempt, 'the winner is recorded');
    assert.equal(run.commit(0, original, 'w1', 10), false);
    assert.ok(run.allDone);
  });

  it('hands a straggler to its backup when the original attempt fails or is released', () => {
    const run = new JobRun(spec({ total: 10 }));
    const b = run.next(0)!;
    run.lease(b, 'w1');
    run.markStarted(0, b.current);
    const first = b.current;
    const copy = run.leaseBackup(run.rebalance.straggler(Date.now() + 10_000, 'w2')!, 'w2');
    assert.equal(run.fail(0, first, retryable), 'stale', 'the copy carries on');
    assert.equal(b.current, copy);
    assert.equal(b.worker, 'w2');
    assert.equal(b.backup, undefined);
    assert.equal(b.failures, 0);
    assert.deepEqual(run.commit(0, copy, 'w2', 10), {});
  });

  it('finds started batches past the batch timeout', () => {
    const run = new JobRun(spec({ batchTimeoutMs: 5000 }));
    const b0 = run.next(0)!;
    const b1 = run.next(0)!;
    run.lease(b0, 'w1');
    run.lease(b1, 'w1');
    run.markStarted(0, b0.current);
    const now = Date.now();
    assert.deepEqual(run.overdue(now), []);
    assert.deepEqual(run.overdue(now + 6000).map((b) => b.index), [0], 'an unstarted batch is never overdue');
  });

  it('puts back a released batch first, without charging a failure', () => {
    const run = new JobRun(spec());
    const b0 = run.next(0)!;
    run.lease(b0, 'w1');
    assert.equal(run.release(0, b0.current + 1), false, 'not the current attempt');
    assert.equal(run.release(0, b0.current), true);
    assert.equal(b0.state, 'retrying');
    assert.equal(b0.failures, 0);
    assert.equal(run.retries, 0);
    assert.equal(run.next(0)!.index, 0, 'at once, before fresh batches');
    assert.equal(run.release(1, 1), false, 'a batch not running');
  });

  it('shows leased-but-not-started batches as queued in batchInfo', () => {
    const run = new JobRun(spec());
    const b0 = run.next(0)!;
    const b1 = run.next(0)!;
    run.lease(b0, 'w1');
    run.lease(b1, 'w2');
    run.markStarted(1, b1.current);
    assert.deepEqual(run.batchInfo(), [
      { index: 0, start: 0, end: 9, state: 'queued', attempt: 1, worker: 'w1' },
      { index: 1, start: 10, end: 19, state: 'running', attempt: 1, worker: 'w2' },
      { index: 2, start: 20, end: 29, state: 'pending', attempt: 0 },
    ]);
  });

  it('abandons running batches of a job that ended early', () => {
    const run = new JobRun(spec());
    const b0 = run.next(0)!;
    run.lease(b0, 'w1');
    run.abandonRunning();
    assert.equal(b0.state, 'pending');
    assert.equal(b0.worker, undefined);
  });
});
