/**
 * Node flags of the coordinator process, for every place that starts it (`pool apply`, the
 * bench). Set at spawn: V8 sizes its young generation when the heap is created.
 */
export const COORDINATOR_NODE_FLAGS: readonly string[] = ['--enable-source-maps'];
