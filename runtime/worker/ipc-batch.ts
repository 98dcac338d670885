/**
 * Agent ↔ mapper process messages, several per IPC write. Node writes every `send` to the
 * channel on its own: at batchSize 1 those writes were 41 % of the mapper's busy time and a
 * quarter of the agent's (docs/bench.md). Messages sent in one tick leave as one array, in
 * order; a lone message leaves as itself.
 */
export function batchedSender<M>(send: (msg: M | M[]) => void, onError: (err: Error) => void): ((msg: M) => void) & { flush: () => void } {
  let queued: M[] = [];
  const flush = () => {
    if (queued.length === 0) return; // flushed early (`flush()`) in this tick
    const out = queued;
    queued = [];
    try {
      send(out.length === 1 ? out[0] : out);
    } catch (err) {
      onError(err as Error);
    }
  };
  const sender = (msg: M) => {
    if (queued.push(msg) === 1) process.nextTick(flush);
  };
  /** Sends what is queued now, not at the tick's end (which may be a long synchronous mapper batch away). */
  sender.flush = flush;
  return sender;
}

/** Each message of what `batchedSender` sent: an array of them, or one. */
export function eachMessage(raw: unknown, fn: (msg: unknown) => void): void {
  if (Array.isArray(raw)) for (const m of raw) fn(m);
  else fn(raw);
}
