import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { JobSummary } from '../../runtime/protocol.js';
import { Result, Sandbox, jsonl, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

const POOL = 'reconnect';
const POOL_YAML = 'pool:\n  workers: 2\n';
const ROWS = 30;
const EXPECTED = Array.from({ length: ROWS }, (_, i) => ({ out: i * 2 }));

/** A client run whose output can be watched while it runs. */
interface Running {
  proc: ChildProcess;
  exited: Promise<Result>;
  stderr: () => string;
  /** Waits for `re` in stderr; fails at once, with the output, if the client exits first. */
  waitStderr: (re: RegExp, what: string) => Promise<unknown>;
}

describe('a waiting client outlives its connection', () => {
  const sb = new Sandbox('reconnect');
  let n = 0;
  before(async () => {
    await sb.applyPool(POOL, POOL_YAML);
    sb.file('in.jsonl', jsonl(Array.from({ length: ROWS }, (_, i) => ({ i }))));
  });
  after(() => sb.cleanup());

  /**
   * A script whose first three batches finish at once and whose others wait for a gate
   * file, so the test decides when the job can end.
   */
  function gatedScript(opts: { extra?: string; prelude?: string; tail?: (gate: string) => string } = {}): { script: string; gate: string; output: string } {
    n++;
    const gate = path.join(sb.dir, `gate-${n}`);
    const output = path.join(sb.dir, `out-${n}`, 'out.jsonl');
    const script = sb.file(
      `gated-${n}.ts`,
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output,
        pool: POOL,
        batchSize: 3,
        before: `const fs = await import('node:fs');`,
        body: `if (batch[0].i >= 9) ${untilFileExists(gate)}
    await sky.saveResults(batch.map((x) => ({ out: x.i * 2 })));`,
        extra: opts.extra,
        prelude: opts.prelude,
      }) + (opts.tail?.(gate) ?? ''),
    );
    return { script, gate, output };
  }

  function start(args: string[], env: Record<string, string> = {}): Running {
    const proc = sb.spawnCli(args, { env });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d) => (stdout += d));
    proc.stderr!.on('data', (d) => (stderr += d));
    let result: Result | undefined;
    const exited = new Promise<Result>((resolve) => proc.on('close', (code) => resolve((result = { code, stdout, stderr }))));
    return {
      proc,
      exited,
      stderr: () => stderr,
      waitStderr: (re, what) =>
        waitFor(what, () => {
          if (re.test(stderr)) return true;
          if (result) throw new Error(`the client exited (${result.code}) before ${what}:\n${result.stderr}\n${result.stdout}`);
          return undefined;
        }, 60_000),
    };
  }

  /** The id of the job that `script` submitted, once its first three batches are committed. */
  async function jobStarted(script: string): Promise<string> {
    return waitFor(`a job of ${path.basename(script)} to commit its first batches`, () => {
      const jobs = path.join(sb.home, 'jobs');
      for (const id of fs.existsSync(jobs) ? fs.readdirSync(jobs) : []) {
        try {
          if (JSON.parse(fs.readFileSync(path.join(jobs, id, 'job.json'), 'utf8')).scriptPath !== script) continue;
          const commits = fs.readFileSync(path.join(jobs, id, 'journal.jsonl'), 'utf8').match(/"e":"commit"/g)?.length ?? 0;
          if (commits >= 3) return id;
        } catch {
          // being written
        }
      }
      return undefined;
    }, 60_000);
  }

  async function queue(): Promise<JobSummary[]> {
    const q = await sb.cli(['jobs', 'queue', '--json']);
    assert.equal(q.code, 0, q.stderr);
    return JSON.parse(q.stdout) as JobSummary[];
  }

  /** The script's process and the `skybatch run` that started it: a paused terminal stops both. */
  function clientPids(proc: ChildProcess): number[] {
    const kids = fs.readdirSync('/proc').filter((d) => {
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        return /^\d+$/.test(d) && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === proc.pid;
      } catch {
        return false;
      }
    });
    return [proc.pid!, ...kids.map(Number)];
  }

  test('a client waiting on a job whose coordinator is SIGKILLed reconnects after `pool apply` and ends with the job SUCCEEDED', async () => {
    const { script, gate, output } = gatedScript();
    const run = start(['run', script]);
    const jobId = await jobStarted(script);
    process.kill(sb.coordinator(POOL).pid, 'SIGKILL');
    await run.waitStderr(/lost the connection to pool 'reconnect'/, 'the client to notice the lost coordinator');
    await sb.applyPool(POOL, POOL_YAML);
    await run.waitStderr(/reconnected to pool 'reconnect'/, 'the client to reconnect');
    fs.writeFileSync(gate, '');
    const r = await run.exited;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`RESULT ${jobId} SUCCEEDED`));
    assert.deepEqual(readJsonl(output), EXPECTED);
  });

  test('a client paused (SIGSTOP) past its heartbeats while its job finishes still ends with SUCCEEDED after SIGCONT', async () => {
    const { script, gate, output } = gatedScript();
    const run = start(['run', script]);
    const jobId = await jobStarted(script);
    const pids = clientPids(run.proc);
    assert.equal(pids.length, 2, 'skybatch run and its script process');
    for (const p of pids) process.kill(p, 'SIGSTOP');
    try {
      // The stimulus: longer than the coordinator's 3 missed 1-second pings, so it drops the client...
      await new Promise((r) => setTimeout(r, 6000));
      // ...and the job ends while the client cannot hear it.
      fs.writeFileSync(gate, '');
      await waitFor('the job to succeed', async () => (await queue()).find((j) => j.jobId === jobId && j.status === 'SUCCEEDED'), 60_000);
    } finally {
      for (const p of pids) process.kill(p, 'SIGCONT');
    }
    const r = await run.exited;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /lost the connection to pool 'reconnect'/, 'the coordinator dropped the paused client');
    assert.match(r.stdout, new RegExp(`RESULT ${jobId} SUCCEEDED`));
    assert.deepEqual(readJsonl(output), EXPECTED);
  });

  test('a client that cannot reconnect gives up naming the job and how to follow it; `skybatch jobs wait` then sees it through', async () => {
    const { script, gate, output } = gatedScript();
    const run = start(['run', script], { SKYBATCH_RECONNECT_TIMEOUT_MS: '1500' });
    const jobId = await jobStarted(script);
    process.kill(sb.coordinator(POOL).pid, 'SIGKILL');
    const r = await run.exited;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_PROTOCOL/);
    assert.ok(r.stderr.includes(`job ${jobId}: stopped waiting after 2 s without a connection to pool 'reconnect'`), r.stderr);
    assert.ok(r.stderr.includes(`skybatch jobs wait ${jobId}`), r.stderr);
    assert.ok(r.stderr.includes(`skybatch jobs logs ${jobId} --follow`), r.stderr);

    await sb.applyPool(POOL, POOL_YAML);
    const wait = start(['jobs', 'wait', jobId]);
    fs.writeFileSync(gate, '');
    const w = await wait.exited;
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, new RegExp(`job ${jobId}: SUCCEEDED \\(10/10 batches, 30 items\\)`));
    assert.deepEqual(readJsonl(output), EXPECTED);
    const again = await sb.cli(['jobs', 'wait', jobId]);
    assert.equal(again.code, 0, 'a finished job resolves at once');
  });

  test('a `stream: false` job is awaited later with sky.waitForJob, which resolves like map()', async () => {
    const { script, output } = gatedScript({
      extra: ', stream: false',
      prelude: "import * as fs from 'node:fs';",
      // the job is still running when waitForJob starts: its gate opens only now
      tail: (gate) => `fs.writeFileSync(${JSON.stringify(gate)}, '');
const done = await sky.waitForJob(job.jobId, { progress: false });
console.log('WAITED', done.jobId, done.status, done.summary?.itemsDone, done instanceof sky.Job);
console.log('MISSING', await sky.waitForJob('999999').catch((e) => e.code));
`,
    });
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    const jobId = /RESULT (\d+) PENDING/.exec(r.stdout)?.[1];
    assert.ok(jobId, r.stdout);
    assert.match(r.stdout, new RegExp(`WAITED ${jobId} SUCCEEDED 30 true`));
    assert.match(r.stdout, /MISSING SKYBATCH_E_JOB_NOT_FOUND/);
    assert.deepEqual(readJsonl(output), EXPECTED);
  });

  test('`skybatch jobs queue --json` prints every job summary as one JSON array', async () => {
    const all = await queue();
    assert.ok(Array.isArray(all));
    assert.deepEqual(all.map((j) => j.jobId), ['1', '2', '3', '4']);
    for (const j of all) {
      assert.equal(j.pool, POOL);
      assert.equal(j.status, 'SUCCEEDED');
      assert.deepEqual([j.batchesDone, j.batchesTotal, j.itemsDone, j.itemsTotal], [10, 10, 30, 30]);
    }
    const none = await sb.cli(['jobs', 'queue', '--json', '--pool', 'no-such-pool']);
    assert.deepEqual(JSON.parse(none.stdout), []);
  });
});
