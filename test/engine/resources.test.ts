import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { expandAccelerators, formatCpuList, parseCpuList, parseNvidiaSmiList } from '../../runtime/host-resources.js';
import { parsePoolConfig } from '../../runtime/pool-config.js';
import { gpuMatches, planLocalWorkers } from '../../runtime/worker-placement.js';
import { Sandbox, jsonl, mapperScript, readJsonl } from '../harness.js';

const POOL = 'gpus';
const POOL_YAML = `pool:
  workers: 2
host:
  accelerators: L4:2
resources:
  accelerators: gpu:1
  cpus: 1
  memory: 0.25
`;
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `t${i}` }));

/** What a worker's mapper process sees of its devices, one row per item. */
const REPORT = `await new Promise((r) => setTimeout(r, 30));
    const cpus = /Cpus_allowed_list:\\s*(\\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
    await sky.saveResults(batch.map(() => ({ worker: process.env.SKYBATCH_WORKER, cuda: process.env.CUDA_VISIBLE_DEVICES, cpus })));`;

/** Prints each failed attempt's code, so a test can see why a batch was retried. */
const PRINT_CODES = `, maxAttempts: 2, progress: (e: sky.JobEvent) => { if (e.kind === 'batch' && e.error) console.log('ATTEMPT', e.attempt, e.error.code, e.error.message.split('\\n')[0]); }`;

/** Grows the mapper's resident memory by 8 MB every 10 ms, up to 800 MB, unless stopped first. */
const BALLOON = `const keep: Buffer[] = []; for (let i = 0; i < 100; i++) { keep.push(Buffer.alloc(8 << 20, 1)); await new Promise((r) => setTimeout(r, 10)); }`;

function statusRow(stdout: string, worker: string): string {
  const line = stdout.split('\n').find((l) => l.startsWith(worker + ' '));
  assert.ok(line, `no row for ${worker} in:\n${stdout}`);
  return line;
}

