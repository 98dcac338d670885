// The same model over the same texts in this one process, no pool: a check of the model
// before a big job, and the reference the job's output is compared with in the tests.
//   skybatch run samples/onnx-embed/embed_local.ts [out.jsonl]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { scoreTexts } from './model.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MODEL = process.env.MODEL ?? path.join(here, 'model.onnx');
const input = process.env.INPUT ?? path.join(here, 'texts.jsonl');
const batchSize = Number(process.env.BATCH_SIZE ?? 8);

const texts = fs.readFileSync(input, 'utf8').split('\n').filter(Boolean).map((l) => String(JSON.parse(l).text));
const session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
const rows = [];
for (let i = 0; i < texts.length; i += batchSize) rows.push(...(await scoreTexts(ort, session, texts.slice(i, i + batchSize))));
const out = process.argv[2];
const text = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
if (out) fs.writeFileSync(out, text);
else process.stdout.write(text);
