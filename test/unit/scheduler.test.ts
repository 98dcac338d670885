import assert from 'node:assert/strict';
import { type TestContext, describe, it } from 'node:test';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import { Decision, nextRetryAt, overdueBatches, schedule, stalledWorkers } from '../../runtime/coordinator/scheduler.js';
import { WorkerTable, type WorkerEntry } from '../../runtime/coordinator/worker-table.js';
import type { WorkerState } from '../../runtime/protocol.js';
import { shareTargets } from '../../runtime/coordinator/fair-share.js';
import { spec } from './spec.js';

const KEY = 'setup-1';

function worker(name: string, over: Partial<WorkerEntry> = {}): WorkerEntry {
  return { id: name, name, host: 'h', link: { send() {}, close() {} }, state: 'idle' as WorkerState, leased: new Set(), setupKey: KEY, ...over };
}

/** Applies assignments the way the coordinator's worker table does, so the next round sees them. */
function apply(decisions: Decision[]): void {
  for (const d of decisions) {
    if (d.kind === 'assign') {
      d.worker.jobId = d.run.spec.jobId;
      d.worker.leased.add(d.batch.index);
      d.worker.state = 'busy';
    }
  }
}

function assigned(decisions: Decision[]): [string, number, boolean][] {
  return decisions.flatMap((d) => (d.kind === 'assign' ? [[d.worker.name, d.batch.index, d.backup] as [string, number, boolean]] : []));
}

function jobs(...runs: JobRun[]): { queue: string[]; jobs: Map<string, JobRun> } {
  return { queue: runs.map((r) => r.spec.jobId), jobs: new Map(runs.map((r) => [r.spec.jobId, r])) };
}

