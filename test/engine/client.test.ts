import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import { Sandbox, jsonl, mapperScript, readJsonl, waitFor } from '../harness.js';

const POOL = 'client';

describe('the client API', () => {
  const sb = new Sandbox('client');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\nenvs:\n  FROM_POOL: pool-value\n');
    sb.file('in6.jsonl', jsonl(Array.from({ length: 6 }, (_, i) => ({ text: `t${i}` }))));
  });
  after(() => sb.cleanup());

  test('settings read from process.env and process.argv at top level mean the same on workers; the rest of the top level runs only in the client', async () => {
    const script = sb.file(
      'settings.ts',
      mapperScript({
        input: path.join(sb.dir, 'in6.jsonl'),
        output: path.join(sb.dir, 'settings.jsonl'),
        pool: POOL,
        prelude: `const SUFFIX = process.env.SUFFIX ?? 'unset';\nconst MODE = process.argv[2] ?? 'no-arg';\nconsole.log('top level ran on', process.env.SKYBATCH_WORKER ?? 'the client');`,
        body: `await sky.saveResults(batch.map((x) => ({ out: x.text + SUFFIX + MODE, pool: process.env.FROM_POOL })));`,
      }) + `console.log('after map on', process.env.SKYBATCH_WORKER ?? 'the client');\n`,
    );
    const r = await sb.run(script, { SUFFIX: '-s' }, ['--fast']);
    assert.equal(r.code, 0, r.stderr);
    const out = readJsonl(path.join(sb.dir, 'settings.jsonl')) as { out: string; pool: string }[];
    assert.deepEqual(out.map((o) => o.out), ['t0-s--fast', 't1-s--fast', 't2-s--fast', 't3-s--fast', 't4-s--fast', 't5-s--fast']);
    assert.ok(out.every((o) => o.pool === 'pool-value'), "the pool's envs reach the mapper");
    assert.equal((r.stdout.match(/after map on/g) ?? []).length, 1, 'code after map() runs on the client only');
    const q = await sb.cli(['jobs', 'queue', '--pool', POOL]);
    assert.equal(q.stdout.trim().split('\n').length, 2, 'exactly one job was submitted');
    const { jobId } = { jobId: /RESULT (\d+)/.exec(r.stdout)![1] };
    assert.equal((r.stdout.match(/top level ran on the client/g) ?? []).length, 1);
    assert.doesNotMatch((await sb.cli(['jobs', 'logs', jobId])).stdout, /top level ran on/, 'workers run the declarations the mapper uses, not the top-level statements');
  });

  test("a job's batches and their states can be read back from the coordinator", async () => {
    const q = await sb.cli(['jobs', 'queue', '--pool', POOL]);
    const jobId = /^(\d+)\s+client\s+SUCCEEDED/m.exec(q.stdout)![1];
    const { url, token } = sb.coordinator(POOL);
    const client = await CoordinatorClient.connect(url, token);
    try {
      const batches = await client.request({ type: 'batches', jobId });
      assert.deepEqual(batches.map((b) => [b.start, b.end, b.state]), [[0, 1, 'done'], [2, 3, 'done'], [4, 5, 'done']]);
      await assert.rejects(client.request({ type: 'batches', jobId: '999' }), /SKYBATCH_E_JOB_NOT_FOUND|job 999 is not a job of pool/);
    } finally {
      client.close();
    }
  });

  test("job and pool state files are readable by their owner only", () => {
    const jobDir = path.join(sb.home, 'jobs', '1');
    const poolDir = path.join(sb.home, 'pools', POOL);
    for (const f of [path.join(jobDir, 'job.json'), path.join(jobDir, 'journal.jsonl'), path.join(jobDir, 'job.log'), path.join(poolDir, 'token'), path.join(poolDir, 'pool.json'), path.join(poolDir, 'coordinator.log'), path.join(poolDir, 'workers', '0', 'worker.log')]) {
      assert.equal(fs.statSync(f).mode & 0o077, 0, `${f} is readable by others`);
    }
    assert.equal(fs.statSync(jobDir).mode & 0o077, 0);
  });

  test('activateEnv runs before the mapper starts', async () => {
    sb.file('env.sh', 'export ACTIVATED=venv-on\n');
    const script = sb.file(
      'activate.ts',
      mapperScript({
        input: path.join(sb.dir, 'in6.jsonl'),
        output: path.join(sb.dir, 'activate.jsonl'),
        pool: POOL,
        body: `await sky.saveResults(batch.map(() => ({ env: process.env.ACTIVATED })));`,
        extra: `, activateEnv: 'source ${path.join(sb.dir, 'env.sh')}'`,
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(new Set((readJsonl(path.join(sb.dir, 'activate.jsonl')) as { env: string }[]).map((o) => o.env)), new Set(['venv-on']));
  });

  test('helpers and classes the script defines run on workers', async () => {
    const script = sb.file(
      'helpers.ts',
      mapperScript({
        input: path.join(sb.dir, 'in6.jsonl'),
        output: path.join(sb.dir, 'helpers.jsonl'),
        pool: POOL,
        prelude: `import { shout } from './lib/shout.js';\nclass Counter { n = 0; next() { return ++this.n; } }`,
        before: `const c = new Counter();`,
        body: `await sky.saveResults(batch.map((x) => ({ out: shout(String(x.text)), n: c.next() })));`,
      }),
    );
    sb.file('lib/shout.ts', `export function shout(s: string): string { return s.toUpperCase() + '!'; }\n`);
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((readJsonl(path.join(sb.dir, 'helpers.jsonl')) as { out: string }[]).map((o) => o.out), ['T0!', 'T1!', 'T2!', 'T3!', 'T4!', 'T5!']);
  });

  test('a worker that stops answering heartbeats (SIGSTOP) loses its batch to another worker', async () => {
    sb.file('in20.jsonl', jsonl(Array.from({ length: 20 }, (_, i) => ({ text: `t${i}` }))));
    const script = sb.file(
      'stall.ts',
      mapperScript({
        input: path.join(sb.dir, 'in20.jsonl'),
        output: path.join(sb.dir, 'stall/out.jsonl'),
        pool: POOL,
        batchSize: 1,
        body: `await new Promise((r) => setTimeout(r, 100)); await sky.saveResults(batch.map((x) => ({ out: x.text })));`,
      }),
    );
    const [victim] = sb.workerPids(POOL);
    const run = sb.run(script);
    await waitFor('the job to start', () => fs.existsSync(path.join(sb.dir, 'stall/.sky_batch_tmp')) || undefined);
    process.kill(victim, 'SIGSTOP');
    const log = path.join(sb.home, 'pools', POOL, 'coordinator.log');
    let r;
    try {
      r = await run;
      // A straggler copy may finish the frozen worker's batch before its heartbeats run out;
      // either way the frozen worker must be dropped while it stays frozen.
      await waitFor('the frozen worker to be dropped', () => /worker local-\d left \(code 1006\)/.test(fs.readFileSync(log, 'utf8')) || undefined);
    } finally {
      process.kill(victim, 'SIGCONT');
    }
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((readJsonl(path.join(sb.dir, 'stall/out.jsonl')) as { out: string }[]).map((o) => o.out), Array.from({ length: 20 }, (_, i) => `t${i}`));
  });
});