describe('each local worker gets its own share of the host', () => {
  const sb = new Sandbox('resources');
  const myCpus = parseCpuList(/Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]);
  const canPin = ['/usr/bin/taskset', '/bin/taskset'].some((f) => fs.existsSync(f)) && myCpus.length >= 2;
  before(async () => {
    await sb.applyPool(POOL, POOL_YAML);
    sb.file('in12.jsonl', jsonl(rows(12)));
    sb.file('in2.jsonl', jsonl(rows(2)));
  });
  after(() => sb.cleanup());

  test('two workers asking gpu:1 on a host declaring 2 GPUs see distinct CUDA_VISIBLE_DEVICES, whatever the client had', async () => {
    const script = sb.file(
      'devices.ts',
      mapperScript({ input: path.join(sb.dir, 'in12.jsonl'), output: path.join(sb.dir, 'devices.jsonl'), pool: POOL, batchSize: 1, prelude: `import * as fs from 'node:fs';`, body: REPORT }),
    );
    const r = await sb.run(script, { CUDA_VISIBLE_DEVICES: '5,6,7' });
    assert.equal(r.code, 0, r.stderr);
    const out = readJsonl(path.join(sb.dir, 'devices.jsonl')) as { worker: string; cuda: string; cpus: string }[];
    const seen = new Map(out.map((o) => [o.worker, o]));
    assert.deepEqual([...seen.keys()].sort(), ['local-0', 'local-1'], 'both workers took batches');
    assert.equal(seen.get('local-0')!.cuda, '0');
    assert.equal(seen.get('local-1')!.cuda, '1');
    for (const o of out) assert.equal(o.cuda, seen.get(o.worker)!.cuda, 'a worker keeps its device across batches');
    if (canPin) {
      assert.equal(seen.get('local-0')!.cpus, String(myCpus[0]), 'pinned with taskset to its own CPU');
      assert.equal(seen.get('local-1')!.cpus, String(myCpus[1]));
    }

    const s = await sb.cli(['pool', 'status', POOL]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /WORKER\s+HOST\s+STATE\s+JOB\s+DEVICES\s+BATCHES/);
    assert.match(statusRow(s.stdout, 'local-0'), /GPU 0 \(L4\)/);
    assert.match(statusRow(s.stdout, 'local-1'), /GPU 1 \(L4\)/);
    assert.match(statusRow(s.stdout, 'local-1'), /mem 256 MB/);
    if (canPin) assert.match(statusRow(s.stdout, 'local-1'), new RegExp(`CPU ${myCpus[1]}\\b`));
  });

  test('a pool asking for more GPUs than the host has is a pool.yaml error naming the line', async () => {
    const file = sb.file('three.yaml', POOL_YAML.replace('workers: 2', 'workers: 3'));
    const r = await sb.cli(['pool', 'apply', file, '--pool', 'three', '-y']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /SKYBATCH_E_POOL_CONFIG/);
    assert.ok(r.stderr.includes(`${file} line 6: resources.accelerators: 3 worker(s) x gpu:1 do not fit`), r.stderr);
    assert.match(r.stderr, /this host has 2 GPUs \(0: L4, 1: L4\) \(declared in host\.accelerators\)/);
    assert.ok(!fs.existsSync(path.join(sb.home, 'pools', 'three', 'coordinator.json')), 'nothing started');
  });

  test('GPUs are detected with nvidia-smi -L and matched by type; a worker gets the L4, not the T4', async () => {
    const bin = path.join(sb.dir, 'fake-bin');
    sb.file('fake-bin/nvidia-smi', '#!/bin/sh\n[ "$1" = "-L" ] || exit 9\necho "GPU 0: Tesla T4 (UUID: GPU-11111111-2222-3333-4444-555555555555)"\necho "GPU 1: NVIDIA L4 (UUID: GPU-66666666-7777-8888-9999-000000000000)"\n');
    fs.chmodSync(path.join(bin, 'nvidia-smi'), 0o755);
    const env = { PATH: `${bin}${path.delimiter}${process.env.PATH}` };

    const tooMany = sb.file('l4x2.yaml', 'pool:\n  workers: 2\nresources:\n  accelerators: L4:1\n');
    const bad = await sb.cli(['pool', 'apply', tooMany, '--pool', 'l4x2', '-y'], { env });
    assert.equal(bad.code, 1);
    assert.ok(bad.stderr.includes(`${tooMany} line 4: resources.accelerators:`), bad.stderr);
    assert.match(bad.stderr, /0: Tesla T4, 1: NVIDIA L4\) \(detected with nvidia-smi -L\); worker 0 holds 1 of them/);

    // host.cpus: 1 leaves nothing to pin two CPUs to: recorded, not an error
    const ok = await sb.applyPool('detect', 'pool:\n  workers: 1\nhost:\n  cpus: 1\nresources:\n  accelerators: L4:1\n  cpus: 2\n', env);
    assert.match(ok.stderr, /note: workers are not pinned to CPUs: 1 worker\(s\) x 2 CPUs need 2, and this host offers 1/);
    const script = sb.file(
      'detect.ts',
      mapperScript({ input: path.join(sb.dir, 'in2.jsonl'), output: path.join(sb.dir, 'detect.jsonl'), pool: 'detect', prelude: `import * as fs from 'node:fs';`, body: REPORT }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((readJsonl(path.join(sb.dir, 'detect.jsonl')) as { cuda: string }[]).map((o) => o.cuda), ['1', '1']);
    const s = await sb.cli(['pool', 'status', 'detect']);
    assert.match(statusRow(s.stdout, 'local-0'), /GPU 1 \(NVIDIA L4\)/);
    assert.match(s.stdout, /note: local-0: not pinned to CPUs: 1 worker\(s\) x 2 CPUs need 2/);
  });

  test('a mapper over its memory limit is stopped and its batch retried with SKYBATCH_E_MEMORY_LIMIT', async () => {
    const marker = path.join(sb.dir, 'balloon-once');
    const script = sb.file(
      'once.ts',
      mapperScript({
        input: path.join(sb.dir, 'in12.jsonl'),
        output: path.join(sb.dir, 'once.jsonl'),
        pool: POOL,
        batchSize: 3,
        prelude: `import * as fs from 'node:fs';`,
        body: `if (batch[0].text === 't3' && !fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, ''); ${BALLOON} }
    await sky.saveResults(batch.map((x) => ({ output: x.text })));`,
        extra: PRINT_CODES,
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RESULT \d+ SUCCEEDED/);
    // (a batch's attempt numbers name its leases: one given back unstarted at the job's tail, tail-give-back.test.ts, fails as attempt 2)
    assert.match(r.stdout, /ATTEMPT \d+ SKYBATCH_E_MEMORY_LIMIT job \d+: the mapper process on worker local-\d used \d+ MB while holding batch \[3, 5\], over the 256 MB the pool gives it/);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'once.jsonl')), rows(12).map((x) => ({ output: x.text })));
  });

  test('a batch that always goes over the limit fails the job after its attempts, saying why', async () => {
    const script = sb.file(
      'always.ts',
      mapperScript({
        input: path.join(sb.dir, 'in2.jsonl'),
        output: path.join(sb.dir, 'always.jsonl'),
        pool: POOL,
        body: `${BALLOON}\n    await sky.saveResults(batch.map((x) => ({ output: x.text })));`,
        extra: PRINT_CODES,
      }),
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /ATTEMPT 2 SKYBATCH_E_MEMORY_LIMIT/);
    assert.match(r.stderr, /SKYBATCH_E_BATCH_FAILED/);
    assert.match(r.stderr, /batch \[0, 1\] failed 2 times; last error: job \d+: the mapper process on worker local-\d used \d+ MB/);
  });

  test('a mapper whose one-time setup is over the limit fails the job at once', async () => {
    const script = sb.file(
      'setup.ts',
      mapperScript({ input: path.join(sb.dir, 'in2.jsonl'), output: path.join(sb.dir, 'setup.jsonl'), pool: POOL, before: BALLOON, body: `await sky.saveResults(batch);`, extra: PRINT_CODES }),
    );
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_MEMORY_LIMIT/);
    assert.match(r.stderr, /used \d+ MB before taking its first batch, over the 256 MB the pool gives it \(resources\.memory\); raise resources\.memory/);
    assert.doesNotMatch(r.stdout, /ATTEMPT/, 'no batch was charged or retried');
  });
});

