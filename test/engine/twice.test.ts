import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, alive, jsonl, listFiles, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

const POOL = 'twice';
const N = 16;
const rows = Array.from({ length: N }, (_, i) => ({ text: `t${i}`, n: i }));
const expected = rows.map((r) => ({ out: r.text.toUpperCase() }));

function records(sb: Sandbox, jobId: string): { e: string; status?: string; i?: number }[] {
  const file = path.join(sb.home, 'jobs', jobId, 'journal.jsonl');
  if (!fs.existsSync(file)) return []; // the job's folder is made before its journal
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('the same command twice, or two at once', () => {
  const sb = new Sandbox('twice');
  const jobs = () => (fs.existsSync(path.join(sb.home, 'jobs')) ? fs.readdirSync(path.join(sb.home, 'jobs')) : []);
  /** A job whose rows from 4 on wait for `gate` (none: they never wait). */
  const script = (name: string, gate?: string) =>
    sb.file(
      `${name}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, name, 'out.jsonl'),
        pool: POOL,
        prelude: `import * as fs from 'node:fs';`,
        body: `${gate ? `if (Number(batch[0].n) >= 4) { ${untilFileExists(gate)} }` : ''}
    await sky.saveResults(batch.map((x) => ({ out: String(x.text).toUpperCase() })));`,
      }),
    );
  const running = async (name: string) => {
    const known = new Set(jobs());
    const gate = path.join(sb.dir, `${name}.gate`);
    const run = sb.run(script(name, gate));
    const jobId = await waitFor(`job ${name} to start`, () => jobs().find((id) => !known.has(id)));
    await waitFor(`two batches of ${name} to commit`, () => (records(sb, jobId).filter((r) => r.e === 'commit').length >= 2 ? true : undefined));
    return { run, jobId, gate };
  };
  before(async () => {
    sb.file('in.jsonl', jsonl(rows));
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
  });
  const gates: string[] = [];
  after(async () => {
    for (const g of gates) fs.writeFileSync(g, ''); // a test that failed half-way leaves no job waiting for the next
    await sb.cleanup();
  });

  test('`jobs cancel` twice at once: the job is CANCELLED once, both commands say so, and recover merges exactly the committed batches', async () => {
    const { run, jobId, gate } = await running('cancel');
    const [a, b] = await Promise.all([sb.cli(['jobs', 'cancel', jobId]), sb.cli(['jobs', 'cancel', jobId])]);
    for (const c of [a, b]) {
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /CANCELLED/);
    }
    const r = await run;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_CANCELLED/);
    fs.writeFileSync(gate, ''); // mappers still waiting go on; nothing they save may count
    const statuses = records(sb, jobId).filter((x) => x.e === 'status').map((x) => x.status);
    assert.deepEqual(statuses.filter((s) => s === 'CANCELLED'), ['CANCELLED']);
    assert.equal(statuses.at(-1), 'CANCELLED');
    const again = await sb.cli(['jobs', 'cancel', jobId]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /CANCELLED/);
    const rec = await sb.cli(['recover', jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    const committed = new Set(records(sb, jobId).filter((x) => x.e === 'commit').map((x) => x.i!));
    assert.deepEqual(
      readJsonl(path.join(sb.dir, 'cancel', 'out.jsonl')),
      expected.filter((_, i) => committed.has(Math.floor(i / 2))),
    );
    assert.deepEqual(listFiles(path.join(sb.dir, 'cancel')), ['out.jsonl']);
  });

  test('`jobs resume` twice at once: one resumes the job, the other is refused naming its state; the output is whole once', async () => {
    const { run, jobId, gate } = await running('resume2');
    assert.equal((await sb.cli(['jobs', 'cancel', jobId])).code, 0);
    await run;
    fs.writeFileSync(gate, '');
    const [a, b] = await Promise.all([sb.cli(['jobs', 'resume', jobId]), sb.cli(['jobs', 'resume', jobId])]);
    const [won, lost] = a.code === 0 ? [a, b] : [b, a];
    assert.equal(won.code, 0, `${a.stderr}\n${b.stderr}`);
    assert.match(won.stdout, /SUCCEEDED/);
    assert.notEqual(lost.code, 0, lost.stdout);
    assert.match(lost.stderr, new RegExp(`SKYBATCH_E_BAD_OPTION.*job ${jobId} (is still (PENDING|RUNNING); nothing to resume|already succeeded)`));
    assert.deepEqual(readJsonl(path.join(sb.dir, 'resume2', 'out.jsonl')), expected);
    assert.equal(records(sb, jobId).filter((x) => x.e === 'published').length, 1);
  });

  test('`recover` of a running job is refused naming the cancel command and touches nothing; the job then succeeds whole', async () => {
    const { run, jobId, gate } = await running('busy');
    gates.push(gate);
    const rec = await sb.cli(['recover', jobId]);
    assert.notEqual(rec.code, 0);
    assert.match(rec.stderr, /SKYBATCH_E_BAD_OPTION/);
    assert.match(rec.stderr, new RegExp(`job ${jobId} is still RUNNING; cancel it first with \`skybatch jobs cancel ${jobId}\``));
    assert.ok(!fs.existsSync(path.join(sb.dir, 'busy', 'out.jsonl')));
    assert.ok(!records(sb, jobId).some((x) => x.e === 'published'));
    fs.writeFileSync(gate, '');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'busy', 'out.jsonl')), expected);
  });

  test('two runs of one script at once are two jobs; each publishes the whole output once and leaves no temp files', async () => {
    const file = script('same');
    const [a, b] = await Promise.all([sb.run(file), sb.run(file)]);
    for (const r of [a, b]) assert.equal(r.code, 0, r.stderr);
    const ids = [a, b].map((r) => /RESULT (\d+) SUCCEEDED/.exec(r.stdout)?.[1]);
    assert.ok(ids[0] && ids[1] && ids[0] !== ids[1], `job ids: ${ids.join(', ')}`);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'same', 'out.jsonl')), expected);
    assert.deepEqual(listFiles(path.join(sb.dir, 'same')), ['out.jsonl']);
  });

  test('`pool down` twice at once: both return, no coordinator or worker is left, a third says the pool does not exist', async () => {
    const { pid } = sb.coordinator(POOL);
    const workers = sb.workerPids(POOL);
    assert.ok(workers.length > 0);
    const [a, b] = await Promise.all([sb.cli(['pool', 'down', POOL, '-y']), sb.cli(['pool', 'down', POOL, '-y'])]);
    // each one took the pool down, or found none: the other had finished before it looked, or while it waited for the lock
    for (const d of [a, b]) {
      if (d.code === 0) assert.match(d.stdout, /pool twice is down/);
      else assert.match(d.stderr, /^(pool 'twice' is being changed by skybatch pool down \(pool twice\) \(pid \d+\); waiting for it\n)?error \[SKYBATCH_E_POOL_NOT_FOUND\]: pool 'twice' does not exist\n$/);
    }
    assert.ok(a.code === 0 || b.code === 0, `${a.stderr}\n${b.stderr}`);
    await waitFor('the coordinator and workers to exit', () => (!alive(pid) && workers.every((w) => !alive(w)) ? true : undefined));
    assert.ok(!fs.existsSync(path.join(sb.home, 'pools', POOL)));
    const third = await sb.cli(['pool', 'down', POOL, '-y']);
    assert.equal(third.code, 1);
    assert.match(third.stderr, /SKYBATCH_E_POOL_NOT_FOUND/);
  });
});
