import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Step, stepIterator } from '../../runtime/worker/step-iterator.js';

/** A source of steps the test releases one at a time: each `advance` call takes the next planned answer. */
function planned(answers: (() => Step<number>)[]) {
  let calls = 0;
  return {
    advance: (): Step<number> => {
      const a = answers[calls++];
      if (!a) throw new Error(`advance called ${calls} times, more than planned`);
      return a();
    },
    calls: () => calls,
  };
}

const value = (v: number) => () => ({ done: false as const, value: v });
const done = () => ({ done: true as const, value: undefined });

describe('load() step iterator', () => {
  test('yields ready and late values in order and ends with the source', async () => {
    const late = (v: number) => () => new Promise<IteratorResult<number, undefined>>((resolve) => setImmediate(() => resolve({ done: false, value: v })));
    const src = planned([value(1), late(2), value(3), done]);
    const seen: number[] = [];
    for await (const v of stepIterator(src.advance)) seen.push(v);
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(src.calls(), 4);
  });

  test('next() calls made before the last one settled run after it, in order, one advance at a time', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let running = 0;
    let overlapped = false;
    const slow = (v: number) => () => {
      running++;
      if (running > 1) overlapped = true;
      return gate.then(() => {
        running--;
        return { done: false as const, value: v };
      });
    };
    const src = planned([slow(1), value(2), slow(3), done]);
    const it = stepIterator(src.advance);
    const results = [it.next(), it.next(), it.next(), it.next(), it.next()];
    assert.equal(src.calls(), 1, 'the queued calls wait for the first');
    release();
    const got = await Promise.all(results);
    assert.deepEqual(got.map((r) => (r.done ? 'done' : r.value)), [1, 2, 3, 'done', 'done']);
    assert.equal(overlapped, false);
    assert.equal(src.calls(), 4, 'no advance after the end');
  });

  test('a step that throws rejects that next() and ends the iteration; return() ends it too', async () => {
    const boom = new Error('no saveResults() for the last batch');
    const src = planned([value(1), () => {
      throw boom;
    }]);
    const it = stepIterator(src.advance);
    assert.deepEqual(await it.next(), { done: false, value: 1 });
    await assert.rejects(it.next(), boom);
    assert.deepEqual(await it.next(), { done: true, value: undefined });
    assert.equal(src.calls(), 2);

    const late = planned([() => Promise.reject(boom)]);
    const it2 = stepIterator(late.advance);
    await assert.rejects(it2.next(), boom);
    assert.deepEqual(await it2.next(), { done: true, value: undefined });

    const src3 = planned([value(7), value(8)]);
    const seen: number[] = [];
    for await (const v of stepIterator(src3.advance)) {
      seen.push(v);
      break;
    }
    assert.deepEqual(seen, [7]);
    assert.equal(src3.calls(), 1, 'break calls return(), which takes no step');
  });
});
