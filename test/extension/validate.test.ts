import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as esbuild from 'esbuild';
import { generateJobScript, locate } from '../../extension/core/job-script.js';
import { JobTracker } from '../../extension/core/job-tracker.js';
import { formatEta } from '../../runtime/job-events.js';
import type { NotebookCellData } from '../../extension/core/notebook-format.js';
import { renderHtml, renderText } from '../../extension/core/output-render.js';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { templateCells } from '../../extension/core/template.js';
import { validateNotebook } from '../../extension/core/validate.js';

const cells = (mapper: string, run = 'pool: p\nbatchSize: 2'): NotebookCellData[] => [
  { kind: 'markdown', source: '# t' },
  { kind: 'code', role: 'reader', language: 'typescript', source: "new sky.JsonReader('a.jsonl');" },
  { kind: 'code', role: 'mapper', language: 'typescript', source: mapper },
  { kind: 'code', role: 'writers', language: 'typescript', source: "new sky.JsonWriter('o.jsonl')" },
  { kind: 'code', role: 'run', language: 'yaml', source: run },
];
const GOOD = 'for await (const b of sky.load()) {\n  await sky.saveResults(b);\n}';

describe('notebook validation', () => {
  test('the template is valid and names its settings', async () => {
    const r = await validateNotebook(templateCells('x'), esbuild.transform);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.settings, { pool: 'local-pool', batchSize: 2, poolFile: 'pool.yaml' });
  });

  test('a syntax error points at its line in the mapper cell', async () => {
    const r = await validateNotebook(cells('for await (const b of sky.load()) {\n  await sky.saveResults(b.map((x) => ({ y: x )));\n}'), esbuild.transform);
    assert.equal(r.settings, undefined);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0].cell, 2);
    assert.equal(r.problems[0].line, 1);
  });

  test('settings problems point at the key or value, and missing roles are named', async () => {
    const r = parseRunSettings('pool: "bad name"\nbatchSize: 0\nextra: 1');
    assert.deepEqual(r.problems.map((p) => [p.line, p.message.split(':')[0]]), [[0, "'pool' must be a pool name"], [1, "'batchSize' must be a positive integer, got 0"], [2, 'unknown setting "extra"; expected one of']]);
    const v = await validateNotebook(cells(GOOD).filter((c) => c.kind !== 'code' || c.role !== 'writers'), esbuild.transform);
    assert.match(v.problems[0].message, /no writers cell/);
  });

  test('a mapper that never saves gets a warning, not an error', async () => {
    const r = await validateNotebook(cells('for await (const b of sky.load()) {}'), esbuild.transform);
    assert.deepEqual(r.problems.map((p) => p.severity), ['warning']);
    assert.ok(r.settings);
  });
});

