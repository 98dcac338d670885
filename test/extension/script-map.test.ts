import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateJobScript } from '../../extension/core/job-script.js';
import { otherOwners, publishOf } from '../../extension/core/output-publishers.js';
import type { NotebookCellData } from '../../extension/core/notebook-format.js';
import { formatTraceback, mapStack, parseFrame, scriptMapOf, splitHead } from '../../extension/core/script-map.js';
import type { JobSummary } from '../../runtime/protocol.js';

const MAPPER = [
  'function helper(x: string) {',
  "  if (x === 't3') throw new Error('boom on ' + x);",
  '  return x;',
  '}',
  'for await (const batch of sky.load()) {',
  '  await sky.saveResults(batch.map((item) => ({ output: helper(String(item.text)) })));',
  '}',
].join('\n');

// Markdown first and the mapper before the reader: positions must not count Markdown or follow cell order.
const CELLS: NotebookCellData[] = [
  { kind: 'markdown', source: '# T' },
  { kind: 'code', role: 'definitions', language: 'typescript', source: "import * as sky from 'skybatch';\nexport const twice = (s: string) => {\n  throw new TypeError('nope');\n};" },
  { kind: 'code', role: 'mapper', language: 'typescript', source: MAPPER },
  { kind: 'code', role: 'reader', language: 'typescript', source: "new sky.JsonReader('data.jsonl')" },
  { kind: 'code', role: 'writers', language: 'typescript', source: "new sky.JsonWriter('out.jsonl')" },
  { kind: 'code', role: 'run', language: 'yaml', source: 'pool: p\nbatchSize: 2' },
];
const SCRIPT = '/ws/job/.job.skybatch.ts';
const script = generateJobScript(CELLS, { pool: 'p', batchSize: 2 }, 'job.skybatch');
const map = scriptMapOf(script, SCRIPT);
const lines = script.code.split('\n');
/** The 1-based script line holding `text` (what a stack would print for it). */
const lineOf = (text: string) => lines.findIndex((l) => l.includes(text)) + 1;

describe('mapping stacks of the generated script back to cells', () => {
  test('a mapper that throws: the innermost frame is the thrown line, user frames first, positions name the role', () => {
    const thrown = lineOf("throw new Error('boom on '");
    const call = lineOf('await sky.saveResults(batch.map');
    const stack = [
      'Error: boom on t3',
      `    at helper (${SCRIPT}:${thrown}:25)`,
      `    at <anonymous> (${SCRIPT}:${call}:56)`,
      '    at Array.map (<anonymous>)',
      `    at mapper (${SCRIPT}:${call}:31)`,
      '    at async start (/opt/skybatch/runtime/worker/mapper-process.ts:194:5)',
    ].join('\n');
    const m = mapStack(stack, map);
    assert.equal(m.head, 'Error: boom on t3');
    assert.deepEqual(m.origin, { cell: 2, role: 'mapper', cellLine: 1, column: 24, label: 'mapper cell', fn: 'helper' });
    assert.deepEqual(m.cellFrames.map((f) => [f.cell, f.cellLine, f.fn]), [[2, 1, 'helper'], [2, 5, '<anonymous>'], [2, 5, 'mapper']]);
    assert.deepEqual(m.otherFrames, ['at Array.map (<anonymous>)', 'at async start (/opt/skybatch/runtime/worker/mapper-process.ts:194:5)']);
    const tb = formatTraceback(m, { 2: MAPPER }, { cell: 2, executionOrder: 7 });
    const tbLines = tb.split('\n');
    // The thrown line is marked, under a header VS Code's error renderer links to the cell.
    assert.ok(tbLines.includes('mapper cell, line 2, in helper:'), tb);
    assert.ok(tbLines.includes('Cell In[7], line 2'), tb);
    assert.ok(tbLines.includes("----> 2   if (x === 't3') throw new Error('boom on ' + x);"), tb);
    // The callback and its caller on one line are one entry; engine frames come after the user's.
    assert.equal(tbLines.filter((l) => l.startsWith('mapper cell, line 6')).length, 1, tb);
    assert.ok(tb.indexOf('mapper cell, line 6') < tb.indexOf('skybatch and Node frames:'), tb);
  });

  test('a helper in the definitions cell called from the mapper: the origin is the definitions cell', () => {
    const stack = ['TypeError: nope', `    at twice (file://${SCRIPT}:${lineOf("throw new TypeError('nope')")}:9)`, `    at mapper (${SCRIPT}:${lineOf('for await (const batch')}:3)`].join('\n');
    const m = mapStack(stack, map);
    assert.equal(m.origin?.label, 'definitions cell');
    assert.equal(m.origin?.cellLine, 2);
    assert.equal(m.cellFrames[1].label, 'mapper cell');
    assert.deepEqual(splitHead(m.head), { name: 'TypeError', message: 'nope' });
  });

  test('a worker on another host prints the same file under another folder: the file name still maps it', () => {
    const m = mapStack(`Error: x\n    at helper (/mnt/other/.job.skybatch.ts:${lineOf("throw new Error('boom on '")}:25)`, map);
    assert.equal(m.origin?.role, 'mapper');
  });

  test('an engine error raised by the reader (Node print of an uncaught error with a cause) lands on the reader cell', () => {
    const submit = lineOf('await new sky.Dataset');
    const stderr = [
      'SkybatchError: /ws/job/missing.jsonl: no such file',
      '    at wrap (/opt/skybatch/formats/storage/local.ts:159:33)',
      '    ... 4 lines matching cause stack trace ...',
      `    at async <anonymous> (${SCRIPT}:${submit}:23) {`,
      "  code: 'SKYBATCH_E_NOT_FOUND',",
      "  [cause]: Error: ENOENT: no such file or directory, stat '/ws/job/missing.jsonl'",
      '      at async JsonReader.length (/opt/skybatch/formats/json-reader.ts:26:20)',
      `      at async <anonymous> (${SCRIPT}:${submit}:23) {`,
    ].join('\n');
    const m = mapStack(stderr, map);
    assert.deepEqual(m.cellFrames, []);
    assert.equal(m.origin?.label, 'reader cell');
    assert.equal(m.origin?.cell, 3);
    assert.equal(m.otherFrames.filter((l) => l.includes(`${SCRIPT}:${submit}:`)).length, 1, 'the repeated frame is listed once');
  });

  test('without frames, a script line (an esbuild message) places the error', () => {
    const m = mapStack('cannot bundle: Expected ";"', map, lineOf('return x;') - 1);
    assert.deepEqual([m.origin?.label, m.origin?.cellLine], ['mapper cell', 2]);
    assert.equal(mapStack('Error: the pool went away', map).origin, undefined);
  });

  test('several definitions cells are told apart by their order among definitions cells', () => {
    const two = generateJobScript([...CELLS.slice(0, 2), { kind: 'markdown', source: 'x' }, { kind: 'code', role: 'definitions', language: 'typescript', source: 'export const k = 1;' }, ...CELLS.slice(2)], { pool: 'p', batchSize: 2 }, 'j');
    const labels = scriptMapOf(two, SCRIPT).labels;
    assert.deepEqual([labels[1], labels[3]], ['definitions cell 1', 'definitions cell 2']);
  });

  test('parses the frame shapes V8 prints', () => {
    assert.deepEqual(parseFrame('    at /a/b.ts:3:4'), { fn: undefined, file: '/a/b.ts', line: 3, column: 4 });
    assert.deepEqual(parseFrame('    at new Foo (file:///a/b%20c.ts:3:4)'), { fn: 'new Foo', file: '/a/b c.ts', line: 3, column: 4 });
    assert.equal(parseFrame('    at Array.map (<anonymous>)'), undefined);
  });
});

