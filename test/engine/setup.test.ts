import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Sandbox, jsonl, mapperScript, pidsMatching, readJsonl, waitFor } from '../harness.js';

const DOUBLE = `await sky.saveResults(batch.map((x) => ({ output: String(x.text).repeat(2) })));`;

describe('setup that hangs, fails or changes', () => {
  const sb = new Sandbox('setup');
  // a marker unique to this run, so the process checks see only this test's setup processes
  const mark = `skyb-setup-${process.pid}-${Date.now()}`;
  const pools = new Set<string>();
  after(async () => {
    for (const pool of pools) await sb.cli(['pool', 'down', pool, '-y'], { timeoutMs: 30_000 });
    for (const pid of [...pidsMatching(mark), ...[1, 2, 3, 4].flatMap((n) => pidsMatching(`sleep\u000098765${n}`))]) process.kill(pid, 'SIGKILL');
    await sb.cleanup();
  });

  const apply = (pool: string, yaml: string, extra: string[] = []) => {
    pools.add(pool);
    const file = sb.file(`${pool}.pool.yaml`, yaml);
    return sb.cli(['pool', 'apply', file, '--pool', pool, '-y', ...extra], { timeoutMs: 60_000 });
  };

  test('a setup that hangs past setup_timeout: apply returns with the timeout error and no setup process is left', async () => {
    const t0 = Date.now();
    const r = await apply('hang', `pool:\n  workers: 1\nsetup: "echo installing; sleep 987651 & sleep 987652; # ${mark}-hang"\nsetup_timeout: 2s\n`);
    assert.notEqual(r.code, null, `pool apply hung (killed after ${Date.now() - t0} ms)`);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /SKYBATCH_E_SETUP_FAILED/);
    assert.match(r.stderr, /did not finish within 2 s \(setup_timeout/);
    assert.match(r.stderr, /installing/, 'the setup output is shown');
    await waitFor('every setup process to be gone', () => (pidsMatching(`${mark}-hang`).length === 0 && pidsMatching('sleep\u0000987651').length === 0 && pidsMatching('sleep\u0000987652').length === 0) || undefined, 10_000);
  });

  test('setup_timeout is validated with its line', async () => {
    const r = await apply('badtimeout', 'pool:\n  workers: 1\nsetup: echo hi\nsetup_timeout: soon\n');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /badtimeout\.pool\.yaml line 4: setup_timeout: expected/);
  });

  test('pool down stops a setup that is still running, with its whole process group', async () => {
    const r = await apply('downsetup', `pool:\n  workers: 1\nsetup: "sleep 987653 & sleep 987654; # ${mark}-down"\n`, ['--no-wait']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('setup to start', () => pidsMatching(`${mark}-down`).length > 0 || undefined);
    const d = await sb.cli(['pool', 'down', 'downsetup', '-y']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the setup processes to be gone', () => (pidsMatching(`${mark}-down`).length === 0 && pidsMatching('sleep\u0000987653').length === 0 && pidsMatching('sleep\u0000987654').length === 0) || undefined, 10_000);
  });

  test('a job on a pool whose setup failed on every worker fails at once with the setup error', async () => {
    sb.file('in.jsonl', jsonl([{ text: 'a' }, { text: 'b' }]));
    // setup fails only once the first job waits for it
    const go = path.join(sb.dir, 'go');
    const r = await apply('broken', `pool:\n  workers: 2\nsetup: |\n  while [ ! -e ${go} ]; do sleep 0.1; done\n  echo "E: package libfoo not found" >&2\n  exit 3\n`, ['--no-wait']);
    assert.equal(r.code, 0, r.stderr);
    const job = (name: string) => sb.file(`${name}.ts`, mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output: path.join(sb.dir, name, 'out.jsonl'), pool: 'broken', body: DOUBLE }));
    const pending = sb.cli(['run', job('waiting')], { timeoutMs: 60_000 });
    await waitFor('the job to be submitted', () => fs.existsSync(path.join(sb.home, 'jobs')) && fs.readdirSync(path.join(sb.home, 'jobs')).length > 0 || undefined, 30_000);
    fs.writeFileSync(go, '');
    const waiting = await pending;
    assert.notEqual(waiting.code, null, 'the job waited forever on a pool that cannot run it');
    assert.notEqual(waiting.code, 0);
    assert.match(waiting.stderr, /SKYBATCH_E_SETUP_FAILED/);
    assert.match(waiting.stderr, /package libfoo not found/);
    assert.match(waiting.stderr, /skybatch recover \d+/);
    const t0 = Date.now();
    const late = await sb.cli(['run', job('late')], { timeoutMs: 30_000 });
    assert.notEqual(late.code, null, 'the job waited forever on a pool that cannot run it');
    assert.notEqual(late.code, 0);
    assert.match(late.stderr, /SKYBATCH_E_SETUP_FAILED/);
    assert.match(late.stderr, /setup failed on every worker \(local-0, local-1\)/);
    assert.match(late.stderr, /package libfoo not found/);
    assert.ok(Date.now() - t0 < 20_000);
  });

  test('a changed setup in a new pool apply reruns on the running workers, and apply says so', async () => {
    const log = path.join(sb.home, 'pools', 'changing', 'workers', 'setup-log.txt');
    const v1 = await apply('changing', 'pool:\n  workers: 2\nsetup: echo v1 >> ../setup-log.txt\n');
    assert.equal(v1.code, 0, v1.stderr);
    assert.deepEqual(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean), ['v1', 'v1']);
    const v2 = await apply('changing', 'pool:\n  workers: 2\nsetup: echo v2 >> ../setup-log.txt\n');
    assert.equal(v2.code, 0, v2.stderr);
    assert.match(v2.stderr, /setup changed: running it again on local-0, local-1|setup changed: running it again on local-1, local-0/);
    assert.deepEqual(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean), ['v1', 'v1', 'v2', 'v2']);
    assert.match(v2.stdout, /2\/2 workers ready/);
    // the same file again changes nothing
    const same = await apply('changing', 'pool:\n  workers: 2\nsetup: echo v2 >> ../setup-log.txt\n');
    assert.equal(same.code, 0, same.stderr);
    assert.doesNotMatch(same.stderr, /setup changed/);
    const s = sb.file('after.ts', mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output: path.join(sb.dir, 'after', 'out.jsonl'), pool: 'changing', body: DOUBLE }));
    const r = await sb.run(s);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'after', 'out.jsonl')), [{ output: 'aa' }, { output: 'bb' }]);
    assert.equal(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).length, 4);
  });
});
