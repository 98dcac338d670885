// Builds model.onnx: a small real ONNX graph (a two-layer MLP with two heads) with fixed
// pseudo-random weights, so the sample needs no download. The same seed always gives the
// same bytes: `skybatch run build_model.ts` reproduces the shipped file.
//   skybatch run samples/onnx-embed/build_model.ts [out.onnx]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { DIM, EMBED } from './model.js';

const { onnx } = onnxProto;
const HIDDEN = 16;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(20_250_601);
const weights = (n: number, scale: number) => Array.from({ length: n }, () => Math.fround((rand() * 2 - 1) * scale));

const tensor = (name: string, dims: number[], data: number[]) => onnx.TensorProto.create({ name, dims, dataType: FLOAT, floatData: data });
const value = (name: string, dims: (number | string)[]) =>
  onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  });
const node = (opType: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []) => onnx.NodeProto.create({ name: output[0], opType, input, output, attribute });
const intAttr = (name: string, i: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });

const graph = onnx.GraphProto.create({
  name: 'skybatch_sample_embed',
  input: [value('features', ['batch', DIM])],
  output: [value('embedding', ['batch', EMBED]), value('score', ['batch', 1])],
  initializer: [
    tensor('w1', [DIM, HIDDEN], weights(DIM * HIDDEN, 0.5)),
    tensor('b1', [HIDDEN], weights(HIDDEN, 0.1)),
    tensor('w2', [HIDDEN, EMBED], weights(HIDDEN * EMBED, 0.5)),
    tensor('b2', [EMBED], weights(EMBED, 0.1)),
    tensor('w3', [HIDDEN, 1], weights(HIDDEN, 1)),
    tensor('b3', [1], weights(1, 0.1)),
  ],
  node: [
    node('Gemm', ['features', 'w1', 'b1'], ['hidden_pre']),
    node('Relu', ['hidden_pre'], ['hidden']),
    node('Gemm', ['hidden', 'w2', 'b2'], ['embedding_raw']),
    node('LpNormalization', ['embedding_raw'], ['embedding'], [intAttr('axis', 1), intAttr('p', 2)]),
    node('Gemm', ['hidden', 'w3', 'b3'], ['logit']),
    node('Sigmoid', ['logit'], ['score']),
  ],
});
const model = onnx.ModelProto.create({ irVersion: 8, producerName: 'skybatch samples/onnx-embed', opsetImport: [{ domain: '', version: 13 }], graph });

const out = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'model.onnx'));
fs.writeFileSync(out, onnx.ModelProto.encode(model).finish());
console.log(`wrote ${out} (${fs.statSync(out).size} bytes)`);
