import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { batchScript, parseLaunch, parseSqueueFormat, parseSqueueJson, resourceOptions, slurmOptionProblems } from '../../runtime/backends/slurm-command.js';
import { assertWorkersCanReach } from '../../runtime/backends/shared-paths.js';
import { parsePoolConfig } from '../../runtime/pool-config.js';

const SLURM_POOL = `pool:
  workers: 4
  backend: slurm
  shared_fs: /shared/team
slurm:
  partition: gpu
  account: proj42
  time: 2:00:00
  options:
    - --qos=high
    - --constraint=ampere
resources:
  accelerators: A100:2
  cpus: 8+
  memory: 32
`;

function problems(yaml: string, check = false): string {
  try {
    parsePoolConfig(yaml, 'pool.yaml', check ? slurmOptionProblems : undefined);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('expected a pool config error');
}

describe('Slurm pool files', () => {
  test('resources become --gres, --cpus-per-task and --mem, then partition, account, time and the extra options', () => {
    const c = parsePoolConfig(SLURM_POOL, 'pool.yaml', slurmOptionProblems);
    assert.deepEqual(resourceOptions(c), ['--gres=gpu:A100:2', '--cpus-per-task=8', '--mem=32768M', '--partition=gpu', '--account=proj42', '--time=2:00:00', '--qos=high', '--constraint=ampere']);
    const any = parsePoolConfig(SLURM_POOL.replace('A100:2', 'gpu:1').replace('  memory: 32\n', '  disk_size: 100\n'));
    assert.deepEqual(resourceOptions(any).slice(0, 3), ['--gres=gpu:1', '--cpus-per-task=8', '--tmp=100G']);
  });

  test('a bad slurm field is reported at its line', () => {
    const msg = problems(SLURM_POOL.replace('time: 2:00:00', 'time: two hours').replace('    - --qos=high', '    - -q high'));
    assert.match(msg, /pool\.yaml line 8: slurm\.time: expected a Slurm time limit like 90, 2:00:00 or 1-12:00:00/);
    assert.match(msg, /pool\.yaml line 10: slurm\.options\[0\]: expected an sbatch option like --qos=high/);
    assert.match(problems(SLURM_POOL.replace('  account: proj42', '  acount: proj42')), /line 7: slurm\.acount: unknown field acount/);
  });

  test('options the backend sets itself, or that resources already ask, are refused with the field to use instead', () => {
    const msg = problems(SLURM_POOL.replace('    - --qos=high', '    - --partition=debug\n    - --gres=gpu:1\n    - --array=0-3'), true);
    assert.match(msg, /line 10: slurm\.options\[0\]: --partition=debug: set slurm\.partition/);
    assert.match(msg, /line 11: slurm\.options\[1\]: --gres=gpu:1: comes from resources\.accelerators in this pool file/);
    assert.match(msg, /line 12: slurm\.options\[2\]: --array=0-3: the backend submits one job per worker/);
    // without resources.accelerators, extra gres is the user's to ask
    assert.doesNotThrow(() => parsePoolConfig(SLURM_POOL.replace('    - --qos=high', '    - --gres=nvme:1').replace('  accelerators: A100:2\n', ''), 'pool.yaml', slurmOptionProblems));
  });

  test('a Slurm pool needs pool.shared_fs; slurm: belongs to Slurm pools', () => {
    assert.match(problems(SLURM_POOL.replace('  shared_fs: /shared/team\n', '')), /line 3: pool\.backend: backend slurm needs pool\.shared_fs/);
    assert.match(problems('pool:\n  workers: 1\nslurm:\n  partition: gpu\n'), /line 3: slurm: only a Slurm pool takes slurm settings \(set pool\.backend: slurm\)/);
    assert.match(problems(`${SLURM_POOL}host:\n  cpus: 2\n`), /host: describes this machine, for the local backend; a Slurm pool asks the cluster/);
  });

  test('a job with a local path outside pool.shared_fs is refused, one under it is not', () => {
    const c = parsePoolConfig(SLURM_POOL);
    const req = (output: string) => ({ reader: { type: 'json', path: '/shared/team/in.jsonl' }, writers: [{ type: 'json', path: output }], cwd: '/home/me' }) as never;
    assert.doesNotThrow(() => assertWorkersCanReach(req('/shared/team/out.jsonl'), c, 'p'));
    assert.throws(() => assertWorkersCanReach(req('/home/me/out.jsonl'), c, 'p'), /SKYBATCH_E_PATH_NOT_SHARED|runs its workers on other machines \(Slurm jobs in partition gpu\)/);
  });
});

describe('the batch script and squeue (pure logic)', () => {
  test('the worker reads its token from the shared folder and says which job and run it is', () => {
    const s = batchScript({ pool: 'p', name: 'slurm-0', runtime: '/shared/rt', packages: '/shared/.skybatch/packages', secrets: "/shared/it's", url: 'wss://10.0.0.1:4000' });
    assert.match(s, /^#!\/bin\/sh\n/);
    assert.ok(s.includes(`S='/shared/it'\\''s'`), s);
    assert.ok(s.includes('SKYBATCH_TOKEN=$(cat "$S/token")'));
    assert.ok(s.includes(`--coordinator 'wss://10.0.0.1:4000' --name 'slurm-0' --workdir "$W" --packages-dir '/shared/.skybatch/packages' --launch "$SLURM_JOB_ID.\${SLURM_RESTART_COUNT:-0}"`), s);
    assert.ok(!/token [^(]/.test(s.split('\n').at(-2)!), 'no token on the command line');
    assert.deepEqual(parseLaunch('123.2'), { jobId: '123', run: 2 });
    assert.equal(parseLaunch('abc'), undefined);
  });

  test("squeue --json of Slurm 22.05 and of 23.02+ read the same; the fixed format too", () => {
    const v22 = { jobs: [{ job_id: 7, job_state: 'PENDING', state_reason: 'Resources', nodes: '', restart_cnt: 0, exit_code: 0 }, { job_id: 8, job_state: 'FAILED', state_reason: 'NonZeroExitCode', nodes: 'n1', restart_cnt: 1, exit_code: 768 }, { job_id: 9, job_state: 'CANCELLED', state_reason: 'None', exit_code: 15 }] };
    const v23 = {
      jobs: [
        { job_id: 7, job_state: ['PENDING'], state_reason: 'Resources', nodes: '', restart_cnt: 0, exit_code: { status: ['SUCCESS'], return_code: { set: true, infinite: false, number: 0 } } },
        { job_id: 8, job_state: ['FAILED'], state_reason: 'NonZeroExitCode', nodes: 'n1', restart_cnt: 1, exit_code: { status: ['ERROR'], return_code: { set: true, number: 3 }, signal: { id: { set: false, number: 0 } } } },
        { job_id: 9, job_state: ['CANCELLED'], state_reason: 'None', exit_code: { status: ['SIGNALED'], return_code: { set: false, number: 0 }, signal: { id: { set: true, number: 15 } } } },
      ],
    };
    const want = [
      { id: '7', state: 'PENDING', reason: 'Resources', restarts: 0, exitCode: 0 },
      { id: '8', state: 'FAILED', reason: 'NonZeroExitCode', nodes: 'n1', restarts: 1, exitCode: 3 },
      { id: '9', state: 'CANCELLED', restarts: 0, signal: 15 },
    ];
    assert.deepEqual(parseSqueueJson(JSON.stringify(v22)), want);
    assert.deepEqual(parseSqueueJson(JSON.stringify(v23)), want);
    assert.deepEqual(parseSqueueFormat('7|PENDING|Resources|\n8|RUNNING|None|n1\n'), [
      { id: '7', state: 'PENDING', reason: 'Resources', restarts: 0 },
      { id: '8', state: 'RUNNING', nodes: 'n1', restarts: 0 },
    ]);
  });
});