describe('scheduler', () => {
  it('fills each ready worker up to its credit, round-robin, and leases what it hands out', () => {
    const run = new JobRun(spec({ total: 100 }));
    const w1 = worker('w1');
    const w2 = worker('w2');
    const plan = schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 });
    assert.deepEqual(assigned(plan.decisions), [['w1', 0, false], ['w2', 1, false], ['w1', 2, false], ['w2', 3, false]]);
    assert.deepEqual(run.batchList().slice(0, 5).map((b) => [b.state, b.worker]), [['running', 'w1'], ['running', 'w2'], ['running', 'w1'], ['running', 'w2'], ['pending', undefined]]);
    assert.equal(plan.wakeAt, null, 'a job runs, no retry waits');
    apply(plan.decisions);
    assert.deepEqual(schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions, [], 'no credit left');
  });

  it('gives nothing to workers in setup, failed, or on a stale setup, and tells idle stale ones to run it again', () => {
    const run = new JobRun(spec());
    const setup = worker('setup', { state: 'setup' });
    const failed = worker('failed', { state: 'failed' });
    const staleIdle = worker('staleIdle', { setupKey: 'old' });
    const staleBusy = worker('staleBusy', { setupKey: 'old', state: 'busy', jobId: '9', leased: new Set([0]) });
    const plan = schedule({ ...jobs(run), workers: [setup, failed, staleIdle, staleBusy], setupKey: KEY, now: 0 });
    assert.deepEqual(plan.decisions.map((d) => [d.kind, d.worker.name]), [['rerunSetup', 'staleIdle']]);
    assert.ok(!plan.decisions.some((d) => d.worker === staleBusy), 'finishes what it holds first');
    assert.deepEqual(assigned(plan.decisions), []);
    assert.equal(run.batch(0)!.state, 'pending');
  });

  it('gives nothing new to a worker the pool is draining', () => {
    const run = new JobRun(spec());
    const draining = worker('w1', { draining: true });
    const plan = schedule({ ...jobs(run), workers: [draining, worker('w2')], setupKey: KEY, now: 0 });
    assert.deepEqual(assigned(plan.decisions), [['w2', 0, false], ['w2', 1, false]]);
  });

  it('serves the oldest unfinished job first and lets a worker finish another job’s batches before taking new ones', () => {
    const old = new JobRun(spec({ jobId: '1', total: 10 }));
    const young = new JobRun(spec({ jobId: '2', total: 40 }));
    const finishing = worker('w1', { state: 'busy', jobId: '0', leased: new Set([3]) });
    const free = worker('w2');
    const plan = schedule({ ...jobs(old, young), workers: [finishing, free], setupKey: KEY, now: 0 });
    assert.deepEqual(assigned(plan.decisions), [['w2', 0, false]]);
    assert.ok(plan.decisions.every((d) => d.kind !== 'assign' || d.run === old));
  });

  it('runs a copy of a straggler on an idle worker once nothing is left to hand out', () => {
    const run = new JobRun(spec({ total: 20 }));
    const w1 = worker('w1');
    const w2 = worker('w2');
    const first = schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 });
    apply(first.decisions);
    assert.deepEqual(assigned(first.decisions), [['w1', 0, false], ['w2', 1, false]]);
    run.markStarted(0, run.batch(0)!.current);
    run.markStarted(1, run.batch(1)!.current);
    run.commit(1, run.batch(1)!.current, 'w2', 10);
    w2.leased.delete(1);
    const now = Date.now();
    assert.deepEqual(assigned(schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now }).decisions), [], 'not straggling yet');
    const later = schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: now + 60_000 });
    assert.deepEqual(assigned(later.decisions), [['w2', 0, true]]);
    const copy = later.decisions.find((d) => d.kind === 'assign')!;
    assert.equal(copy.kind === 'assign' && copy.attempt, run.batch(0)!.backup!.attempt);
  });

  /** Runs batch `i` on `w` for `ms` of the mocked clock and commits it: its time goes into the job's median. */
  function finish(t: TestContext, run: JobRun, w: WorkerEntry, i: number, ms: number): void {
    const attempt = run.batch(i)!.current;
    run.markStarted(i, attempt);
    t.mock.timers.tick(ms);
    run.commit(i, attempt, w.name, 10);
    w.leased.delete(i);
  }

  /** w1 starts batch 0 and holds one more queued behind it; w2 does every other batch of the job, each taking `ms`. */
  function tailOf(t: TestContext, ms: number): { run: JobRun; w1: WorkerEntry; w2: WorkerEntry; queued: number; plan: Decision[] } {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const run = new JobRun(spec({ total: 90 }));
    const w1 = worker('w1');
    const w2 = worker('w2');
    apply(schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions);
    assert.deepEqual([[...w1.leased], [...w2.leased]], [[0, 2], [1, 3]]);
    run.markStarted(0, run.batch(0)!.current);
    let plan: Decision[] = [];
    while (w2.leased.size) {
      for (const i of [...w2.leased]) finish(t, run, w2, i, ms);
      plan = schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions;
      assert.ok(plan.every((d) => d.kind !== 'assign' || d.worker === w2), 'w1 holds its credit');
      apply(plan);
    }
    return { run, w1, w2, queued: 2, plan };
  }

  it('in a job’s tail, asks for a batch queued unstarted behind a long one, once, and hands it to the worker that had nothing', (t) => {
    // the plan made when w2 ran out of batches
    const { run, w1, w2, queued, plan } = tailOf(t, 100);
    const asks = plan.filter((d) => d.kind === 'giveBack');
    assert.deepEqual(asks.map((d) => [d.worker.name, d.kind === 'giveBack' && d.batch.index, d.kind === 'giveBack' && d.attempt]), [['w1', queued, run.batch(queued)!.current]]);
    assert.deepEqual(assigned(plan), [], 'w2 gets no straggler copy while a batch comes back to it');
    assert.deepEqual(schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions.filter((d) => d.kind === 'giveBack'), [], 'asked once');
    // w1's mapper had not taken it: it comes back, and goes to w2, not back to w1 (which has credit for it)
    assert.ok(run.release(queued, run.batch(queued)!.current));
    w1.leased.delete(queued);
    assert.deepEqual(assigned(schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions), [['w2', queued, false]]);
  });

  it('asks nothing back when batches are shorter than a give-back’s round trip', (t) => {
    const { run, w1, w2, plan } = tailOf(t, 1);
    assert.deepEqual(plan.filter((d) => d.kind === 'giveBack'), []);
    assert.deepEqual(schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions.filter((d) => d.kind === 'giveBack'), []);
  });

  it('marks a busy worker holding nothing idle', () => {
    const run = new JobRun(spec({ total: 20 }));
    const w1 = worker('w1');
    const w2 = worker('w2');
    apply(schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions);
    run.commit(0, run.batch(0)!.current, 'w1', 10);
    w1.leased.clear();
    const plan = schedule({ ...jobs(run), workers: [w1, w2], setupKey: KEY, now: 0 });
    assert.deepEqual(plan.decisions.map((d) => [d.kind, d.worker.name]), [['idle', 'w1']]);
  });

  it('asks for a wake-up only while a job runs, at its earliest retry', () => {
    const run = new JobRun(spec({ retryBaseMs: 5000 }));
    const w1 = worker('w1');
    apply(schedule({ ...jobs(run), workers: [w1], setupKey: KEY, now: 0 }).decisions);
    const b = run.batch(0)!;
    run.fail(0, b.current, { code: 'SKYBATCH_E_MAPPER', message: 'x', retryable: true } as never);
    w1.leased.delete(0);
    const plan = schedule({ ...jobs(run), workers: [w1], setupKey: KEY, now: Date.now() });
    assert.equal(plan.wakeAt, b.notBefore);
    assert.equal(nextRetryAt([run]), b.notBefore);
    assert.equal(schedule({ queue: [], jobs: new Map(), workers: [w1], setupKey: KEY, now: 0 }).wakeAt, undefined);
  });

  it('finds overdue batches of unfinished jobs only', () => {
    const run = new JobRun(spec({ jobId: '1', batchTimeoutMs: 1000 }));
    const done = new JobRun(spec({ jobId: '2', batchTimeoutMs: 1000 }));
    for (const r of [run, done]) {
      const b = r.next(0)!;
      r.lease(b, 'w1');
      r.markStarted(0, b.current);
    }
    done.status = 'CANCELLED';
    const found = overdueBatches([run, done], Date.now() + 5000);
    assert.deepEqual(found.map((o) => [o.run.spec.jobId, o.batch.index, o.attempt]), [['1', 0, run.batch(0)!.current]]);
  });

  it('finds a worker that has held unstarted batches past the batch timeout', () => {
    const run = new JobRun(spec({ batchTimeoutMs: 1000 }));
    const table = new WorkerTable();
    const w1 = table.add({ send() {}, close() {} }, { type: 'hello', name: 'w1', host: 'h' } as never);
    table.setupDone(w1);
    table.toldSetup(w1, KEY);
    apply(schedule({ ...jobs(run), workers: [w1], setupKey: KEY, now: 0 }).decisions);
    const t = Date.now();
    assert.deepEqual(stalledWorkers(table, jobs(run).jobs, t), [], 'starts waiting');
    const found = stalledWorkers(table, jobs(run).jobs, t + 2000);
    assert.deepEqual(found.map((s) => [s.worker.name, s.held.map((h) => h.index)]), [['w1', [0, 1]]]);
  });
  it('splits the workers equally between running jobs, each worker filled from one job only', () => {
    const long = new JobRun(spec({ jobId: '1', total: 200 }));
    const short = new JobRun(spec({ jobId: '2', total: 40 }));
    const ws = ['w1', 'w2', 'w3', 'w4'].map((n) => worker(n));
    const plan = schedule({ ...jobs(long, short), workers: ws, setupKey: KEY, now: 0 });
    const byWorker = new Map<string, Set<string>>();
    for (const d of plan.decisions) if (d.kind === 'assign') byWorker.set(d.worker.name, (byWorker.get(d.worker.name) ?? new Set()).add(d.run.spec.jobId));
    assert.deepEqual([...byWorker].map(([w, j]) => [w, [...j]]), [['w1', ['1']], ['w2', ['1']], ['w3', ['2']], ['w4', ['2']]]);
    assert.equal(assigned(plan.decisions).length, 8, 'every worker filled to its credit');
  });

  it('stops refilling a worker a job holds beyond its share, and gives it to the new job once it holds nothing', () => {
    const long = new JobRun(spec({ jobId: '1', total: 200 }));
    const w1 = worker('w1');
    const w2 = worker('w2');
    apply(schedule({ ...jobs(long), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions);
    const short = new JobRun(spec({ jobId: '2', total: 40 }));
    const settle = (w: WorkerEntry) => {
      const index = [...w.leased][0];
      long.commit(index, long.batch(index)!.current, w.name, 10);
      w.leased.delete(index);
    };
    settle(w2);
    // the short job arrived while both workers hold two batches of the long one: w2, nearest to empty, leaves it
    let plan = schedule({ ...jobs(long, short), workers: [w1, w2], setupKey: KEY, now: 0 });
    assert.deepEqual(assigned(plan.decisions), [], 'w2 is not refilled with the long job, and may not take the short one while it holds a long batch');
    settle(w1);
    plan = schedule({ ...jobs(long, short), workers: [w1, w2], setupKey: KEY, now: 0 });
    assert.deepEqual(plan.decisions.filter((d) => d.kind === 'assign').map((d) => d.kind === 'assign' && [d.worker.name, d.run.spec.jobId]), [['w1', '1']], 'w1 keeps the long job');
    apply(plan.decisions);
    settle(w2);
    plan = schedule({ ...jobs(long, short), workers: [w1, w2], setupKey: KEY, now: 0 });
    assert.deepEqual(plan.decisions.filter((d) => d.kind === 'assign').map((d) => d.kind === 'assign' && [d.worker.name, d.run.spec.jobId, d.batch.index]), [['w2', '2', 0], ['w2', '2', 1]]);
  });

  it('a worker fair share moves to a new job gives back what it has queued of the old one, once batches are known to be long', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const long = new JobRun(spec({ jobId: '1', total: 400 }));
    const w1 = worker('w1');
    const w2 = worker('w2');
    // both workers run 100 ms batches of the long job, each holding one running and one queued
    for (let round = 0; round < 4; round++) {
      apply(schedule({ ...jobs(long), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions);
      for (const w of [w1, w2]) finish(t, long, w, Math.min(...w.leased), 100);
    }
    apply(schedule({ ...jobs(long), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions);
    for (const w of [w1, w2]) long.markStarted(Math.min(...w.leased), long.batch(Math.min(...w.leased))!.current);
    assert.deepEqual([w1.leased.size, w2.leased.size], [2, 2]);
    const queued2 = Math.max(...w2.leased);
    const short = new JobRun(spec({ jobId: '2', total: 40 }));
    let plan = schedule({ ...jobs(long, short), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions;
    const asks = plan.flatMap((d) => (d.kind === 'giveBack' ? [[d.worker.name, d.run.spec.jobId, d.batch.index]] : []));
    assert.deepEqual(asks, [['w2', '1', queued2]], 'w2 leaves the long job: its queued batch of it goes back, not the one it runs');
    assert.deepEqual(assigned(plan), []);
    // its mapper had not taken it: the batch goes back to the long job, and w2 takes the short job once its running batch is done
    assert.ok(long.release(queued2, long.batch(queued2)!.current));
    w2.leased.delete(queued2);
    plan = schedule({ ...jobs(long, short), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions;
    assert.deepEqual(plan.filter((d) => d.kind === 'giveBack'), [], 'asked once');
    finish(t, long, w2, Math.min(...w2.leased), 100);
    plan = schedule({ ...jobs(long, short), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions;
    assert.deepEqual(plan.filter((d) => d.kind === 'assign').map((d) => d.kind === 'assign' && [d.worker.name, d.run.spec.jobId]), [['w2', '2'], ['w2', '2']]);
    apply(plan);
    finish(t, long, w1, Math.min(...w1.leased), 100);
    plan = schedule({ ...jobs(long, short), workers: [w1, w2], setupKey: KEY, now: 0 }).decisions;
    assert.deepEqual(plan.filter((d) => d.kind === 'assign').map((d) => d.kind === 'assign' && [d.worker.name, d.batch.index]), [['w1', queued2]], 'the batch given back goes to the long job’s other worker first');
  });

  it('gives a job of priority 2 twice the workers of a job of priority 1', () => {
    const low = new JobRun(spec({ jobId: '1', total: 200 }));
    const high = new JobRun(spec({ jobId: '2', total: 200, priority: 2 }));
    const ws = ['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((n) => worker(n));
    const plan = schedule({ ...jobs(low, high), workers: ws, setupKey: KEY, now: 0 });
    const perJob = (id: string) => new Set(plan.decisions.flatMap((d) => (d.kind === 'assign' && d.run.spec.jobId === id ? [d.worker.name] : []))).size;
    assert.equal(perJob('1'), 2);
    assert.equal(perJob('2'), 4);
  });

  it('gives the workers a job cannot use to the others', () => {
    const tiny = new JobRun(spec({ jobId: '1', total: 10 }));
    const big = new JobRun(spec({ jobId: '2', total: 200 }));
    const ws = ['w1', 'w2', 'w3', 'w4'].map((n) => worker(n));
    const plan = schedule({ ...jobs(tiny, big), workers: ws, setupKey: KEY, now: 0 });
    assert.deepEqual(plan.decisions.flatMap((d) => (d.kind === 'assign' && d.run === tiny ? [d.worker.name] : [])), ['w1'], 'one batch: one worker');
    assert.equal(new Set(plan.decisions.flatMap((d) => (d.kind === 'assign' && d.run === big ? [d.worker.name] : []))).size, 3);
  });

  it('keeps a worker that holds nothing on its last job when that job is short of workers', () => {
    const a = new JobRun(spec({ jobId: '1', total: 200 }));
    const b = new JobRun(spec({ jobId: '2', total: 200 }));
    const onB = worker('w1', { jobId: '2' });
    const onA = worker('w2', { jobId: '1' });
    const plan = schedule({ ...jobs(a, b), workers: [onB, onA], setupKey: KEY, now: 0 });
    assert.ok(plan.decisions.every((d) => d.kind !== 'assign' || d.worker.jobId === d.run.spec.jobId), 'no mapper restarted');
  });

  it('hands out shares one worker at a time by weight, capped by what each job can use', () => {
    assert.deepEqual([...shareTargets([{ id: 'a', weight: 1, demand: 100 }, { id: 'b', weight: 1, demand: 100 }], 5)], [['a', 3], ['b', 2]], 'the odd worker to the older job');
    assert.deepEqual([...shareTargets([{ id: 'a', weight: 1, demand: 1 }, { id: 'b', weight: 1, demand: 100 }], 5)], [['a', 1], ['b', 4]]);
    assert.deepEqual([...shareTargets([{ id: 'a', weight: 1, demand: 100 }, { id: 'b', weight: 3, demand: 100 }], 4)], [['a', 1], ['b', 3]]);
    assert.deepEqual([...shareTargets([{ id: 'a', weight: 1, demand: 100 }, { id: 'b', weight: 1, demand: 100 }, { id: 'c', weight: 1, demand: 100 }], 1)], [['a', 1], ['b', 0], ['c', 0]]);
    assert.deepEqual([...shareTargets([{ id: 'a', weight: 1, demand: 1 }], 3)], [['a', 1]], 'workers no job can use stay unallotted');
  });
});
