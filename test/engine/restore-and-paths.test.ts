import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, listFiles, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

const SAVE = `await sky.saveResults(batch.map((x) => ({ out: x.text })));`;

/** The last status record of a job's journal, read straight from disk. */
function lastStatus(sb: Sandbox, jobId: string): { status: string; error?: { code: string; message: string } } | undefined {
  const file = path.join(sb.home, 'jobs', jobId, 'journal.jsonl');
  if (!fs.existsSync(file)) return undefined;
  const records = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => r.e === 'status');
  return records[records.length - 1];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a pool restarts whatever state its jobs are in', () => {
  const POOL = 'restore';
  const sb = new Sandbox('restore');
  after(() => sb.cleanup());

  test('a job whose bundle is gone, or whose job.json is unreadable or invalid, is marked FAILED at the next pool apply; the pool starts and the other job resumes', async () => {
    const yaml = 'pool:\n  workers: 1\n';
    await sb.applyPool(POOL, yaml);
    sb.file('in.jsonl', jsonl(Array.from({ length: 4 }, (_, i) => ({ text: `t${i}` }))));
    const never = path.join(sb.dir, 'never-created');
    // A holds the only worker (both its batches: one running, one prefetched), so B waits behind it
    const scriptA = sb.file(
      'a.ts',
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, 'a', 'out.jsonl'),
        pool: POOL,
        prelude: `import * as fs from 'node:fs';`,
        body: `${untilFileExists(never)}\n    ${SAVE}`,
      }),
    );
    const scriptB = sb.file('b.ts', mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output: path.join(sb.dir, 'b', 'out.jsonl'), pool: POOL, body: SAVE }));
    const specOf = (id: string) => JSON.parse(fs.readFileSync(path.join(sb.home, 'jobs', id, 'job.json'), 'utf8'));
    const jobOf = (script: string) => () => fs.readdirSync(path.join(sb.home, 'jobs')).find((id) => fs.existsSync(path.join(sb.home, 'jobs', id, 'job.json')) && specOf(id).scriptPath === script);
    const clientA = sb.spawnCli(['run', scriptA]);
    const a = await waitFor('job A to be submitted', () => (fs.existsSync(path.join(sb.home, 'jobs')) ? jobOf(scriptA)() : undefined), 60_000);
    const clientB = sb.spawnCli(['run', scriptB]);
    const b = await waitFor('job B to be submitted', jobOf(scriptB), 60_000);
    // job.json is written at submission, the journal's first record on the coordinator's next tick
    assert.equal(await waitFor("job B's first journal record", () => lastStatus(sb, b)?.status), 'PENDING');

    // the crash: coordinator, workers and clients gone at once
    const { pid } = sb.coordinator(POOL);
    for (const p of [pid, ...sb.workerPids(POOL)]) process.kill(p, 'SIGKILL');
    clientA.kill('SIGKILL');
    clientB.kill('SIGKILL');
    await waitFor('the coordinator to die', () => !alive(pid));
    fs.rmSync(path.join(sb.home, 'bundles', `${specOf(a).bundleHash}.mjs`));
    sb.file(path.relative(sb.dir, path.join(sb.home, 'jobs', '90', 'job.json')), '{"jobId": "90", "pool": ');
    sb.file(path.relative(sb.dir, path.join(sb.home, 'jobs', '91', 'job.json')), JSON.stringify({ ...specOf(b), jobId: '91', batchSize: 0 }));

    await sb.applyPool(POOL, yaml);
    await waitFor('job B to succeed after the restart', () => lastStatus(sb, b)?.status === 'SUCCEEDED', 60_000);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'b', 'out.jsonl')), [{ out: 't0' }, { out: 't1' }, { out: 't2' }, { out: 't3' }]);
    const failedA = lastStatus(sb, a)!;
    assert.equal(failedA.status, 'FAILED');
    assert.equal(failedA.error?.code, 'SKYBATCH_E_RESTORE');
    assert.match(failedA.error!.message, new RegExp(`job ${a} cannot be resumed after the coordinator restarted: its bundle .*${specOf(a).bundleHash}\\.mjs is missing`));
    assert.match(failedA.error!.message, new RegExp(`resumeFrom: '${a}'`));
    assert.match(lastStatus(sb, '90')!.error!.message, /job 90 cannot be resumed .*its job\.json cannot be read/);
    assert.equal(lastStatus(sb, '91')!.status, 'FAILED');
    assert.match(lastStatus(sb, '91')!.error!.message, /job 91 cannot be resumed .*batchSize must be a positive integer, got 0.*skybatch recover 91/);
    assert.ok(alive(sb.coordinator(POOL).pid));
    const logs = await sb.cli(['jobs', 'logs', a]);
    assert.match(logs.stdout, /FAILED: job \d+ cannot be resumed/);
    assert.match(fs.readFileSync(path.join(sb.home, 'pools', POOL, 'coordinator.log'), 'utf8'), /job 91 cannot be resumed/);
  });
});

