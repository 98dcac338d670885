import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WireError } from '../../formats/common/errors.js';
import { BatchOutcomes } from '../../runtime/coordinator/batch-outcomes.js';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import { schedule, stalledWorkers } from '../../runtime/coordinator/scheduler.js';
import { WorkerEntry, WorkerTable } from '../../runtime/coordinator/worker-table.js';
import { WORKER_CREDIT, type CoordinatorToWorker, type JobEvent } from '../../runtime/protocol.js';
import { spec } from './spec.js';

/** A worker table whose links record what they were sent, and the outcome handlers over it. */
function setup(run: JobRun, names: string[]) {
  const table = new WorkerTable();
  const sent = new Map<string, CoordinatorToWorker[]>();
  const workers = names.map((name) => {
    const box: CoordinatorToWorker[] = [];
    sent.set(name, box);
    const w = table.add({ send: (m) => box.push(m), close() {} }, { type: 'hello', name, host: 'h' } as never);
    table.setupDone(w);
    table.toldSetup(w, 'k');
    return w;
  });
  const events: JobEvent[] = [];
  const calls: string[] = [];
  const outcomes = new BatchOutcomes({
    workers: table,
    emit: (e) => events.push(e),
    wantsBatchEvents: () => true,
    progress: () => calls.push('progress'),
    committed: () => calls.push('committed'),
    finish: () => calls.push('finish'),
    fail: (_r, e) => calls.push(`fail ${e.code}`),
    retryLater: () => calls.push('retryLater'),
    pumpSoon: () => calls.push('pumpSoon'),
    job: (jobId) => (jobId === run.spec.jobId ? run : undefined),
    log: (line) => calls.push(`log ${line}`),
  });
  /** Batches the scheduler asked back, by worker. */
  const asked: [worker: string, index: number][] = [];
  /** One round of the scheduler at `now`, applied to the table; returns what it handed out. */
  const give = (now = 0) => {
    const out: [worker: string, index: number][] = [];
    for (const d of schedule({ queue: [run.spec.jobId], jobs: new Map([[run.spec.jobId, run]]), workers: table.all(), setupKey: 'k', now }).decisions) {
      if (d.kind === 'giveBack') asked.push([d.worker.name, d.batch.index]);
      if (d.kind !== 'assign') continue;
      table.assign(d.worker, run.spec.jobId, d.batch.index);
      out.push([d.worker.name, d.batch.index]);
    }
    return out;
  };
  return { table, workers, sent, events, calls, outcomes, give, asked };
}

const aborts = (box: CoordinatorToWorker[]) => box.filter((m) => m.type === 'abortBatch').map((m) => (m as { index: number }).index);

