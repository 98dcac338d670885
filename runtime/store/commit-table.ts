/** A commit record's range, attempt and item count. */
export interface Commit {
  s: number;
  x: number;
  a: number;
  n: number;
}

/**
 * Read-only map-like access by batch index, for what `readJournal` returns: committed
 * batches are looked up in the fold's typed arrays, not copied into a Map of a million entries.
 */
export interface BatchIndexMap<V> {
  readonly size: number;
  get(i: number): V | undefined;
  has(i: number): boolean;
  /** In index order, as a Map's `forEach` (value first). */
  forEach(f: (value: V, i: number) => void): void;
  keys(): IterableIterator<number>;
  entries(): IterableIterator<[number, V]>;
  [Symbol.iterator](): IterableIterator<[number, V]>;
}

export class CommitView<V> implements BatchIndexMap<V> {
  constructor(
    private readonly table: CommitTable,
    private readonly pick: (c: Commit) => V,
    private readonly pickEach: (a: number, n: number, i: number) => V,
    /** `get` without building a `Commit` when the value is a number of the table's. */
    private readonly getFast?: (i: number) => V | undefined,
  ) {}

  get size(): number {
    let n = 0;
    this.table.each(() => n++);
    return n;
  }

  get(i: number): V | undefined {
    if (this.getFast) return this.getFast(i);
    const c = this.table.get(i);
    return c && this.pick(c);
  }

  has(i: number): boolean {
    return this.table.has(i);
  }

  forEach(f: (value: V, i: number) => void): void {
    this.table.each((i, a, n) => f(this.pickEach(a, n, i), i));
  }

  *keys(): IterableIterator<number> {
    for (const [i] of this.table.entries()) yield i;
  }

  *entries(): IterableIterator<[number, V]> {
    for (const [i, c] of this.table.entries()) yield [i, this.pick(c)];
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries();
  }
}

/** Ranges that do not follow the table's stride it keeps in a map up to this many, then in arrays for every batch. */
const MAX_OTHER_RANGES = 4096;

/**
 * Committed batches by index, in typed arrays: a million commits take 4 MB and no object
 * each, so a coordinator can keep them for compaction (and replay builds its maps once).
 *
 * Only the winning attempt is stored per batch. A job's batches before any split hold
 * `[i * stride, i * stride + stride - 1]`, so their ranges are computed from the stride, learnt
 * from the first commit that fits it; the others (the short last batch, the single-item
 * batches of splits) are kept apart, and once there are many of them (a job with many
 * splits), in a start and a width for every batch (16 bytes a batch, as if all were other).
 */
export class CommitTable {
  /** Winning attempt + 1; 0: not committed. */
  private attempt = new Uint32Array(0);
  /** The width of a batch whose range follows its index; 0: not learnt yet. */
  private stride = 0;
  /** `[start, width]` of committed batches whose range does not follow the stride. */
  private readonly other = new Map<number, [number, number]>();
  /** Every committed batch's range, once `other` would hold more than `MAX_OTHER_RANGES`. */
  private dense?: { start: Float64Array; width: Uint32Array };
  /** Items committed, where fewer than the batch's width (items skipped). */
  private readonly items = new Map<number, number>();
  /** Records that are not plain numbers, kept as written so reduce can say what is wrong with them. */
  readonly odd = new Map<number, Commit>();
  /** One past the highest index ever set. */
  length = 0;

  private grow(i: number): void {
    if (i < this.attempt.length) return;
    this.resize(Math.max(1024, this.attempt.length * 2, i + 1));
  }

  /** Room for batches `0…n-1` at once: a table grown by doubling holds up to twice what it needs while it grows. */
  reserve(n: number): void {
    if (n > this.attempt.length && n <= 2 ** 28) this.resize(n);
  }

  private resize(size: number): void {
    const a = new Uint32Array(size);
    a.set(this.attempt);
    this.attempt = a;
    if (!this.dense) return;
    const start = new Float64Array(size);
    start.set(this.dense.start);
    const width = new Uint32Array(size);
    width.set(this.dense.width);
    this.dense = { start, width };
  }

  private setRange(i: number, s: number, w: number): void {
    if (this.dense) {
      this.dense.start[i] = s;
      this.dense.width[i] = w;
      return;
    }
    if (!this.stride && s === i * w) this.stride = w;
    if (w === this.stride && s === i * w) {
      this.other.delete(i);
      return;
    }
    this.other.set(i, [s, w]);
    if (this.other.size > MAX_OTHER_RANGES) this.makeDense();
  }

  private makeDense(): void {
    const start = new Float64Array(this.attempt.length);
    const width = new Uint32Array(this.attempt.length);
    // past `length` too: the batch being added when it came to this is not counted in it yet
    for (let i = 0; i < this.attempt.length; i++) {
      if (!this.attempt[i]) continue;
      start[i] = this.startOf(i);
      width[i] = this.widthOf(i);
    }
    this.dense = { start, width };
    this.other.clear();
  }

  /** First item of committed batch `i` (one with an attempt in the table). */
  private startOf(i: number): number {
    return this.dense ? this.dense.start[i] : (this.other.get(i)?.[0] ?? i * this.stride);
  }

  private widthOf(i: number): number {
    return this.dense ? this.dense.width[i] : (this.other.get(i)?.[1] ?? this.stride);
  }

