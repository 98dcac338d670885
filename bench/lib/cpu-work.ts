/**
 * The bench's CPU-bound work, shared by its mapper (bench/scripts/cpu.ts) and the plain
 * processes that give the machine's own 1-to-2 speedup: the feature hashing a tokenizer's
 * pre-pass does (lower-case, split, FNV-1a of each token and bigram into 1,024 buckets),
 * `rounds` times over a 120-word text made from the item's index. Pure JavaScript, one
 * thread, little garbage: its time is one core's.
 *
 * It was 10,000 rounds of `createHash('sha256')` on 32 bytes before: a native object per round,
 * whose garbage V8's helper threads collect on the second core, so one process of it used
 * more than one core (user time 1.1-1.5x its wall time) and two plain processes of it reached
 * only 1.29-1.71x one (docs/bench.md, "The CPU-bound work").
 */
const WORDS = 'the a model embeds each prompt of corpus into vector space while tokens split on spaces and punctuation marks before hashing them to features'.split(' ');

export function featureHash(item: number, rounds: number): number {
  const words: string[] = [];
  for (let k = 0; k < 120; k++) words.push(WORDS[(item * 7 + k * 13) % WORDS.length] + (k % 5 === 0 ? String((item + k) % 97) : ''));
  const text = words.join(' ');
  const features = new Float64Array(1024);
  for (let r = 0; r < rounds; r++) {
    const tokens = text.toLowerCase().split(' ');
    let prev = 2166136261 ^ r;
    for (const t of tokens) {
      let h = 2166136261 ^ r;
      for (let c = 0; c < t.length; c++) h = Math.imul(h ^ t.charCodeAt(c), 16777619);
      features[(h >>> 0) & 1023] += 1;
      features[(Math.imul(prev ^ h, 16777619) >>> 0) & 1023] += 0.5;
      prev = h;
    }
  }
  let sum = 0;
  for (let f = 0; f < 1024; f++) sum = (sum + features[f] * (f + 1)) % 1000003;
  return sum;
}
