import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchClock } from '../../runtime/coordinator/batch-clock.js';
import { EventHub } from '../../runtime/coordinator/event-hub.js';
import { MAX_WORKER_CREDIT, WORKER_CREDIT, type JobEvent } from '../../runtime/protocol.js';

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
});
