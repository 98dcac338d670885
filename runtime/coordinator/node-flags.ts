/**
 * Node flags of the coordinator process, for every place that starts it (`pool apply`, the
 * bench). Set at spawn: V8 sizes its heap when it is created.
 *
 * A busy coordinator makes about 0.5 KB of garbage per batch that outlives a scavenge (batches
 * in flight, frames waiting for a write), so its old generation fills with dead objects; V8's
 * default growing factor let that reach 75-110 MB of heap around 15-20 MB of live objects
 * before a full GC, a saw tooth of 50 MB in the RSS. A growing factor of 1.5 and semi-spaces
 * of 8 MB (16 by default) keep the heap near 40 MB for about 1 us of CPU per batch
 * (docs/bench.md, "Coordinator start and heap flags").
 */
export const COORDINATOR_NODE_FLAGS: readonly string[] = ['--enable-source-maps', '--max-semi-space-size=8', '--heap-growing-percent=50'];
