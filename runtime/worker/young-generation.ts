import * as v8 from 'node:v8';

/**
 * A mapper process's young generation is sized by the job's work, not by the process's
 * start. Loading skybatch's modules (and, with --enable-source-maps, their source maps) and
 * the job's bundle leaves most of what it allocates alive, and V8 doubles the young
 * generation after scavenges whose survivors outgrow it: a mapper process met its first
 * batch with 16 MB semi-spaces (the most V8 gives here), where a fresh `node` process
 * starts at 1 MB. V8 shrinks them again only in a GC that reduces memory (idle, memory
 * pressure), which a busy mapper does not get. A mapper making many short-lived objects
 * that hold native memory (a `createHash(...).digest()` per round: the cpu bench) then spent
 * about 20 % more main-thread CPU per batch than with the young generation held while
 * loading (docs/bench.md, "CPU-bound scaling"), and with one mapper per core there is no
 * idle core to hide it.
 *
 * So the agent starts a mapper process with the growth factor at 1 (a preloaded module,
 * `--import`: Node compiles the entry's whole static module graph before any of its code
 * runs), and the process sets it back to V8's default once the job's bundle is imported,
 * so a job whose batches keep many objects alive (parsed rows) grows it within a few
 * scavenges, as a fresh process would. V8 reads the factor each time it grows the young
 * generation, and Node does not freeze flags after start (V8 holds the factor to at least 2
 * when it reads it from the command line, not when it is set at run time). A V8 that
 * ignores or clamps the value leaves the process as it was before.
 */
/** The mapper process's node arguments that hold its young generation while it loads. */
export const HOLD_YOUNG_GENERATION = ['--import', new URL('./young-generation-hold.js', import.meta.url).href];

/** V8's default: the young generation doubles when its survivors outgrow it. */
const V8_DEFAULT_GROWTH = '--semi-space-growth-factor=2';

let released = false;

/** Lets the young generation grow again, as the job's own work needs. Once a process. */
export function releaseYoungGeneration(): void {
  if (released) return;
  released = true;
  if (process.execArgv.includes(HOLD_YOUNG_GENERATION[1])) v8.setFlagsFromString(V8_DEFAULT_GROWTH);
}