describe('job ids and bundle hashes never become paths', () => {
  const sb = new Sandbox('ids');
  after(() => sb.cleanup());

  test('recover and jobs logs refuse a job id that is a path, and a job whose bundle hash is a path; nothing is imported or printed', async () => {
    const marker = path.join(sb.dir, 'imported');
    const planted = path.join(sb.home, 'x');
    fs.mkdirSync(planted, { recursive: true });
    fs.writeFileSync(path.join(planted, 'evil.mjs'), `import * as fs from 'node:fs';\nfs.writeFileSync(${JSON.stringify(marker)}, 'imported');\n`);
    fs.writeFileSync(path.join(planted, 'job.log'), 'TOP-SECRET\n');
    const spec = (jobId: string) => ({
      bundleHash: '../x/evil',
      mapperId: 'm#1',
      scriptPath: '/nowhere.ts',
      reader: { type: 'json', path: '/nowhere.jsonl', options: {} },
      writers: [{ type: 'json', path: path.join(sb.dir, 'out.jsonl'), options: {} }],
      batchSize: 1,
      total: 2,
      env: {},
      argv: [],
      cwd: sb.dir,
      jobId,
      pool: 'nopool',
      createdAt: new Date().toISOString(),
    });
    fs.writeFileSync(path.join(planted, 'job.json'), JSON.stringify(spec('../x')));
    sb.file(path.relative(sb.dir, path.join(sb.home, 'jobs', '7', 'job.json')), JSON.stringify(spec('7')));

    const recover = await sb.cli(['recover', '../../x']);
    assert.notEqual(recover.code, 0);
    assert.match(recover.stderr, /job id "\.\.\/\.\.\/x" is invalid/);
    const recover2 = await sb.cli(['recover', '../x']);
    assert.match(recover2.stderr, /job id "\.\.\/x" is invalid/);
    const logs = await sb.cli(['jobs', 'logs', '../x']);
    assert.notEqual(logs.code, 0);
    assert.ok(!logs.stdout.includes('TOP-SECRET'), logs.stdout);
    assert.match(logs.stderr, /job id "\.\.\/x" is invalid/);
    const hashed = await sb.cli(['recover', '7']);
    assert.notEqual(hashed.code, 0);
    assert.match(hashed.stderr, /bundleHash must be 64 lowercase hex digits.*got "\.\.\/x\/evil"|bundle hash "\.\.\/x\/evil" is invalid/);
    assert.ok(!fs.existsSync(marker), 'the planted module was imported');
  });
});

describe('writes stay inside the output', () => {
  const POOL = 'symlink';
  const sb = new Sandbox('symlink');
  before(async () => {
    sb.file('in.jsonl', jsonl(Array.from({ length: 4 }, (_, i) => ({ text: `t${i}` }))));
    await sb.applyPool(POOL, 'pool:\n  workers: 1\n');
  });
  after(() => sb.cleanup());
  const run = (name: string, output: string) => sb.run(sb.file(`${name}.ts`, mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output, pool: POOL, body: SAVE })));

  test('a symbolic link planted inside the output folder cannot carry a writer outside it (SKYBATCH_E_BAD_PATH)', async () => {
    const outside = path.join(sb.dir, 'outside');
    fs.mkdirSync(outside);
    fs.mkdirSync(path.join(sb.dir, 'planted'));
    fs.symlinkSync(outside, path.join(sb.dir, 'planted', '.sky_batch_tmp'));
    const r = await run('planted', path.join(sb.dir, 'planted', 'out.jsonl'));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_BAD_PATH/);
    assert.match(r.stderr, /symbolic link on the way leads to .*outside/);
    assert.deepEqual(listFiles(outside), []);
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  test('an output folder that is itself a symbolic link is written through', async () => {
    fs.mkdirSync(path.join(sb.dir, 'real'));
    fs.symlinkSync(path.join(sb.dir, 'real'), path.join(sb.dir, 'linked'));
    const r = await run('linked', path.join(sb.dir, 'linked', 'out.jsonl'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'real', 'out.jsonl')), [{ out: 't0' }, { out: 't1' }, { out: 't2' }, { out: 't3' }]);
  });
});