describe('job script', () => {
  test('is the sample script shape, and maps its lines back to cells', async () => {
    const c = cells(GOOD, 'pool: p\nbatchSize: 2\nactivateEnv: source x\nmaxAttempts: 2');
    const s = generateJobScript(c, parseRunSettings((c[4] as { source: string }).source).settings!, 'n.skybatch');
    assert.match(s.code, /^import \* as sky from 'skybatch';$/m);
    assert.match(s.code, /const __skybatchReader = \(\nnew sky\.JsonReader\('a\.jsonl'\)\n\);/);
    assert.match(s.code, /sky\.remoteFunction\(async function mapper\(\) \{\nfor await/);
    assert.match(s.code, /poolName: "p",\n  batchSize: 2,\n  activateEnv: "source x",\n  maxAttempts: 2,\n  output: __skybatchWriters,/);
    await esbuild.transform(s.code, { loader: 'ts', format: 'esm' });
    const line = s.code.split('\n').indexOf('  await sky.saveResults(b);');
    assert.deepEqual(locate(s.spans, line), { cell: 2, line: 1 });
  });
});

describe('run settings: priority', () => {
  test("goes into map()'s options; one out of range is an error on its line", () => {
    const c = cells(GOOD, 'pool: p\nbatchSize: 2\npriority: 3');
    const settings = parseRunSettings('pool: p\nbatchSize: 2\npriority: 3').settings!;
    assert.equal(settings.priority, 3);
    assert.match(generateJobScript(c, settings, 'n.skybatch').code, /batchSize: 2,\n  priority: 3,\n/);
    for (const bad of ['0', '-1', 'high']) {
      const r = parseRunSettings(`pool: p\nbatchSize: 2\npriority: ${bad}`);
      assert.equal(r.settings, undefined, bad);
      assert.equal(r.problems[0]?.line, 2, bad);
      assert.match(r.problems[0].message, /'priority' must be/, bad);
    }
  });
});

describe('cell output', () => {
  test('shows progress, ETA, retries, failures, samples and images', () => {
    const t = new JobTracker('p', 0);
    t.handle({ kind: 'jobSubmitted', job: { jobId: '7', pool: 'p', status: 'RUNNING', scriptPath: 's', createdAt: '', batchesTotal: 4, batchesDone: 0, itemsTotal: 8, itemsDone: 0, retries: 0, outputs: [] } });
    t.handle({ kind: 'progress', jobId: '7', batchesDone: 1, batchesTotal: 4, itemsDone: 2, itemsTotal: 8, failed: 0, retrying: 1, itemsPerSec: 2 });
    t.handle({ kind: 'batch', jobId: '7', index: 1, start: 2, end: 3, state: 'retrying', attempt: 1, error: { code: 'X', message: 'boom', retryable: true } });
    t.handle({ kind: 'sample', jobId: '7', start: 0, results: [{ text: 'a<b', image: { $image: 'data:image/png;base64,AAAA' } }] });
    t.handle({ kind: 'sample', jobId: '8', start: 0, results: [{ text: 'other job' }] });
    const text = renderText(t.state);
    assert.match(text, /^Job 7 on pool p: RUNNING\nprogress 25% · 1\/4 batches · 2\/8 items · 2\.0 items\/s · ETA 3s · 1 retries · 0 failed/);
    assert.match(text, /0\ta<b\t\[image\]/);
    assert.doesNotMatch(text, /other job/);
    const html = renderHtml(t.state);
    assert.match(html, /<img class="skybatch-image" src="data:image\/png;base64,AAAA"/);
    assert.match(html, /a&lt;b/);
    assert.equal(formatEta(125, 1), '2m05s');
  });

  const summary = (status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED', outputs: string[] = []) => ({ jobId: '9', pool: 'p', status, scriptPath: 's', createdAt: '', batchesTotal: 2, batchesDone: 1, itemsTotal: 4, itemsDone: 2, retries: 0, outputs });

  test('a cancel is told as such, not as an error, and offers recover and resume links', () => {
    const t = new JobTracker('p', 0);
    t.handle({ kind: 'jobFinished', job: { ...summary('CANCELLED'), error: { code: 'SKYBATCH_E_CANCELLED', message: 'job 9 was cancelled', retryable: false } }, recoverCommand: 'skybatch recover 9' });
    const text = renderText(t.state);
    assert.match(text, /cancelled: job 9 was cancelled/);
    assert.doesNotMatch(text, /error \[/);
    const html = renderHtml(t.state);
    assert.doesNotMatch(html, /skybatch-error/);
    assert.match(html, /data-skybatch-command="recover" data-skybatch-job="9"/);
    assert.match(html, /data-skybatch-command="resume" data-skybatch-job="9"/);
  });

  test('a failure names the cell it came from by role, with a link to its line; local outputs are links, cloud ones text', () => {
    const t = new JobTracker('p', 0);
    t.handle({ kind: 'jobFinished', job: { ...summary('FAILED'), error: { code: 'SKYBATCH_E_BATCH_FAILED', message: 'boom', retryable: false } }, recoverCommand: 'skybatch recover 9' });
    t.state.errorAt = { label: 'mapper cell', cell: 3, line: 1 };
    assert.match(renderText(t.state), /raised in the mapper cell, line 2/);
    assert.match(renderHtml(t.state), /data-skybatch-goto="3" data-skybatch-line="1"[^>]*>the mapper cell, line 2</);
    const ok = new JobTracker('p', 0);
    ok.handle({ kind: 'jobFinished', job: summary('SUCCEEDED', ['/w/out "x".jsonl', 's3://b/k']) });
    const html = renderHtml(ok.state);
    assert.match(html, /data-skybatch-open="\/w\/out &quot;x&quot;\.jsonl"/);
    assert.match(html, /<code>s3:\/\/b\/k<\/code>/);
    assert.doesNotMatch(html, /data-skybatch-open="s3/);
    // A local output also reveals its folder; a cloud one has no folder here.
    assert.match(html, /data-skybatch-reveal="\/w\/out &quot;x&quot;\.jsonl"[^>]*>show in folder</);
    assert.doesNotMatch(html, /data-skybatch-reveal="s3/);
  });

  test('the sample table says how many items it shows of how many: "first 9 of 12"', () => {
    const t = new JobTracker('p', 0);
    t.handle({ kind: 'jobSubmitted', job: { ...summary('RUNNING' as 'SUCCEEDED'), batchesTotal: 3, itemsTotal: 12, batchesDone: 0, itemsDone: 0 } });
    t.handle({ kind: 'sample', jobId: '9', start: 0, results: Array.from({ length: 9 }, (_, i) => ({ n: i })) });
    assert.match(renderText(t.state), /^sample outputs \(first 9 of 12\):$/m);
    assert.match(renderHtml(t.state), /Sample outputs <span[^>]*>\(first 9 of 12\)<\/span>/);
    const later = new JobTracker('p', 0);
    later.handle({ kind: 'jobSubmitted', job: { ...summary('RUNNING' as 'SUCCEEDED'), itemsTotal: 12 } });
    later.handle({ kind: 'sample', jobId: '9', start: 4, results: [{ n: 4 }, { n: 5 }] });
    assert.match(renderText(later.state), /^sample outputs \(2 of 12\):$/m, 'not "first" when they are not the first items');
  });

  test('time spent answering a question is not counted as job time', () => {
    const t = new JobTracker('p', 1000);
    t.waited(60_000); // the "start the pool?" prompt stayed open a minute
    t.handle({ kind: 'jobFinished', job: summary('SUCCEEDED') }, 1000 + 60_000 + 2_500);
    assert.match(renderText(t.state), /^Job 9 on pool p: SUCCEEDED in 2\.5 s$/m);
  });
});