describe('placing workers on a host (pure logic)', () => {
  const host = (gpus: string, cpus = 8) => ({ gpus: parseNvidiaSmiList(gpus), gpuSource: 'test', cpuCount: cpus, cpuIds: Array.from({ length: cpus }, (_, i) => i), memoryMb: 16384, taskset: '/usr/bin/taskset' });
  const config = (yaml: string) => parsePoolConfig(yaml);

  test('a GPU type matches whole words of the name: L4 is not L40S; gpu is any', () => {
    assert.ok(gpuMatches('L4', 'NVIDIA L4'));
    assert.ok(!gpuMatches('L4', 'NVIDIA L40S'));
    assert.ok(gpuMatches('a100-80gb', 'NVIDIA A100-SXM4-80GB'));
    assert.ok(!gpuMatches('A100-80GB', 'NVIDIA A100-SXM4-40GB'));
    assert.ok(gpuMatches('RTX4090', 'NVIDIA GeForce RTX 4090'));
    assert.ok(gpuMatches('gpu', 'Tesla T4'));
    assert.deepEqual(parseNvidiaSmiList('GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\n  MIG 1g.5gb     Device  0: (UUID: MIG-2)\nGPU 1: Tesla T4 (UUID: GPU-3)\n'), [
      { index: 0, name: 'NVIDIA A100-SXM4-40GB' },
      { index: 1, name: 'Tesla T4' },
    ]);
    assert.deepEqual(expandAccelerators({ A100: 1, L4: 2 }), [{ index: 0, name: 'A100' }, { index: 1, name: 'L4' }, { index: 2, name: 'L4' }]);
    assert.equal(formatCpuList(parseCpuList('0-3,8,10-11')), '0-3,8,10-11');
  });

  test('shares are disjoint, in slot order, and a map of accelerators takes the first type that is left', () => {
    const h = host('GPU 0: NVIDIA L4 (UUID: a)\nGPU 1: Tesla T4 (UUID: b)\nGPU 2: NVIDIA L4 (UUID: c)\n');
    const plan = planLocalWorkers(config('pool:\n  workers: 3\nresources:\n  accelerators: { L4: 1, T4: 1 }\n  cpus: 2\n  memory: 2+\n'), h);
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(plan.workers.map((w) => w.gpus!.map((g) => g.index)), [[0], [2], [1]]);
    assert.deepEqual(plan.workers.map((w) => w.cpus), ['0-1', '2-3', '4-5']);
    assert.deepEqual(plan.workers.map((w) => w.memoryMb), [5461, 5461, 5461], '2+ GB: an equal share of 16 GB');
    const none = planLocalWorkers(config('pool:\n  workers: 2\n'), h);
    assert.deepEqual(none.workers.map((w) => w.gpus), [[], []], 'a worker that asks for no GPU sees none');
    assert.match(none.notes[0], /this host has 3 GPUs .* the pool asks for none/);
    const fractional = planLocalWorkers(config('pool:\n  workers: 2\nresources:\n  cpus: 0.5\n'), h);
    assert.deepEqual(fractional.workers.map((w) => w.cpus), [undefined, undefined]);
    assert.match(fractional.workers[0].notes![0], /not pinned to CPUs: resources.cpus 0.5 is not a whole number/);
  });
});

