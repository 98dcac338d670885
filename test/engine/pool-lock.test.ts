import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { FileLock } from '../../runtime/file-lock.js';
import { Sandbox, waitFor } from '../harness.js';

const YAML = 'pool:\n  workers: 2\n';

describe('pool apply and pool down hold the pool lock', () => {
  const sb = new Sandbox('pool-lock');
  after(() => sb.cleanup());

  /** Live coordinator processes of `pool` in this sandbox (found by command line and SKYBATCH_HOME). */
  function coordinators(pool: string): number[] {
    const out: number[] = [];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const args = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        const env = fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (stat[stat.lastIndexOf(')') + 2] === 'Z') continue;
        if (args.some((a) => a.endsWith('coordinator/main.js')) && args[args.indexOf('--pool') + 1] === pool && env.includes(`SKYBATCH_HOME=${sb.home}`)) out.push(Number(d));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  function apply(pool: string) {
    return sb.cli(['pool', 'apply', sb.file(`${pool}.yaml`, YAML), '--pool', pool, '-y'], { timeoutMs: 60_000 });
  }

  test('concurrent `pool apply` of one name start exactly one coordinator, all return with it, and `pool down` leaves no coordinator or worker', async () => {
    const pool = 'race';
    const runs = await Promise.all([apply(pool), apply(pool), apply(pool)]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const live = coordinators(pool);
    assert.equal(live.length, 1, `coordinators running: ${live.join(', ')}`);
    const { pid } = sb.coordinator(pool);
    assert.deepEqual(live, [pid]);
    for (const r of runs) assert.match(r.stdout, new RegExp(`pool race: 2/2 workers ready \\(coordinator ws://127\\.0\\.0\\.1:\\d+, pid ${pid}\\)`));
    const workers = sb.workerPids(pool);
    assert.equal(workers.length, 2);

    const down = await sb.cli(['pool', 'down', pool, '-y']);
    assert.equal(down.code, 0, down.stderr);
    await waitFor('every coordinator and worker of the pool to exit', () => (coordinators(pool).length === 0 && sb.workerPids(pool).length === 0) || undefined);
    assert.ok(!fs.existsSync(path.join(sb.home, 'pools', pool)));
  });

  test('apply waits while a live process holds the pool lock, and breaks a lock whose holder died', async () => {
    const pool = 'locked';
    const lockFile = path.join(sb.home, 'pools', pool, 'pool.lock');
    const held = FileLock.tryAcquire(lockFile, 'this test');
    assert.ok(held);
    const first = sb.spawnCli(['pool', 'apply', sb.file(`${pool}.yaml`, YAML), '--pool', pool, '-y']);
    let stderr = '';
    first.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => first.on('close', resolve));
    await waitFor('apply to wait for the lock', () => stderr.includes(`is being changed by this test (pid ${process.pid}); waiting for it`) || undefined);
    assert.equal(coordinators(pool).length, 0, 'nothing started while the lock is held');
    held.release();
    assert.equal(await exited, 0, stderr);
    assert.equal(coordinators(pool).length, 1);

    const down = await sb.cli(['pool', 'down', pool, '-y']);
    assert.equal(down.code, 0, down.stderr);
    // A holder that died (its pid now names no process) leaves a stale lock: the next apply takes it over.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(lockFile, JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), what: 'a crashed apply', since: new Date().toISOString() }));
    const r = await apply(pool);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(coordinators(pool).length, 1);
    assert.ok(!fs.existsSync(lockFile), 'apply gave the lock back');
    assert.equal((await sb.cli(['pool', 'down', pool, '-y'])).code, 0);
    await waitFor('the coordinator to exit', () => coordinators(pool).length === 0 || undefined);
  });

  test('a `pool down` waiting on the lock while its holder removes the pool says the pool does not exist, and does not bring its folder back', async () => {
    // what a second `pool down` at once sees when the first one finishes (CI once saw ENOENT on the lock's temp file)
    const pool = 'gone';
    const dir = path.join(sb.home, 'pools', pool);
    const held = FileLock.tryAcquire(path.join(dir, 'pool.lock'), 'this test');
    assert.ok(held);
    const down = sb.spawnCli(['pool', 'down', pool, '-y']);
    let stderr = '';
    down.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => down.on('close', resolve));
    await waitFor('pool down to wait for the lock', () => stderr.includes(`is being changed by this test (pid ${process.pid}); waiting for it`) || undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(await exited, 1, stderr);
    assert.match(stderr, /\nerror \[SKYBATCH_E_POOL_NOT_FOUND\]: pool 'gone' does not exist\n$/);
    assert.ok(!fs.existsSync(dir), 'the folder stays gone');
  });
});

describe('a lock file that cannot be read (a folder in its place) is an error naming it, not a wait that never ends', () => {
  const sb = new Sandbox('bad-lock');
  after(() => sb.cleanup());

  test('`pool apply` fails at once naming pool.lock; with the folder gone it applies', async () => {
    const lockFile = path.join(sb.home, 'pools', 'dirlock', 'pool.lock');
    fs.mkdirSync(lockFile, { recursive: true });
    const yaml = sb.file('dirlock.yaml', YAML);
    const r = await sb.cli(['pool', 'apply', yaml, '--pool', 'dirlock', '-y'], { timeoutMs: 30_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`${lockFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: this lock cannot be read \\(EISDIR\\)`));
    fs.rmdirSync(lockFile);
    assert.equal((await sb.cli(['pool', 'apply', yaml, '--pool', 'dirlock', '-y'])).code, 0);
    assert.equal((await sb.cli(['pool', 'down', 'dirlock', '-y'])).code, 0);
  });

  test("a job whose reduce.lock is a folder fails naming it; the coordinator goes on serving; recover publishes once it is gone", async () => {
    await sb.applyPool('rlock', YAML);
    sb.file('in.jsonl', Array.from({ length: 8 }, (_, i) => JSON.stringify({ i })).join('\n') + '\n');
    const go = path.join(sb.dir, 'go');
    const script = sb.file(
      'held.ts',
      `import * as fs from 'node:fs';
import * as sky from 'skybatch';
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    while (!fs.existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 20));
    await sky.saveResults(batch.map((x) => ({ out: x.i * 2 })));
  }
});
const job = await new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))})).map(mapper, { poolName: 'rlock', batchSize: 4, output: new sky.JsonWriter(process.env.OUTPUT!) });
console.log('RESULT', job.jobId, job.status);
`,
    );
    const out = path.join(sb.dir, 'out', 'out.jsonl');
    const run = sb.run(script, { OUTPUT: out });
    const jobs = path.join(sb.home, 'jobs');
    const jobId = await waitFor('the job', () => (fs.existsSync(jobs) ? fs.readdirSync(jobs)[0] : undefined));
    const lock = path.join(jobs, jobId, 'reduce.lock');
    fs.mkdirSync(lock);
    fs.writeFileSync(go, '');
    const r = await run;
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /SKYBATCH_E_STORAGE/);
    assert.match(r.stderr, /reduce\.lock: this lock cannot be read \(EISDIR\)/);
    // the coordinator was not stuck on it: it answers and runs the next job
    const again = await sb.run(script, { OUTPUT: path.join(sb.dir, 'out2', 'out.jsonl') });
    assert.equal(again.code, 0, again.stderr);
    fs.rmdirSync(lock);
    const rec = await sb.cli(['recover', jobId]);
    assert.equal(rec.code, 0, rec.stderr);
    assert.deepEqual(fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l).out), [0, 2, 4, 6, 8, 10, 12, 14]);
  });
});
