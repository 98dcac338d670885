import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JournalRecord } from '../../runtime/store/job-store.js';
import { JournalFold } from '../../runtime/store/journal-fold.js';
import { mulberry32 as prng } from '../storage/fault-proxy.js';

type Commit = { s: number; x: number; a: number; n: number };

/** Folds `records`, then folds its snapshot into a second fold: both must say what `want` says. */
function check(records: JournalRecord[], want: Map<number, Commit>, what: string): void {
  const fold = new JournalFold();
  fold.reserve(64);
  for (const r of records) fold.fold(r);
  const snap = fold.snapshot();
  const again = new JournalFold();
  again.fold(JSON.parse(JSON.stringify(snap)) as JournalRecord);
  const sorted = [...want].sort((x, y) => x[0] - y[0]);
  for (const [name, f] of [['folded', fold], ['from its snapshot', again]] as const) {
    const state = f.toState();
    assert.deepEqual([...state.commits], sorted, `${what}: commits ${name}`);
    assert.deepEqual([...state.committed], sorted.map(([i, c]) => [i, c.a]), `${what}: attempts ${name}`);
    assert.equal(state.itemsDone, sorted.reduce((t, [, c]) => t + c.n, 0), `${what}: items ${name}`);
    for (const [i, c] of sorted) assert.deepEqual(state.commits.get(i), c, `${what}: batch ${i} ${name}`);
    assert.equal(state.commits.get(sorted.length ? sorted[sorted.length - 1][0] + 1 : 0), undefined);
  }
}

/**
 * A job of `batches` batches of `width` items (the last one shorter), committed in a
 * random order with some lost and committed again, and `splits` batches split into
 * single-item batches appended after the others.
 */
function job(seed: number, batches: number, width: number, splits: number, firstSingle = false): { records: JournalRecord[]; want: Map<number, Commit> } {
  const rand = prng(seed);
  const total = batches * width - Math.floor(width / 2);
  const ranges: [number, number][] = [];
  for (let i = 0; i < batches; i++) ranges.push([i * width, Math.min(total, (i + 1) * width) - 1]);
  const split = new Set<number>();
  while (split.size < Math.min(splits, batches)) split.add(Math.floor(rand() * batches));
  for (const i of split) for (let item = ranges[i][0]; item <= ranges[i][1]; item++) ranges.push([item, item]);
  const order = ranges.map((_, i) => i).filter((i) => !split.has(i));
  for (let k = order.length - 1; k > 0; k--) {
    const j = Math.floor(rand() * (k + 1));
    [order[k], order[j]] = [order[j], order[k]];
  }
  if (firstSingle) order.unshift(...order.splice(order.indexOf(ranges.length - 1), 1));
  const records: JournalRecord[] = [];
  const want = new Map<number, Commit>();
  for (const i of order) {
    const [s, x] = ranges[i];
    const a = 1 + Math.floor(rand() * 3);
    const n = rand() < 0.02 ? x - s : x - s + 1;
    records.push({ e: 'commit', i, s, x, a, w: 'w', n });
    want.set(i, { s, x, a, n });
    if (rand() < 0.01) {
      records.push({ e: 'lost', i, a });
      want.delete(i);
    }
    // a later commit of a batch already committed changes nothing
    if (want.has(i) && rand() < 0.01) records.push({ e: 'commit', i, s, x, a: a + 1, w: 'w2', n });
  }
  return { records, want };
}

describe('the journal fold keeps committed batches', () => {
  it('with their ranges, items and attempts, in a job without splits', () => {
    const { records, want } = job(1, 5000, 3, 0);
    check(records, want, 'no splits');
  });

  it('with the short last batch and a few splits', () => {
    const { records, want } = job(2, 3000, 5, 20);
    check(records, want, 'a few splits');
  });

  it('with more single-item batches than it keeps apart (every range in arrays)', () => {
    const { records, want } = job(3, 2000, 8, 700);
    assert.ok(want.size > 5000);
    check(records, want, 'many splits');
  });

  it('when the first commit is a single-item batch whose item equals its index', () => {
    // a stride of 1 fits batch 6 holding item 6: the batches of 2 items after it do not follow it
    const { records, want } = job(4, 5, 2, 0);
    records.unshift({ e: 'commit', i: 6, s: 6, x: 6, a: 1, w: 'w', n: 1 });
    want.set(6, { s: 6, x: 6, a: 1, n: 1 });
    check(records, want, 'a stride of 1 learnt first');
    const big = job(5, 6000, 4, 3, true);
    check(big.records, big.want, 'a single first, then thousands of batches');
  });
});
