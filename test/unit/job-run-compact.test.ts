import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import type { WireError } from '../../formats/common/errors.js';
import { JobRun } from '../../runtime/coordinator/job-run.js';
import type { JobSpec } from '../../runtime/protocol.js';
import { Journal } from '../../runtime/store/journal.js';
import { appendJournalRecord, readJournal } from '../../runtime/store/job-store.js';
import { jobDir } from '../../runtime/store/pool-store.js';
import { mulberry32 as prng } from '../storage/fault-proxy.js';
import { ReferenceJobRun } from './job-run-reference.js';
import { spec, useTempHome } from './spec.js';

const retryable: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'boom', retryable: true } as WireError;
const permanent: WireError = { code: 'SKYBATCH_E_MAPPER', message: 'bad', retryable: false } as WireError;

let nextId = 1;

/** The same job twice: the compact `JobRun` and main's, each with a journal of its own. */
class Pair {
  readonly ids = [String(nextId++), String(nextId++)];
  journals: Journal[] = [];
  run!: JobRun;
  ref!: ReferenceJobRun;
  /** Attempts handed out and not known to be over: `[index, attempt, worker]`. */
  held: [number, number, string][] = [];

  constructor(readonly spec: JobSpec) {
    for (const id of this.ids) fs.mkdirSync(jobDir(id), { recursive: true });
    this.load();
  }

  /** (Re)loads both runs from their journals, as a restarted coordinator does. */
  load(): void {
    for (const j of this.journals) j.close();
    this.journals = this.ids.map((id) => new Journal(id));
    this.run = new JobRun({ ...this.spec, jobId: this.ids[0] }, readJournal(this.ids[0]), this.journals[0]);
    this.ref = new ReferenceJobRun({ ...this.spec, jobId: this.ids[1] }, readJournal(this.ids[1]), this.journals[1]);
    this.held = [];
    this.same('after a load');
    this.run.setStatus('RUNNING');
    this.ref.setStatus('RUNNING');
  }

  same(when: string): void {
    const { run, ref } = this;
    assert.deepEqual(run.batchInfo(), ref.batchInfo(), `batch table ${when}`);
    const summary = (s: ReturnType<JobRun['summary']>) => ({ ...s, jobId: '', finishedAt: undefined });
    assert.deepEqual(summary(run.summary()), summary(ref.summary()), `summary ${when}`);
    assert.equal(run.batchCount, ref.batches.length);
    assert.equal(run.allDone, ref.allDone);
    assert.equal(run.backlog(), ref.backlog());
    assert.equal(run.retryingCount(), ref.retryingCount());
    assert.equal(run.failedCount(), ref.failedCount());
    // live batches: their whole bookkeeping, attempts and failures included
    for (const r of ref.batches) {
      if (r.state !== 'running' && r.state !== 'retrying' && r.state !== 'failed') continue;
      const b = run.batch(r.index)!;
      const pick = (x: typeof r) => [x.state, x.current, x.attempts, x.failures, x.started, x.worker, x.backup, x.lastError?.code];
      assert.deepEqual(pick(b), pick(r), `batch ${r.index} ${when}`);
    }
  }

  /** One random event, done to both runs; their answers must agree. */
  step(rnd: () => number, k: number): void {
    const { run, ref } = this;
    const worker = `w${Math.floor(rnd() * 4)}`;
    const op = rnd();
    // attempts that are over stay a little while, for stale reports (fencing)
    if (rnd() < 0.5) this.held = this.held.filter(([i, a, w]) => this.ref.heldBy(i, w)?.attempt === a);
    const pick = () => this.held[Math.floor(rnd() * this.held.length)];
    if (op < 0.3 || !this.held.length) {
      const b = run.next(Infinity);
      const r = ref.next(Infinity);
      assert.equal(b?.index, r?.index, `next() at step ${k}`);
      if (!b || !r) return;
      run.lease(b, worker);
      ref.lease(r, worker);
      assert.equal(b.current, r.current);
      this.held.push([b.index, b.current, worker]);
    } else if (op < 0.45) {
      const [i, a] = pick();
      assert.equal(run.markStarted(i, a)?.index, ref.markStarted(i, a)?.index);
    } else if (op < 0.7) {
      const [i, a, w] = pick();
      const stale = rnd() < 0.1;
      const items = ref.batches[i].end - ref.batches[i].start + 1;
      assert.deepEqual(run.commit(i, stale ? a + 1 : a, w, items), ref.commit(i, stale ? a + 1 : a, w, items), `commit at step ${k}`);
    } else if (op < 0.85) {
      const [i, a] = pick();
      const err = rnd() < (this.spec.onItemError === 'skip' ? 0.2 : 0.03) ? permanent : retryable;
      const out = run.fail(i, a, err);
      assert.equal(out, ref.fail(i, a, err), `fail at step ${k}`);
      if (out === 'split') {
        const singles = run.split(i).map((b) => [b.index, b.start, b.end]);
        assert.deepEqual(singles, ref.split(i).map((b) => [b.index, b.start, b.end]));
      } else if (out === 'skip') {
        const dead = { index: ref.batches[i].start, input: null, error: 'bad', code: 'SKYBATCH_E_MAPPER' };
        run.skip(i, dead);
        ref.skip(i, dead);
      }
    } else if (op < 0.93) {
      const [i, a] = pick();
      assert.equal(run.release(i, a), ref.release(i, a), `release at step ${k}`);
    } else {
      // a straggler's copy on another worker
      const [i] = pick();
      const r = ref.batches[i];
      if (r.state !== 'running' || r.backup || r.worker === worker) return;
      const a = run.leaseBackup(run.batch(i)!, worker);
      assert.equal(a, ref.leaseBackup(r, worker));
      this.held.push([i, a, worker]);
    }
  }