describe('whose output a recover would replace', () => {
  const job = (jobId: string, status: JobSummary['status'], finishedAt: string | undefined, outputs = ['/w/out.jsonl']): JobSummary => ({
    jobId, pool: 'p', status, scriptPath: '/w/s.ts', createdAt: '2026-01-01T10:00:00Z', finishedAt, batchesTotal: 3, batchesDone: 1, itemsDone: 2, itemsTotal: 6, retries: 0, outputs,
  });
  const old = job('3', 'FAILED', '2026-01-01T10:05:00Z', ['/w/out.jsonl', '/w/img/']);
  const jobs = [
    old,
    job('2', 'SUCCEEDED', '2026-01-01T10:01:00Z'),
    job('4', 'FAILED', '2026-01-01T10:06:00Z'),
    job('5', 'SUCCEEDED', '2026-01-01T10:07:00Z', ['/w/other.jsonl']),
    job('6', 'RUNNING', undefined),
    job('8', 'SUCCEEDED', '2026-01-01T10:09:00Z', ['/w/out.jsonl', '/w/img/']),
  ];

  test('the last publisher of each output, when another job: a later success, named with the outputs it owns', () => {
    const publishes = jobs.map((j) => publishOf(j)).filter((p) => p !== undefined);
    const owners = otherOwners(old, publishes, jobs);
    assert.deepEqual(owners.map((o) => [o.job.jobId, o.outputs, o.later]), [['8', ['/w/out.jsonl', '/w/img/'], true]]);
  });

  test("a journal's published record counts (a recovery publishes too), an output left as it was does not", () => {
    const recovered = publishOf(jobs[2], { at: '2026-01-01T10:10:00Z', outputs: [{ path: '/w/out.jsonl', written: true }, { path: '/w/img/', written: false }] })!;
    const publishes = [...jobs.map((j) => publishOf(j)).filter((p) => p !== undefined), recovered];
    const owners = otherOwners(old, publishes, jobs);
    assert.deepEqual(owners.map((o) => [o.job.jobId, o.outputs]), [['4', ['/w/out.jsonl']], ['8', ['/w/img/']]]);
  });

  test('an earlier success is still another job\'s output; a job that published already is not merged again', () => {
    const publishes = [publishOf(jobs[1])!];
    assert.deepEqual(otherOwners(old, publishes, jobs).map((o) => [o.job.jobId, o.later]), [['2', false]]);
    const own = publishOf(old, { at: '2026-01-01T10:11:00Z', outputs: [{ path: '/w/out.jsonl' }] })!;
    assert.deepEqual(otherOwners(old, [...publishes, own], jobs), []);
  });
});
