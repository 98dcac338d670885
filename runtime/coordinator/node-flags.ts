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

/**
 * Environment the coordinator is started with, beside its flags (read by the C library when
 * the process starts; the coordinator takes them out of its own environment at once, so its
 * workers, mappers and reduce processes do not inherit them).
 *
 * glibc's malloc gives a block of 128 KB or more a mapping of its own, unmapped when freed,
 * but each time such a block is freed it raises that threshold to the block's size (up to
 * 32 MB): from then on blocks that big come from its heap, which shrinks only from the top,
 * so a few MB freed under a live block stay resident for good. In a coordinator the first
 * freed buffers of a few MB (a journal read, a finished job's typed arrays, a restore) left
 * 10-20 MB of such heap by the middle of a 1M-batch job. Setting the threshold fixes it at
 * its default. Other C libraries ignore the variable.
 */
export const COORDINATOR_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

/** In the coordinator: `COORDINATOR_ENV` has done its work at start; children start without it. */
export function dropCoordinatorEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const [k, v] of Object.entries(COORDINATOR_ENV)) if (env[k] === v) delete env[k];
}