describe('batch outcomes', () => {
  it('stops the losing copy of a straggler and gives back what was queued behind it', () => {
    const run = new JobRun(spec({ total: 30 }));
    const { workers: [w1, w2], sent, outcomes, table, give } = setup(run, ['w1', 'w2']);
    give(); // w1: 0, 2; w2: 1
    run.markStarted(0, run.batch(0)!.current);
    run.markStarted(1, run.batch(1)!.current);
    assert.ok(outcomes.done(w2, run, { type: 'batchDone', jobId: '1', index: 1, attempt: run.batch(1)!.current, items: 10 } as never));
    table.unlease(w2, 1);
    const copy = run.leaseBackup(run.batch(0)!, 'w2');
    table.assign(w2, '1', 0);
    run.markStarted(0, copy);
    table.unlease(w2, 0);
    assert.ok(outcomes.done(w2, run, { type: 'batchDone', jobId: '1', index: 0, attempt: copy, items: 10 } as never));
    assert.deepEqual(aborts(sent.get('w1')!), [0], 'the loser is stopped');
    assert.deepEqual([...w1.leased], [], 'and holds nothing: batch 2 was only queued behind it');
    assert.equal(run.batch(2)!.state, 'retrying');
    assert.equal(run.next(0)!.index, 2, 'batch 2 goes out again at once');
    assert.equal(outcomes.done(w1, run, { type: 'batchDone', jobId: '1', index: 0, attempt: 1, items: 10 } as never), false, 'the loser’s late result is ignored');
  });

  it('takes a batchDone with no batchStarted before it (an agent folds the start of a batch done in the same tick) as both: committed, timed for the credit, and the worker not stalled', () => {
    const run = new JobRun(spec({ total: 200, batchSize: 1, batchTimeoutMs: 1000 }));
    const { workers: [w1], outcomes, give, table } = setup(run, ['w1']);
    give();
    const held = [...w1.leased];
    assert.ok(held.length >= 2, 'w1 holds a running and a prefetched batch');
    assert.deepEqual(stalledWorkers(table, new Map([['1', run]]), 0), [], 'the stall clock starts: nothing it holds has started');
    for (let i = 0; i < 10; i++) {
      give();
      // each report in a frame of its own: the clock times a worker's commits by the time between its frames
      for (const until = Date.now() + 3; Date.now() < until; );
      const index = [...w1.leased][0];
      outcomes.report(w1, { type: 'batchDone', jobId: '1', index, attempt: run.batch(index)!.current, items: 1 });
      assert.equal(run.batch(index)!.state, 'done');
    }
    assert.equal(run.batchesDone, 10);
    assert.ok(run.credit() > WORKER_CREDIT, `timed commits raise the credit (got ${run.credit()})`);
    // still holding batches none of whose starts it reported, but it commits: not stalled
    assert.ok(w1.leased.size > 0);
    assert.deepEqual(stalledWorkers(table, new Map([['1', run]]), 5000), []);
  });

  it('applies a report only from the worker holding that attempt; others are refused and change nothing', () => {
    const run = new JobRun(spec({ total: 30 }));
    const { workers: [w1, w2], sent, events, calls, outcomes, give } = setup(run, ['w1', 'w2']);
    give(); // w1: 0, 2; w2: 1
    const a0 = run.batch(0)!.current;
    const before = structuredClone(run.batch(0)!);
    outcomes.report(w2, { type: 'batchStarted', jobId: '1', index: 0, attempt: a0 });
    outcomes.report(w2, { type: 'batchDone', jobId: '1', index: 0, attempt: a0, items: 10 } as never);
    outcomes.report(w1, { type: 'batchDone', jobId: '2', index: 0, attempt: a0, items: 10 } as never);
    assert.deepEqual(run.batch(0)!, before, 'nothing changed');
    assert.equal(sent.get('w2')!.filter((m) => m.type === 'error').length, 2);
    assert.equal(calls.filter((c) => c.startsWith('log refused batch')).length, 3);
    outcomes.report(w1, { type: 'batchStarted', jobId: '1', index: 0, attempt: a0 });
    outcomes.report(w1, { type: 'batchDone', jobId: '1', index: 0, attempt: a0, items: 10 } as never);
    assert.equal(run.batch(0)!.state, 'done');
    assert.deepEqual([...w1.leased], [2]);
    assert.deepEqual(events.filter((e) => e.kind === 'batch').map((e) => (e as { state: string }).state), ['running', 'done']);
    assert.ok(calls.includes('pumpSoon'));
  });

  it('fails the started batches of a lost worker and gives back its prefetched ones', () => {
    const run = new JobRun(spec({ retryBaseMs: 1000 }));
    const { workers: [w1], events, calls, outcomes, give } = setup(run, ['w1']);
    give(); // w1: 0, 1
    run.markStarted(0, run.batch(0)!.current);
    outcomes.workerLost(w1, run, 'socket closed');
    assert.equal(run.batch(0)!.state, 'retrying');
    assert.equal(run.batch(0)!.failures, 1);
    assert.equal(run.batch(0)!.lastError?.code, 'SKYBATCH_E_WORKER_LOST');
    assert.equal(run.batch(1)!.state, 'retrying');
    assert.equal(run.batch(1)!.failures, 0, 'a prefetched batch is not charged');
    assert.deepEqual(events.filter((e) => e.kind === 'batch').map((e) => [(e as { index: number }).index, (e as { state: string }).state]).sort(), [[0, 'retrying'], [1, 'pending']]);
    assert.ok(calls.includes('retryLater'));
  });

  it('hands the batches of a lost worker to the next worker with room before anything else, started ones first, with no retry backoff', () => {
    // a backoff of a minute: a batch that waited for it would not go out in this test at all
    const run = new JobRun(spec({ total: 100, batchSize: 1, retryBaseMs: 60_000 }));
    const { workers: [w1, w2], events, outcomes, give, table } = setup(run, ['w1', 'w2']);
    const now = Date.now();
    assert.deepEqual(give(now), [['w1', 0], ['w2', 1], ['w1', 2], ['w2', 3]]);
    for (const i of [0, 1]) outcomes.report(i === 0 ? w1 : w2, { type: 'batchStarted', jobId: '1', index: i, attempt: run.batch(i)!.current });
    const lostAttempt = run.batch(0)!.current;
    table.remove(w1.id);
    outcomes.workerLost(w1, run, 'heartbeat missed');
    table.gone(w1);
    assert.deepEqual(give(now), [], 'w2 holds its credit: nothing goes out before it commits');
    outcomes.report(w2, { type: 'batchDone', jobId: '1', index: 1, attempt: run.batch(1)!.current, items: 1 });
    assert.deepEqual(give(now), [['w2', 0]], 'the batch that was running on the lost worker goes out first');
    assert.ok(run.batch(0)!.current > lostAttempt);
    outcomes.report(w2, { type: 'batchDone', jobId: '1', index: 3, attempt: run.batch(3)!.current, items: 1 });
    assert.deepEqual(give(now), [['w2', 2]], 'then the one it had prefetched, before fresh batches');
    assert.equal(run.batch(0)!.failures, 1, 'a lost worker still counts against the batch’s attempts');
    assert.equal(run.batch(0)!.lastError?.code, 'SKYBATCH_E_WORKER_LOST');
    assert.equal(run.batch(2)!.failures, 0);
    const lost = events.find((e) => e.kind === 'batch' && e.index === 0 && e.state === 'retrying');
    assert.equal((lost as { error?: { code: string } } | undefined)?.error?.code, 'SKYBATCH_E_WORKER_LOST');
  });

  it('makes room for a lost worker’s batch: a worker holding its credit gives back one it has not started, which waits behind the lost one', () => {
    const run = new JobRun(spec({ total: 100, batchSize: 1, retryBaseMs: 60_000 }));
    const { workers: [w1, w2], outcomes, give, table, asked } = setup(run, ['w1', 'w2']);
    const now = Date.now();
    assert.deepEqual(give(now), [['w1', 0], ['w2', 1], ['w1', 2], ['w2', 3]]);
    for (const i of [0, 1]) outcomes.report(i === 0 ? w1 : w2, { type: 'batchStarted', jobId: '1', index: i, attempt: run.batch(i)!.current });
    table.remove(w1.id);
    outcomes.workerLost(w1, run, 'heartbeat missed');
    table.gone(w1);
    assert.deepEqual(give(now), [], 'w2 holds its credit');
    assert.deepEqual(asked, [['w2', 3]], 'w2 is asked for the batch it has queued, not the one it runs');
    assert.deepEqual(give(now), []);
    assert.deepEqual(asked, [['w2', 3]], 'asked once while its answer is on the way');
    outcomes.report(w2, { type: 'batchReleased', jobId: '1', index: 3, attempt: run.batch(3)!.current });
    assert.deepEqual(give(now), [['w2', 0]], 'the lost batch takes its place, next after the one w2 runs');
    assert.deepEqual(asked, [['w2', 3]], 'the batch given back asks nothing back in turn');
    outcomes.report(w2, { type: 'batchDone', jobId: '1', index: 1, attempt: run.batch(1)!.current, items: 1 });
    assert.deepEqual(give(now), [['w2', 2]], 'then the lost worker’s prefetched batch');
    outcomes.report(w2, { type: 'batchDone', jobId: '1', index: 0, attempt: run.batch(0)!.current, items: 1 });
    assert.deepEqual(give(now), [['w2', 3]], 'then the one given back, before fresh batches');
    assert.equal(run.batch(3)!.failures, 0, 'a batch given back is not charged');
  });

  it('asks nothing back for a lost batch when batches are shorter than a give-back’s round trip', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const run = new JobRun(spec({ total: 100, batchSize: 1, retryBaseMs: 60_000 }));
    const { workers: [w1, w2], outcomes, give, table, asked } = setup(run, ['w1', 'w2']);
    give();
    // w2 times a few 1 ms batches
    for (let k = 0; k < 8; k++) {
      for (const i of [...w2.leased]) {
        outcomes.report(w2, { type: 'batchStarted', jobId: '1', index: i, attempt: run.batch(i)!.current });
        t.mock.timers.tick(1);
        outcomes.report(w2, { type: 'batchDone', jobId: '1', index: i, attempt: run.batch(i)!.current, items: 1 });
      }
      give();
    }
    const running = [...w1.leased][0];
    outcomes.report(w1, { type: 'batchStarted', jobId: '1', index: running, attempt: run.batch(running)!.current });
    table.remove(w1.id);
    outcomes.workerLost(w1, run, 'socket closed');
    table.gone(w1);
    give();
    assert.deepEqual(asked, []);
  });

  it('keeps the retry backoff for a batch that failed on its own', () => {
    const run = new JobRun(spec({ total: 100, batchSize: 1, retryBaseMs: 60_000 }));
    const { workers: [w1], outcomes, give } = setup(run, ['w1']);
    const now = Date.now();
    give(now);
    outcomes.report(w1, { type: 'batchStarted', jobId: '1', index: 0, attempt: run.batch(0)!.current });
    outcomes.report(w1, { type: 'batchFailed', jobId: '1', index: 0, attempt: run.batch(0)!.current, error: { code: 'SKYBATCH_E_MAPPER', message: 'x', retryable: true } } as never);
    assert.equal(run.batch(0)!.state, 'retrying');
    assert.ok(give(now).every(([, i]) => i !== 0), 'not handed out before its backoff');
    assert.ok(run.nextRetryAt()! >= now + 60_000);
  });

  it('fails the job when a batch runs out of attempts, and finishes it when the last item is skipped', () => {
    const err: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'x', retryable: true } as WireError;
    const failing = new JobRun(spec({ total: 10, maxAttempts: 1 }));
    const a = setup(failing, ['w1']);
    a.give();
    a.outcomes.failed(failing, 0, failing.batch(0)!.current, err);
    assert.deepEqual(a.calls.filter((c) => c.startsWith('fail')), ['fail SKYBATCH_E_BATCH_FAILED']);

    const skipping = new JobRun(spec({ total: 1, batchSize: 1, maxAttempts: 1, onItemError: 'skip' }));
    const b = setup(skipping, ['w1']);
    b.give();
    b.outcomes.failed(skipping, 0, skipping.batch(0)!.current, err, ['poison']);
    assert.equal(skipping.batch(0)!.state, 'skipped');
    assert.ok(b.calls.includes('finish'));
  });

  it('takes an overdue batch away from its worker and charges it', () => {
    const run = new JobRun(spec({ batchTimeoutMs: 1000 }));
    const { workers: [w1], sent, outcomes, give } = setup(run, ['w1']);
    give();
    run.markStarted(0, run.batch(0)!.current);
    outcomes.timedOut(run, run.batch(0)!, run.batch(0)!.current);
    assert.deepEqual(aborts(sent.get('w1')!), [0]);
    assert.equal(run.batch(0)!.lastError?.code, 'SKYBATCH_E_BATCH_TIMEOUT');
    assert.deepEqual([...w1.leased], [], 'its prefetched batch was given back too');
    assert.equal(run.batch(1)!.failures, 0);
  });
});
