import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, mapperScript, readJsonl, waitFor } from '../harness.js';

const POOL = 'resume';
const N = 40;

/** Committed batch indices, from a job's journal. */
function committed(sb: Sandbox, jobId: string): number[] {
  const file = path.join(sb.home, 'jobs', jobId, 'journal.jsonl');
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => r.e === 'commit')
    .map((r) => r.i);
}

/** How many times the mapper processed each item, from its side log. */
function processed(file: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}

describe('nothing finished is redone', () => {
  const sb = new Sandbox('resume');
  const rows = Array.from({ length: N }, (_, i) => ({ text: `t${i}` }));
  const expected = rows.map((r) => ({ out: r.text.toUpperCase() }));
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(() => sb.cleanup());

  function script(name: string, body: string, extra = ''): string {
    const side = path.join(sb.dir, `${name}.side`);
    return sb.file(
      `${name}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, `${name}/out.jsonl`),
        pool: POOL,
        batchSize: 1,
        prelude: `import * as fs from 'node:fs';`,
        body: `${body}\n    fs.appendFileSync(${JSON.stringify(side)}, batch[0].text + '\\n');\n    await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));`,
        extra,
      }),
    );
  }

  test('a coordinator killed with SIGKILL mid-job continues the job when restarted, without redoing committed batches', async () => {
    const s = script('crash', `await new Promise((r) => setTimeout(r, 60));`, ', stream: false');
    const r = await sb.run(s);
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
    await waitFor('some batches to commit', () => (committed(sb, jobId).length >= 8 ? true : undefined));
    const { pid } = sb.coordinator(POOL);
    process.kill(pid, 'SIGKILL');
    const before = committed(sb, jobId);
    assert.ok(before.length < N, 'killed mid-job');
    // `pool apply` finds no running coordinator and starts one; it replays the journal
    const apply = await sb.cli(['pool', 'apply', path.join(sb.dir, `${POOL}.pool.yaml`), '--pool', POOL, '-y']);
    assert.equal(apply.code, 0, apply.stderr);
    await waitFor(
      'the job to succeed',
      async () => (new RegExp(`^${jobId}\\s+${POOL}\\s+SUCCEEDED`, 'm').test((await sb.cli(['jobs', 'queue'])).stdout) ? true : undefined),
      60_000,
    );
    assert.deepEqual(readJsonl(path.join(sb.dir, 'crash/out.jsonl')), expected);
    const counts = processed(path.join(sb.dir, 'crash.side'));
    for (const i of before) assert.equal(counts.get(`t${i}`), 1, `batch ${i} was committed before the crash and must not run again`);
    assert.equal(sb.workerPids(POOL).length, 2, 'the workers of the old coordinator were adopted, not doubled');
  });

  test('`skybatch jobs resume` runs only the batches that did not finish', async () => {
    const fixed = path.join(sb.dir, 'fixed');
    const s = script('resume', `if (batch[0].text === 't30' && !fs.existsSync(${JSON.stringify(fixed)})) throw new TypeError('bug');`);
    const r = await sb.run(s);
    assert.notEqual(r.code, 0);
    const jobId = /job (\d+) failed/.exec(r.stderr)![1];
    const before = committed(sb, jobId);
    fs.writeFileSync(fixed, '');
    const res = await sb.cli(['jobs', 'resume', jobId]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`job ${jobId} SUCCEEDED`));
    assert.deepEqual(readJsonl(path.join(sb.dir, 'resume/out.jsonl')), expected);
    const counts = processed(path.join(sb.dir, 'resume.side'));
    for (const i of before) assert.equal(counts.get(`t${i}`), 1, `batch ${i} ran again`);
  });

  test('map(..., { resumeFrom }) continues a failed job with fixed code', async () => {
    const broken = script('fix', `if (batch[0].text === 't5') throw new TypeError('typo in mapper');`);
    const r = await sb.run(broken);
    assert.notEqual(r.code, 0);
    const jobId = /job (\d+) failed/.exec(r.stderr)![1];
    const before = committed(sb, jobId);
    const fixedScript = script('fix', `// fixed`, `, resumeFrom: '${jobId}'`);
    const again = await sb.run(fixedScript);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`RESULT ${jobId} SUCCEEDED`), 'the same job id continues');
    assert.deepEqual(readJsonl(path.join(sb.dir, 'fix/out.jsonl')), expected);
    const counts = processed(path.join(sb.dir, 'fix.side'));
    for (const i of before) assert.equal(counts.get(`t${i}`), 1);
  });
});
