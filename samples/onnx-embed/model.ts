// The model's contract, shared by the job (embed.ts), the one-process run (embed_local.ts)
// and the script that builds the sample model (build_model.ts).
import type * as Ort from 'onnxruntime-node';

/** Input width: the model reads `features`, a float32 tensor [batch, DIM]. */
export const DIM = 32;
/** Output width of `embedding` ([batch, EMBED], unit length); `score` is [batch, 1] in (0, 1). */
export const EMBED = 8;

/**
 * Text → features: character trigrams hashed into DIM buckets, scaled to unit length.
 * A real text model takes token ids from its tokenizer instead; see the README.
 */
export function featurize(text: string): Float32Array {
  const v = new Float32Array(DIM);
  const s = ` ${text.toLowerCase()} `;
  for (let i = 0; i + 3 <= s.length; i++) {
    let h = 2166136261;
    for (let j = i; j < i + 3; j++) h = Math.imul(h ^ s.charCodeAt(j), 16777619) >>> 0;
    v[h % DIM] += 1;
  }
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}

export interface Scored {
  text: string;
  score: number;
  embedding: number[];
}

/** Runs one batch of texts through the model. */
export async function scoreTexts(ort: typeof Ort, session: Ort.InferenceSession, texts: string[]): Promise<Scored[]> {
  const features = new Float32Array(texts.length * DIM);
  texts.forEach((t, i) => features.set(featurize(t), i * DIM));
  const out = await session.run({ features: new ort.Tensor('float32', features, [texts.length, DIM]) });
  const embedding = out.embedding.data as Float32Array;
  const score = out.score.data as Float32Array;
  return texts.map((text, i) => ({ text, score: score[i], embedding: Array.from(embedding.subarray(i * EMBED, (i + 1) * EMBED)) }));
}
