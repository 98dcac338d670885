import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchClock } from '../../runtime/coordinator/batch-clock.js';
import { EventHub } from '../../runtime/coordinator/event-hub.js';
import { MAX_JOB_IN_FLIGHT, MAX_WORKER_CREDIT, WORKER_CREDIT, type JobEvent } from '../../runtime/protocol.js';

describe('batch clock', () => {
  it('gives workers more batches at once when batches are short, and the default credit for long ones or before any is timed', () => {
    let now = 0;
    const short = new BatchClock(() => now);
    assert.equal(short.credit(), WORKER_CREDIT);
    for (let i = 0; i < 50; i++) short.committed(1, 1);
    assert.equal(short.credit(), 100); // 100 ms of queued work
    const noop = new BatchClock(() => now);
    for (let i = 0; i < 50; i++) noop.committed(1, 0); // started and done reported in one frame
    assert.equal(noop.credit(), MAX_WORKER_CREDIT);
    const medium = new BatchClock(() => now);
    for (let i = 0; i < 50; i++) medium.committed(1, 20);
    assert.equal(medium.credit(), 5);
    const long = new BatchClock(() => now);
    for (let i = 0; i < 50; i++) long.committed(1, 300);
    assert.equal(long.credit(), WORKER_CREDIT);
  });

  it('gives each worker only its share of the batches a job may have in flight, and never less than the default', () => {
    const noop = new BatchClock(() => 0);
    for (let i = 0; i < 50; i++) noop.committed(1, 0);
    assert.equal(noop.credit(2), MAX_WORKER_CREDIT);
    assert.equal(noop.credit(1000), Math.floor(MAX_JOB_IN_FLIGHT / 1000));
    assert.ok(noop.credit(1000) * 1000 <= MAX_JOB_IN_FLIGHT);
    assert.equal(noop.credit(100_000), WORKER_CREDIT);
    const long = new BatchClock(() => 0);
    for (let i = 0; i < 50; i++) long.committed(1, 300);
    assert.equal(long.credit(1000), WORKER_CREDIT);
  });

  it('takes the median of the last 200 durations, before and after the ring is full', () => {
    const clock = new BatchClock(() => 0);
    for (const d of [9, 1, 5]) clock.committed(1, d);
    assert.equal(clock.median, 5);
    // recomputed on each of the first 25, then every 25th: at the 224th the ring holds 979 … 780
    for (let i = 0; i < 221; i++) clock.committed(1, 1000 - i);
    assert.equal(clock.median, 880);
  });

  it("times a batch by its worker's time between commits: a 200 ms batch reported started and done in one frame keeps the default credit", () => {
    let now = 1000;
    const cpu = new BatchClock(() => now);
    for (let i = 0; i < 20; i++) {
      const leasedAt = now;
      now += 200; // the mapper's synchronous loop: start and end reach the coordinator together
      cpu.committed(1, 0, { worker: 'w1', leasedAt });
    }
    assert.equal(cpu.credit(), WORKER_CREDIT);
    assert.equal(cpu.median, 200);
    // two batches reported in one frame after 400 ms share it; an idle time before a hand-over is not counted
    const pair = new BatchClock(() => now);
    for (let i = 0; i < 10; i++) {
      const leasedAt = (now += 1000);
      now += 400;
      pair.committed(1, 0, { worker: 'w1', leasedAt });
      pair.committed(1, 0, { worker: 'w1', leasedAt });
    }
    assert.equal(pair.median, 200);
    // no-op batches in frames of 50: the credit still goes to the most
    const noop = new BatchClock(() => now);
    for (let f = 0; f < 10; f++) {
      const leasedAt = now;
      now += 2;
      for (let i = 0; i < 50; i++) noop.committed(1, 0, { worker: f % 2 ? 'a' : 'b', leasedAt });
    }
    assert.equal(noop.credit(), MAX_WORKER_CREDIT);
  });

  it('reports items per second over the last seconds, forgetting older commits', () => {
    let now = 100_000;
    const clock = new BatchClock(() => now);
    assert.equal(clock.itemsPerSec(), 0);
    clock.committed(0);
    for (let s = 0; s < 4; s++) {
      now += 1000;
      clock.committed(500);
    }
    assert.equal(clock.itemsPerSec(), 500);
    now += 20_000;
    assert.equal(clock.itemsPerSec(), 0);
  });
});

describe('event hub', () => {
  it("sends a 'progress' subscriber no per-batch or worker events, but failed attempts, logs and job ends", () => {
    const hub = new EventHub();
    const all: JobEvent[] = [];
    const bar: JobEvent[] = [];
    hub.subscribe({ jobId: '1', send: (e) => all.push(e) });
    hub.subscribe({ jobId: '1', detail: 'progress', send: (e) => bar.push(e) });
    const error = { code: 'SKYBATCH_E_MAPPER', message: 'boom', retryable: true };
    const events: JobEvent[] = [
      { kind: 'batch', jobId: '1', index: 0, start: 0, end: 0, state: 'running', attempt: 1 },
      { kind: 'batch', jobId: '1', index: 0, start: 0, end: 0, state: 'retrying', attempt: 1, error },
      { kind: 'worker', worker: { workerId: 'w1', name: 'w1', host: 'h', state: 'busy', batches: [] } },
      { kind: 'log', jobId: '1', stream: 'stdout', line: 'hi' },
    ];
    for (const e of events) hub.emit(e);
    assert.deepEqual(all, events);
    assert.deepEqual(bar.map((e) => e.kind), ['batch', 'log']);
    assert.equal((bar[0] as Extract<JobEvent, { kind: 'batch' }>).state, 'retrying');
  });

  it("says a job's per-batch events are wanted only while a subscriber of that job (or of all) takes them", () => {
    const hub = new EventHub();
    assert.equal(hub.wantsBatchEvents('1'), false);
    const bar = hub.subscribe({ jobId: '1', detail: 'progress', send() {} });
    const other = hub.subscribe({ jobId: '2', send() {} });
    assert.equal(hub.wantsBatchEvents('1'), false, 'a progress bar and another job\'s panel do not');
    assert.equal(hub.wantsBatchEvents('2'), true);
    const panel = hub.subscribe({ jobId: '1', send() {} });
    assert.equal(hub.wantsBatchEvents('1'), true);
    panel();
    const everything = hub.subscribe({ send() {} });
    assert.equal(hub.wantsBatchEvents('1'), true, 'a subscriber of every job does');
    everything();
    bar();
    other();
    assert.equal(hub.wantsBatchEvents('1'), false);
    assert.equal(hub.wantsBatchEvents('2'), false);
  });
});
