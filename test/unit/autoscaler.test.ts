import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SkybatchError } from '../../formats/common/errors.js';
import { AutoscalePolicy } from '../../runtime/backends/autoscaler.js';
import { PoolSizer } from '../../runtime/backends/pool-sizer.js';
import type { WorkerBackend } from '../../runtime/backends/backend.js';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import { poolLoad } from '../../runtime/coordinator/scheduler.js';
import { autoscaleOf, minWorkers, parsePoolConfig } from '../../runtime/pool-config.js';
import type { BackendWorkerSummary } from '../../runtime/protocol.js';
import { spec } from './spec.js';

describe('autoscaling policy', () => {
  it('grows at once with the pending batches, up to max', () => {
    const p = new AutoscalePolicy({ min: 0, max: 4 }, 10_000);
    assert.deepEqual(p.decide(0, { pending: 0, holding: 0 }, 0).wanted, 0);
    assert.match(p.decide(0, { pending: 0, holding: 0 }, 0).reason, /at min 0: nothing to run/);
    assert.equal(p.decide(0, { pending: 2, holding: 0 }, 0).wanted, 2);
    const full = p.decide(2, { pending: 30, holding: 2 }, 0);
    assert.equal(full.wanted, 4);
    assert.match(full.reason, /growing to 4 \(max 4\): 30 batch\(es\) pending, 2 worker\(s\) busy/);
    assert.match(p.decide(4, { pending: 30, holding: 4 }, 0).reason, /^at max 4/);
  });

  it('shrinks only after wanting fewer workers for the whole idle delay, never below the busy ones or min', () => {
    const p = new AutoscalePolicy({ min: 1, max: 4 }, 10_000);
    const keep = p.decide(4, { pending: 0, holding: 2 }, 1000);
    assert.equal(keep.wanted, 4);
    assert.match(keep.reason, /keeping 4: 2 worker\(s\) idle since .*shrinking to 2 at .*idle_delay 10 s/);
    assert.equal(p.decide(4, { pending: 0, holding: 2 }, 10_999).wanted, 4);
    const shrink = p.decide(4, { pending: 0, holding: 2 }, 11_000);
    assert.equal(shrink.wanted, 2);
    assert.match(shrink.reason, /shrinking to 2 \(min 1\)/);
    assert.equal(p.decide(2, { pending: 0, holding: 0 }, 11_500).wanted, 2, 'the next shrink waits its own delay');
    assert.equal(p.decide(2, { pending: 0, holding: 0 }, 21_000).wanted, 1, 'down to min, not below');
  });

  it('forgets an idle spell when work comes back before the delay', () => {
    const p = new AutoscalePolicy({ min: 0, max: 2 }, 10_000);
    p.decide(2, { pending: 0, holding: 0 }, 0);
    assert.equal(p.decide(2, { pending: 5, holding: 2 }, 5000).wanted, 2);
    assert.equal(p.decide(2, { pending: 0, holding: 0 }, 12_000).wanted, 2, 'the delay starts again from 12 s');
    assert.equal(p.decide(2, { pending: 0, holding: 0 }, 22_000).wanted, 0);
  });

  it('counts the batches of unfinished jobs not handed out, and the workers holding one', () => {
    const running = new JobRun(spec({ jobId: '1', total: 50 }));
    running.lease(running.next(0)!, 'w1');
    const done = new JobRun(spec({ jobId: '2', total: 50 }));
    done.status = 'CANCELLED';
    const w = (name: string, leased: number[]) => ({ name, state: 'busy', leased: new Set(leased) }) as never;
    assert.deepEqual(poolLoad([running, done], [w('w1', [0]), w('w2', [])]), { pending: 4, holding: 1 });
  });
});

describe('pool sizer', () => {
  it('drains idle workers before one that holds a batch', () => {
    const started: string[] = [];
    const backend: WorkerBackend = {
      kind: 'local',
      remote: false,
      startWorkers: (n) => Array.from({ length: n }, () => `w${started.push(`w${started.length}`) - 1}`),
      stopWorker: async () => {},
      workers: () => started.map((name): BackendWorkerSummary => ({ name, host: 'h', state: 'running', since: '', failures: 0 })),
      teardown: async () => {},
    };
    const drained: string[] = [];
    const sizer = new PoolSizer(backend, { drain: (n) => (drained.push(n), n !== 'w2'), undrain: () => {}, holds: (n) => n === 'w2' }, () => {});
    sizer.resize(3);
    sizer.resize(1);
    sizer.close();
    assert.deepEqual(drained.slice(0, 2), ['w1', 'w0'], 'the newest idle ones; w2 holds a batch');
  });
});

describe('pool.workers in pool.yaml', () => {
  it('takes { min, max } to autoscale, with idle_delay', () => {
    const c = parsePoolConfig('pool:\n  workers: { min: 0, max: 3 }\n  idle_delay: 2m\n');
    assert.deepEqual(autoscaleOf(c), { min: 0, max: 3 });
    assert.equal(c.pool.workers, 3, 'placement checks the most workers the pool may run');
    assert.equal(c.pool.idle_delay, 120);
    assert.equal(minWorkers(c), 0);
    assert.equal(autoscaleOf(parsePoolConfig('pool:\n  workers: 2\n')), undefined);
  });

  it('names the line and field of a bad range', () => {
    const bad = (yaml: string, want: RegExp) =>
      assert.throws(() => parsePoolConfig(yaml, 'p.yaml'), (e: SkybatchError) => e.code === 'SKYBATCH_E_POOL_CONFIG' && want.test(e.message));
    bad('pool:\n  workers:\n    min: 3\n    max: 2\n', /p\.yaml line 3: pool\.workers\.min: min must not be more than max/);
    bad('pool:\n  workers: { min: 1 }\n', /line 2: pool\.workers\.max: missing/);
    bad('pool:\n  workers: { min: -1, max: 2 }\n', /pool\.workers\.min: expected 0 or more/);
    bad('pool:\n  workers: { min: 0, max: 2, step: 1 }\n', /pool\.workers\.step: unknown field step/);
    bad('pool:\n  workers: many\n', /line 2: pool\.workers: expected a whole number of workers, or \{ min, max \}/);
    bad('pool:\n  workers: 2\n  idle_delay: 30s\n', /line 3: pool\.idle_delay: only an autoscaled pool/);
    bad('pool:\n  workers: { min: 0, max: 2 }\n  idle_delay: soon\n', /line 3: pool\.idle_delay: expected seconds/);
  });
});
