const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/** The value of an iteration step, at once or later. */
export type Step<T> = IteratorResult<T, undefined> | Promise<IteratorResult<T, undefined>>;

/**
 * An async iterator over the steps `advance` gives, for `load()`. Not an async generator: a
 * step that is ready (a batch prefetched while the last one ran) costs one settled promise,
 * not the several a generator and its awaits create, each of which also runs Node 20's
 * AsyncLocalStorage promise hooks. As with a generator, a `next()` called before the last
 * one settled runs after it, and a thrown step or `return()` ends the iteration.
 */
export function stepIterator<T>(advance: () => Step<T>): AsyncIterableIterator<T> {
  let done = false;
  /** The last `next()` result, while it is unsettled. */
  let last: Promise<unknown> | undefined;
  const track = (p: Promise<unknown>) => {
    last = p;
    const clear = () => {
      if (last === p) last = undefined;
    };
    p.then(clear, clear);
  };
  const step = (): Promise<IteratorResult<T, undefined>> => {
    if (done) return Promise.resolve(DONE);
    let r: Step<T>;
    try {
      r = advance();
    } catch (err) {
      done = true;
      return Promise.reject(err);
    }
    if (!(r instanceof Promise)) {
      if (r.done) done = true;
      return Promise.resolve(r);
    }
    const p = r.then(
      (v) => {
        if (v.done) done = true;
        return v;
      },
      (err: unknown) => {
        done = true;
        throw err;
      },
    );
    // called from a queued next(), that next()'s own promise is `last` already
    if (!last) track(p);
    return p;
  };
  const it: AsyncIterableIterator<T> = {
    next: () => {
      if (!last) return step();
      const p = last.then(step, step);
      track(p);
      return p;
    },
    return: () => {
      done = true;
      return Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}

export { DONE };