  /** The first commit of a batch wins. */
  add(i: number, s: number, x: number, a: number, n: number): void {
    const plain = Number.isInteger(s) && Number.isInteger(x) && Number.isInteger(n) && Number.isInteger(a) && a >= 0 && a < 2 ** 32 - 1 && x >= s;
    if (!Number.isInteger(i) || i < 0 || i > 2 ** 28 || !plain) {
      if (this.odd.has(i) || this.attempt[i]) return;
      this.odd.set(i, { s, x, a, n });
      if (Number.isInteger(i) && i >= 0 && i <= 2 ** 28) this.length = Math.max(this.length, i + 1);
      return;
    }
    this.grow(i);
    if (this.attempt[i] || this.odd.has(i)) return;
    this.attempt[i] = a + 1;
    this.setRange(i, s, x - s + 1);
    if (n !== x - s + 1) this.items.set(i, n);
    else this.items.delete(i);
    this.length = Math.max(this.length, i + 1);
  }

  delete(i: number): void {
    if (i < this.attempt.length) this.attempt[i] = 0;
    this.other.delete(i);
    this.items.delete(i);
    this.odd.delete(i);
  }

  clear(): void {
    this.attempt.fill(0);
    this.stride = 0;
    this.other.clear();
    this.dense = undefined;
    this.items.clear();
    this.odd.clear();
    this.length = 0;
  }

  has(i: number): boolean {
    return (Number.isInteger(i) && i >= 0 && this.attempt[i] > 0) || this.odd.has(i);
  }

  /** The winning attempt of batch `i`, if committed. */
  attemptAt(i: number): number | undefined {
    const a = Number.isInteger(i) && i >= 0 ? this.attempt[i] : 0;
    return a ? a - 1 : this.odd.get(i)?.a;
  }

  /** Batch `i`'s commit as recorded, if any. */
  get(i: number): Commit | undefined {
    const a = Number.isInteger(i) && i >= 0 ? this.attempt[i] : 0;
    if (!a) return this.odd.get(i);
    const s = this.startOf(i);
    const w = this.widthOf(i);
    return { s, x: s + w - 1, a: a - 1, n: this.items.get(i) ?? w };
  }

  /** Calls `f` with each committed batch's index, attempt and items, by index, building nothing per batch. */
  each(f: (i: number, a: number, n: number) => void): void {
    for (let i = 0; i < this.length; i++) {
      const a = this.attempt[i];
      if (a) {
        f(i, a - 1, this.items.get(i) ?? this.widthOf(i));
        continue;
      }
      const odd = this.odd.get(i);
      if (odd) f(i, odd.a, odd.n);
    }
    for (const [i, c] of this.odd) if (!(Number.isInteger(i) && i >= 0 && i < this.length)) f(i, c.a, c.n);
  }

  *entries(): Generator<[number, Commit]> {
    for (let i = 0; i < this.length; i++) {
      const a = this.attempt[i];
      const odd = a ? undefined : this.odd.get(i);
      if (odd) yield [i, odd];
      if (!a) continue;
      const s = this.startOf(i);
      const w = this.widthOf(i);
      yield [i, { s, x: s + w - 1, a: a - 1, n: this.items.get(i) ?? w }];
    }
    for (const [i, c] of this.odd) if (!(Number.isInteger(i) && i >= 0 && i < this.length)) yield [i, c];
  }

  encode(): number[][] {
    const runs: number[][] = [];
    let run: number[] | undefined;
    for (let i = 0; i < this.length; i++) {
      const a = (this.attempt[i] ?? 0) - 1; // past the array: an odd record set `length`
      if (a < 0) {
        run = undefined;
        continue;
      }
      const s = this.startOf(i);
      const w = this.widthOf(i);
      const n = this.items.get(i);
      if (n !== undefined) {
        runs.push([i, 1, s, w, a, n]);
        run = undefined;
      } else if (run && run[4] === a && run[3] === w && run[2] + run[1] * w === s) {
        run[1]++;
      } else {
        run = [i, 1, s, w, a];
        runs.push(run);
      }
    }
    return runs;
  }

  private isPlainRun(i0: number, count: number, s0: number, w: number, a: number): boolean {
    return [i0, count, s0, w, a].every(Number.isInteger) && i0 >= 0 && count > 0 && i0 + count - 1 <= 2 ** 28 && w >= 1 && a >= 0 && a < 2 ** 32 - 1;
  }

  decode(runs: number[][], odd: unknown[][] = []): void {
    this.clear();
    const last = runs[runs.length - 1];
    // room for a tail of commits after the snapshot too, without doubling the table
    if (last) this.reserve(Math.ceil((last[0] + last[1]) * 1.25));
    for (const [i0, count, s0, w, a, n] of runs) {
      if (n === undefined && this.isPlainRun(i0, count, s0, w, a)) {
        // what `add` does for each, checked once per run: a restart decodes a million
        this.grow(i0 + count - 1);
        if (!this.dense && !this.stride && s0 === i0 * w) this.stride = w;
        const follows = !this.dense && w === this.stride && s0 === i0 * w;
        for (let k = 0, i = i0; k < count; k++, i++) {
          if (this.attempt[i]) continue; // the first commit of a batch wins
          this.attempt[i] = a + 1;
          if (!follows) this.setRange(i, s0 + k * w, w);
        }
        this.length = Math.max(this.length, i0 + count);
        continue;
      }
      for (let k = 0; k < count; k++) this.add(i0 + k, s0 + k * w, s0 + k * w + w - 1, a, n ?? w);
    }
    // JSON wrote what was missing as null
    const v = (x: unknown) => (x === null ? undefined : x) as number;
    for (const [i, s, x, a, n] of odd) this.odd.set(v(i), { s: v(s), x: v(x), a: v(a), n: v(n) });
  }
}
