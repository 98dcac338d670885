/**
 * Node flags of the coordinator process, for every place that starts it (`pool apply`, the
 * bench). Set at spawn: V8 sizes its heap when it is created.
 *
 * A busy coordinator makes garbage that outlives a scavenge (batches in flight, frames
 * waiting for a write: about 0.5 KB a batch), so its old generation fills with dead objects;
 * V8's default growing factor let that reach 75-110 MB of heap around 15-20 MB of live
 * objects before a full GC, a saw tooth of 50 MB and more in the RSS. A growing factor of
 * 1.5 keeps it near 40-60 MB at no CPU per batch we could measure (docs/bench.md,
 * "Coordinator start and heap flags"); smaller semi-spaces cut a little more RSS but cost
 * 1-2 us a batch.
 */
export const COORDINATOR_NODE_FLAGS: readonly string[] = ['--enable-source-maps', '--heap-growing-percent=50'];