  /** Both journals, record by record, without the status records' times. */
  journalsAgree(): void {
    for (const j of this.journals) j.flush();
    const text = (id: string) =>
      fs.readFileSync(path.join(jobDir(id), 'journal.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => {
        const r = JSON.parse(l) as Record<string, unknown>;
        delete r.at;
        if (r.e === 'snap') delete r.finishedAt;
        return r;
      });
    assert.deepEqual(text(this.ids[0]), text(this.ids[1]));
  }

  close(): void {
    for (const j of this.journals) j.close();
  }
}

describe('JobRun compact batch table against main’s JobRun', () => {
  useTempHome();

  const jobs: [string, Partial<JobSpec>][] = [
    ['retries, stragglers and a failing job', { total: 57, batchSize: 4, retryBaseMs: 0, maxAttempts: 3 }],
    ['splits and skips (onItemError: skip)', { total: 57, batchSize: 4, retryBaseMs: 0, maxAttempts: 2, onItemError: 'skip' }],
    ['batches of one item', { total: 40, batchSize: 1, retryBaseMs: 0, maxAttempts: 2, onItemError: 'skip' }],
  ];
  for (const [name, over] of jobs) {
    it(`agrees event by event, and after restores from a snapshot and a tail: ${name}`, () => {
      for (let seed = 1; seed <= 12; seed++) {
        const rnd = prng(seed);
        const pair = new Pair(spec(over));
        let k = 0;
        const until = (n: number) => {
          for (const end = k + n; k < end && !pair.ref.allDone && pair.ref.failedCount() === 0; k++) {
            pair.step(rnd, k);
            pair.same(`after step ${k} (seed ${seed})`);
          }
        };
        until(60);
        // a restart from a journal with no snapshot
        pair.load();
        until(60);
        // a snapshot, then a tail of records after it, then a restart
        for (const j of pair.journals) j.compact();
        until(60);
        pair.journalsAgree();
        pair.load();
        until(2000);
        assert.ok(pair.ref.allDone || pair.ref.failedCount() > 0, `seed ${seed} ran to the end of the job`);
        pair.journalsAgree();
        pair.close();
      }
    });
  }

  it('restores a job with splits and a few commits without a record per batch', () => {
    const s = spec({ jobId: '900', total: 100_000, batchSize: 2, onItemError: 'skip', maxAttempts: 1 });
    fs.mkdirSync(jobDir('900'), { recursive: true });
    const journal = new Journal('900');
    const run = new JobRun(s, undefined, journal);
    const b = run.next(0)!;
    run.lease(b, 'w');
    assert.equal(run.fail(b.index, b.current, retryable), 'split');
    run.split(b.index);
    const single = run.next(0)!;
    run.lease(single, 'w');
    run.commit(single.index, single.current, 'w', 1);
    journal.compact();
    journal.close();
    const again = new JobRun(s, readJournal('900'));
    assert.equal(again.batchCount, 50_002);
    assert.deepEqual([again.batch(0)?.state, again.batch(50_000)?.state, again.batch(50_001)?.state], ['split', 'done', 'pending']);
    assert.deepEqual([again.batch(50_001)?.start, again.batch(49_999)?.end], [1, 99_999]);
    // the dispatch order: the split's remaining single first, then the rest in order
    assert.deepEqual([again.next(0)?.index, again.next(0)?.index], [50_001, 1]);
  });

  it('holds no object per batch for a 1,000,000-batch job, new or restored from 600,000 commits', () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    const s = spec({ jobId: '901', total: 1_000_000, batchSize: 1 });
    fs.mkdirSync(jobDir('901'), { recursive: true });
    // a snapshot (600,000 first attempts as one run) and a tail
    appendJournalRecord('901', { e: 'snap', status: 'RUNNING', loads: 1, retries: 0, attemptsUpTo: 2000, splits: [], dead: [], skipped: [], failures: [], commits: [[0, 600_000, 0, 1, 1001]] });
    for (let i = 600_000; i < 600_100; i++) appendJournalRecord('901', { e: 'commit', i, s: i, x: i, a: 1001, w: 'w', n: 1 });
    const before = heap();
    const fresh = new JobRun(s);
    const restored = new JobRun(s, readJournal('901'));
    const grew = heap() - before;
    assert.equal(fresh.batchCount, 1_000_000);
    assert.equal(restored.batchesDone, 600_100);
    assert.equal(restored.batch(600_099)?.state, 'done');
    assert.equal(restored.next(0)?.index, 600_100);
    // a record per batch took about 130 MB here; the compact table lives in array buffers
    assert.ok(grew < 16, `the heap grew by ${grew.toFixed(1)} MB`);
  });
});
