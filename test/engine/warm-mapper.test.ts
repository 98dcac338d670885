import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, alive, jsonl, readJsonl, waitFor } from '../harness.js';

interface Row {
  text: string;
  pid: number;
  jobs: number;
  job: string;
  flavor?: string;
}

/**
 * A job's mapper process stays warm on its worker for the next job of the same bundle and
 * environment: module state survives, everything of the job (its id, reader, writers) is new.
 */
describe('warm mapper processes', () => {
  const sb = new Sandbox('warm');
  const input = path.join(sb.dir, 'in.jsonl');
  const rows = Array.from({ length: 9 }, (_, i) => ({ text: `row${i}` }));
  let script: string;
  let otherScript: string;

  // `jobs` is module state: it counts the jobs this process ran. The FAIL file makes the
  // mapper throw before its first batch. Each run's output path comes from a file: the
  // script's arguments and environment are part of what makes a mapper process reusable.
  const failFlag = () => path.join(sb.dir, 'FAIL');
  const nextOutput = () => path.join(sb.dir, 'next-output.txt');
  const source = (extra: string) => `import * as fs from 'node:fs';
import * as sky from 'skybatch';
let jobs = 0;
const mapper = sky.remoteFunction(async function mapper() {
  jobs++;
  if (fs.existsSync(${JSON.stringify(failFlag())})) throw new Error('told to fail');
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((x) => ({ text: x.text, pid: process.pid, jobs, job: process.env.SKYBATCH_JOB_ID${extra} })));
  }
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(input)}));
const job = await ds.map(mapper, { poolName: 'warm', batchSize: 2, output: new sky.JsonWriter(fs.readFileSync(${JSON.stringify(nextOutput())}, 'utf8')), retryBaseMs: 50 });
console.log('RESULT', job.jobId, job.status);
`;

  before(async () => {
    await sb.applyPool('warm', 'pool:\n  workers: 1\n');
    sb.file('in.jsonl', jsonl(rows));
    script = sb.file('warm.ts', source(''));
    otherScript = sb.file('other.ts', source(', flavor: process.env.WARM_FLAVOR'));
  });
  after(() => sb.cleanup());

  let n = 0;
  /** Runs `file` to its end and checks its output row for row; returns the rows and the job id. */
  async function runJob(file: string, env: Record<string, string> = {}, args: string[] = []): Promise<{ out: Row[]; jobId: string }> {
    const output = path.join(sb.dir, `out${++n}.jsonl`);
    fs.writeFileSync(nextOutput(), output);
    const r = await sb.run(file, env, args);
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT (\S+) SUCCEEDED/.exec(r.stdout)?.[1];
    assert.ok(jobId, r.stdout);
    const out = readJsonl(output) as Row[];
    assert.deepEqual(out.map((o) => o.text), rows.map((x) => x.text), 'every row once, in order');
    assert.ok(out.every((o) => o.job === jobId), `each row was mapped under its own job id ${jobId}`);
    assert.equal(new Set(out.map((o) => o.pid)).size, 1, 'one mapper process on the one worker');
    assert.equal(new Set(out.map((o) => o.jobs)).size, 1);
    return { out, jobId };
  }

  test('the next job of the same script runs in the same mapper process and sees its module state', async () => {
    const first = await runJob(script);
    assert.equal(first.out[0].jobs, 1);
    const second = await runJob(script);
    assert.notEqual(second.jobId, first.jobId);
    assert.equal(second.out[0].pid, first.out[0].pid, 'same mapper process');
    assert.equal(second.out[0].jobs, 2, 'module state of the first job is still there');
  });

  test('a job with another environment or another bundle gets a new process', async () => {
    const base = await runJob(script);
    const otherEnv = await runJob(script, { WARM_FLAVOR: 'b' });
    assert.notEqual(otherEnv.out[0].pid, base.out[0].pid, 'another job env: a new process');
    assert.equal(otherEnv.out[0].jobs, 1);
    const again = await runJob(script, { WARM_FLAVOR: 'b' });
    assert.equal(again.out[0].pid, otherEnv.out[0].pid, 'the same env again: warm');
    const otherArgs = await runJob(script, { WARM_FLAVOR: 'b' }, ['--some-setting']);
    assert.notEqual(otherArgs.out[0].pid, again.out[0].pid, 'other script arguments: a new process');
    await runJob(script, { WARM_FLAVOR: 'b' });
    const otherBundle = await runJob(otherScript, { WARM_FLAVOR: 'b' });
    assert.notEqual(otherBundle.out[0].pid, again.out[0].pid, 'another bundle: a new process');
    assert.notEqual(otherBundle.out[0].pid, otherArgs.out[0].pid, 'another bundle: a new process');
    assert.equal(otherBundle.out[0].jobs, 1);
    assert.ok(otherBundle.out.every((o) => o.flavor === 'b'));
  });

  test('jobs that follow each other on a worker at once, or share it, run in one mapper process', async () => {
    // Two jobs submitted together on one worker: the coordinator ends one and hands out the
    // next in the same write, or moves the worker between them (fair share).
    const both = sb.file(
      'both.ts',
      `import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((x) => ({ text: x.text, pid: process.pid, job: process.env.SKYBATCH_JOB_ID })));
  }
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(input)}));
const jobs = await Promise.all([process.argv[2], process.argv[3]].map((out) => ds.map(mapper, { poolName: 'warm', batchSize: 1, output: new sky.JsonWriter(out), retryBaseMs: 50 })));
console.log('RESULT', jobs.map((j) => j.jobId + ' ' + j.status).join(' '));
`,
    );
    const outs = [path.join(sb.dir, 'both1.jsonl'), path.join(sb.dir, 'both2.jsonl')];
    const r = await sb.run(both, {}, outs);
    assert.equal(r.code, 0, r.stderr);
    const ids = [...r.stdout.matchAll(/(\S+) SUCCEEDED/g)].map((m) => m[1]);
    assert.equal(ids.length, 2, r.stdout);
    const pids = new Set<number>();
    outs.forEach((out, i) => {
      const got = readJsonl(out) as Row[];
      assert.deepEqual(got.map((o) => o.text), rows.map((x) => x.text), 'every row once, in order');
      assert.ok(got.every((o) => o.job === ids[i]), 'each row under its own job');
      for (const o of got) pids.add(o.pid);
    });
    assert.equal(pids.size, 1, `one mapper process for both jobs, got pids ${[...pids].join(', ')}`);
  });

  test('a warm process that died, or whose job failed, is not reused', async () => {
    const base = await runJob(script);
    process.kill(base.out[0].pid, 'SIGKILL');
    await waitFor('the warm mapper process to die', () => {
      try {
        process.kill(base.out[0].pid, 0);
        return undefined;
      } catch {
        return true;
      }
    });
    const afterCrash = await runJob(script);
    assert.notEqual(afterCrash.out[0].pid, base.out[0].pid);
    assert.equal(afterCrash.out[0].jobs, 1, 'a fresh process');

    fs.writeFileSync(failFlag(), '');
    fs.writeFileSync(nextOutput(), path.join(sb.dir, 'failed.jsonl'));
    const failed = await sb.run(script);
    fs.rmSync(failFlag());
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /told to fail/);
    const afterFailure = await runJob(script);
    assert.notEqual(afterFailure.out[0].pid, afterCrash.out[0].pid, 'the failed job stopped its process');
    assert.equal(afterFailure.out[0].jobs, 1, 'a fresh process');
  });

  test('a warm process that stops answering while it waits for a next job (SIGSTOP) is stopped, and the next job gets a fresh one', async () => {
    const base = await runJob(script);
    const pid = base.out[0].pid;
    process.kill(pid, 'SIGSTOP');
    try {
      // pinged every 5 s: one missed answer, then SIGTERM + SIGCONT, SIGKILL after 3 s
      await waitFor('the frozen warm mapper process to be stopped', () => (alive(pid) ? undefined : true), 30_000);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    const next = await runJob(script);
    assert.notEqual(next.out[0].pid, pid);
    assert.equal(next.out[0].jobs, 1, 'a fresh process');
  });
});
