import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PoolSummary } from '../../runtime/protocol.js';
import { ROOT, Sandbox, jsonl, mapperScript, readJsonl, untilFileExists, waitFor } from '../harness.js';

const CLUSTER = path.join(ROOT, 'test', 'scaleout', 'slurm-cluster.sh');

/** Why this machine cannot run the test's Slurm cluster, or undefined when it can. */
function slurmImpossible(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to run slurmctld, slurmd and munged';
  // the packages, when missing; a failure here shows up as the cluster failing to come up, not as a skip
  spawnSync('bash', [CLUSTER, 'install'], { stdio: 'inherit' });
  return undefined;
}
const skip = slurmImpossible();
if (skip) process.stderr.write(`slurm pool tests skipped: ${skip}\n`);

interface Job {
  id: string;
  name: string;
  state: string;
  nodes: string;
}

describe('a pool of Slurm jobs (slurmctld + two slurmd, one with a fake L4)', { skip }, () => {
  const sb = new Sandbox('slurm');
  const shared = path.join(sb.dir, 'shared');
  let clusterDir: string | undefined;
  let env: Record<string, string>;

  /** Every job squeue lists (active ones unless `all`), from the test's own view of the cluster. */
  const squeue = (all = false): Job[] =>
    execFileSync('squeue', ['--noheader', ...(all ? ['--states=all'] : []), '--format=%i|%j|%T|%N'], { env: { ...process.env, ...env }, encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [id, name, state, nodes] = l.trim().split('|');
        return { id, name, state, nodes };
      });
  const jobOf = (pool: string, worker: string) => squeue().find((j) => j.name === `sky-${pool}-${worker}` && j.state === 'RUNNING');
  const ready = (s: PoolSummary) => s.workers.filter((w) => w.state === 'idle' || w.state === 'busy');
  const poolYaml = (workers: number, resources: string) => `pool:
  workers: ${workers}
  backend: slurm
  shared_fs: ${shared}
slurm:
  time: 10
resources:
${resources}`;
  /** Worker processes started from the runtime the coordinator copied to the shared folder. */
  const workerProcs = (): number[] => {
    const out: number[] = [];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (argv.includes(`${shared}/.skybatch/runtime/`) && argv.includes('worker/main.js') && stat[stat.lastIndexOf(')') + 2] !== 'Z') out.push(Number(d));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  };

  before(() => {
    clusterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sky-slurm-'));
    execFileSync('bash', [CLUSTER, 'up', clusterDir], { stdio: ['ignore', 'ignore', 'inherit'] });
    env = { SLURM_CONF: path.join(clusterDir, 'slurm.conf') };
    fs.mkdirSync(shared, { recursive: true });
  });

  after(async () => {
    await sb.cleanup(); // stops the coordinators, which cancel their jobs
    if (clusterDir) {
      execFileSync('bash', [CLUSTER, 'down', clusterDir], { stdio: 'ignore' });
      fs.rmSync(clusterDir, { recursive: true, force: true });
    }
  });

  test("workers that need an L4 run only on the GPU node; one that does not fit waits, with Slurm's reason in pool status", async () => {
    await sb.applyPool('gpus', poolYaml(1, '  accelerators: L4:1\n  cpus: 1\n  memory: 0.5\n'), env);
    const grow = await sb.cli(['pool', 'apply', sb.file('gpus2.pool.yaml', poolYaml(2, '  accelerators: L4:1\n  cpus: 1\n  memory: 0.5\n')), '--pool', 'gpus', '-y', '--no-wait'], { env });
    assert.equal(grow.code, 0, grow.stderr);
    const s = await waitFor('slurm-1 to wait on Resources', async () => {
      const st = await sb.status('gpus');
      const b = st.backend?.workers.find((w) => w.name === 'slurm-1');
      return b?.state === 'pending' && /is PENDING: Resources/.test(b.reason ?? '') ? st : undefined;
    }, 30_000);
    assert.equal(s.backend?.kind, 'slurm');
    assert.deepEqual(ready(s).map((w) => w.name), ['slurm-0']);
    const running = s.backend!.workers.find((w) => w.name === 'slurm-0')!;
    assert.deepEqual([running.state, running.host], ['running', 'gpu0']);
    assert.deepEqual(
      squeue().filter((j) => j.name.startsWith('sky-gpus-')).map((j) => [j.name, j.state, j.nodes]).sort(),
      [
        ['sky-gpus-slurm-0', 'RUNNING', 'gpu0'],
        ['sky-gpus-slurm-1', 'PENDING', ''],
      ],
    );
    const shown = await sb.cli(['pool', 'status', 'gpus'], { env });
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /pending: slurm-1 on slurm: Slurm job \d+ is PENDING: Resources/);
  });

  test("a worker Slurm can never place: pool apply stops waiting and says what sbatch said", async () => {
    const file = sb.file('huge.pool.yaml', poolYaml(1, '  accelerators: L4:2\n'));
    const r = await sb.cli(['pool', 'apply', file, '--pool', 'huge', '-y'], { env });
    try {
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /SKYBATCH_E_HOST_UNREACHABLE/);
      assert.match(r.stderr, /slurm-0 on slurm: sbatch failed: Batch job submission failed: Requested node configuration is not available; submitting again in \d+ s/);
    } finally {
      assert.equal((await sb.cli(['pool', 'down', 'huge', '-y'], { env })).code, 0);
    }
  });

  test('a job on the GPU worker completes exactly, in the Slurm job on gpu0 with the GPU Slurm gave it', async () => {
    fs.writeFileSync(path.join(shared, 'gpu-in.jsonl'), jsonl(['a', 'b', 'c', 'd', 'e'].map((text) => ({ text }))));
    const script = sb.file(
      'gpu.ts',
      mapperScript({
        input: path.join(shared, 'gpu-in.jsonl'),
        output: path.join(shared, 'gpu-out.jsonl'),
        pool: 'gpus',
        batchSize: 2,
        body: 'await sky.saveResults(batch.map((x) => ({ up: String(x.text).toUpperCase(), node: process.env.SLURMD_NODENAME, cuda: process.env.CUDA_VISIBLE_DEVICES, worker: process.env.SKYBATCH_WORKER })));',
      }),
    );
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(shared, 'gpu-out.jsonl')), ['A', 'B', 'C', 'D', 'E'].map((up) => ({ up, node: 'gpu0', cuda: '0', worker: 'slurm-0' })));
  });

  test("a job importing its project's packages runs on nodes that cannot see the project: they are unpacked once onto pool.shared_fs, by hash", async () => {
    // DIR/client is hidden from the nodes (slurm-cluster.sh): the project is only on this machine
    const project = path.join(clusterDir!, 'client', 'project');
    const pkg = path.join(project, 'node_modules', 'tinypkg');
    fs.mkdirSync(pkg, { recursive: true });
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'client-project', private: true, type: 'module' }));
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'tinypkg', version: '1.0.0', main: 'index.js' }));
    // a package that reads a data file next to its code, as many do (models, dictionaries)
    fs.writeFileSync(path.join(pkg, 'index.js'), "const fs = require('fs');\nconst mark = fs.readFileSync(require('path').join(__dirname, 'mark.txt'), 'utf8').trim();\nmodule.exports = (s) => s.toUpperCase() + mark;\n");
    fs.writeFileSync(path.join(pkg, 'mark.txt'), '!\n');
    fs.writeFileSync(path.join(shared, 'pkg-in.jsonl'), jsonl(['a', 'b', 'c'].map((text) => ({ text }))));
    const script = path.join(project, 'job.ts');
    fs.writeFileSync(
      script,
      mapperScript({
        input: path.join(shared, 'pkg-in.jsonl'),
        output: path.join(shared, 'pkg-out.jsonl'),
        pool: 'gpus',
        before: "const { default: shout } = await import('tinypkg');",
        body: `await sky.saveResults(batch.map((x) => ({ v: shout(String(x.text)), sees: fs.existsSync(${JSON.stringify(path.join(project, 'package.json'))}) })));`,
        prelude: "import * as fs from 'node:fs';",
      }),
    );
    const r = await sb.run(script, env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(shared, 'pkg-out.jsonl')), ['A!', 'B!', 'C!'].map((v) => ({ v, sees: false })), 'the node ran it without seeing the project');
    const log = fs.readFileSync(path.join(sb.home, 'pools', 'gpus', 'coordinator.log'), 'utf8');
    const copied = log.match(/copied the job's packages ([0-9a-f]{12}) \(\d+ files\) to (\S+) in/g) ?? [];
    assert.equal(copied.length, 1, log.slice(-3000));
    const dirs = fs.readdirSync(path.join(shared, '.skybatch', 'packages')).filter((d) => /^[0-9a-f]{64}$/.test(d));
    assert.equal(dirs.length, 1);
    assert.equal(fs.readFileSync(path.join(shared, '.skybatch', 'packages', dirs[0], 'node_modules', 'tinypkg', 'mark.txt'), 'utf8'), '!\n');

    // the same packages again: nothing is unpacked a second time
    fs.writeFileSync(script, fs.readFileSync(script, 'utf8').replace('pkg-out.jsonl', 'pkg-out2.jsonl'));
    const again = await sb.run(script, env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(readJsonl(path.join(shared, 'pkg-out2.jsonl')).length, 3);
    assert.equal((fs.readFileSync(path.join(sb.home, 'pools', 'gpus', 'coordinator.log'), 'utf8').match(/copied the job's packages/g) ?? []).length, 1);
  });

  test("scancel of a worker's Slurm job mid-run: its batches run again elsewhere, the output is exact, and the worker gets a new job", async () => {
    await sb.applyPool('cpus', poolYaml(2, '  cpus: 1\n  memory: 0.25\n'), env);
    const gate = path.join(sb.dir, 'cancel-gate');
    fs.writeFileSync(path.join(shared, 'cut-in.jsonl'), jsonl(Array.from({ length: 8 }, (_, i) => ({ text: `item-${i}` }))));
    const script = sb.file(
      'cut.ts',
      mapperScript({
        input: path.join(shared, 'cut-in.jsonl'),
        output: path.join(shared, 'cut-out.jsonl'),
        pool: 'cpus',
        batchSize: 1,
        prelude: "import * as fs from 'node:fs';",
        body: `${untilFileExists(gate)} await sky.saveResults(batch.map((x) => ({ text: x.text, job: process.env.SLURM_JOB_ID })));`,
      }),
    );
    const run = sb.run(script);
    const held = await waitFor('both workers to hold a batch', async () => {
      const ws = ready(await sb.status('cpus'));
      return ws.length === 2 && ws.every((w) => w.batches.length > 0) ? ws : undefined;
    }, 30_000);
    const victim = held.find((w) => w.name === 'slurm-0')!;
    const cancelled = jobOf('cpus', 'slurm-0')!.id;
    execFileSync('scancel', [cancelled], { env: { ...process.env, ...env } });
    await waitFor("the coordinator to drop slurm-0's connection", async () => ((await sb.status('cpus')).workers.some((w) => w.name === 'slurm-0' && (w.state === 'idle' || w.state === 'busy')) ? undefined : true), 20_000);
    fs.writeFileSync(gate, '');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const got = readJsonl(path.join(shared, 'cut-out.jsonl')) as { text: string; job: string }[];
    assert.deepEqual(got.map((g) => g.text), Array.from({ length: 8 }, (_, i) => `item-${i}`));
    for (const [start] of victim.batches) assert.notEqual(got[start].job, cancelled, `item ${start}, held by the cancelled job, was finished by another one`);
    assert.ok(got.every((g) => g.job !== cancelled));

    const again = await waitFor('slurm-0 to run in a new Slurm job', () => {
      const j = jobOf('cpus', 'slurm-0');
      return j && j.id !== cancelled ? j : undefined;
    }, 30_000);
    await waitFor('slurm-0 to rejoin', async () => (ready(await sb.status('cpus')).some((w) => w.name === 'slurm-0') ? true : undefined), 30_000);
    const log = fs.readFileSync(path.join(sb.home, 'pools', 'cpus', 'coordinator.log'), 'utf8');
    assert.match(log, new RegExp(`worker slurm-0: Slurm job ${cancelled} ended \\(CANCELLED`));
    assert.match(log, new RegExp(`worker slurm-0: submitted Slurm job ${again.id}`));
  });

  test('a worker from an earlier Slurm job of a slot is refused; a newer run of the current job replaces the one connected', async () => {
    const c = sb.coordinator('cpus') as { url: string; token: string };
    const current = jobOf('cpus', 'slurm-1')!.id;
    const hand = (launch: string) => {
      const proc = spawn(process.execPath, [path.join(ROOT, 'out/runtime/worker/main.js'), '--coordinator', c.url, '--name', 'slurm-1', '--workdir', path.join(sb.dir, `hand-${launch}`), '--launch', launch], {
        env: { ...process.env, SKYBATCH_TOKEN: c.token },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (out += d));
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => (clearTimeout(timer), resolve(code))));
      return { exited, out: () => out };
    };
    // an earlier job of this slot (Slurm ended or lost it, and the slot got a new one)
    const stale = hand(`${Number(current) + 1000}.0`);
    assert.equal(await stale.exited, 3, stale.out());
    assert.match(stale.out(), new RegExp(`SKYBATCH_E_FENCED: refused worker slurm-1 .*: it runs in Slurm job ${Number(current) + 1000}, and slurm-1's job is ${current}`));

    // Run 1 of the current job is what Slurm would start after a requeue: it is admitted, and
    // run 0, still connected, is fenced; its job then ends and the slot gets a new job, whose
    // worker in turn fences the hand-started one.
    const newer = hand(`${current}.1`);
    await waitFor('the Slurm job of run 0 to end', () => (squeue().some((j) => j.id === current) ? undefined : true), 20_000);
    assert.equal(await newer.exited, 3, newer.out());
    assert.match(newer.out(), new RegExp(`SKYBATCH_E_FENCED: refused worker slurm-1 .*: launch \\d+\\.0 \\(pid \\d+\\) replaced launch ${current}\\.1`));
    const log = fs.readFileSync(path.join(sb.home, 'pools', 'cpus', 'coordinator.log'), 'utf8');
    assert.match(log, new RegExp(`refused worker slurm-1 .*: launch ${current}\\.1 \\(pid \\d+\\) replaced launch ${current}\\.0`));
    await waitFor('slurm-1 to run again in a new job', async () => (ready(await sb.status('cpus')).filter((w) => w.name === 'slurm-1').length === 1 && jobOf('cpus', 'slurm-1') ? true : undefined), 30_000);
  });

  test("a coordinator killed with SIGKILL: the next one adopts its Slurm jobs, whose workers rejoin without a new sbatch", async () => {
    const before = ['slurm-0', 'slurm-1'].map((w) => jobOf('cpus', w)!.id);
    process.kill(sb.coordinator('cpus').pid, 'SIGKILL');
    await sb.applyPool('cpus', poolYaml(2, '  cpus: 1\n  memory: 0.25\n'), env);
    const s = await sb.status('cpus');
    assert.deepEqual(ready(s).map((w) => w.name).sort(), ['slurm-0', 'slurm-1']);
    assert.deepEqual(['slurm-0', 'slurm-1'].map((w) => jobOf('cpus', w)?.id), before, 'the same Slurm jobs run');
    const log = fs.readFileSync(path.join(sb.home, 'pools', 'cpus', 'coordinator.log'), 'utf8');
    const since = log.slice(log.lastIndexOf('listening on'));
    assert.match(since, new RegExp(`worker slurm-0: adopting Slurm job ${before[0]} left by the previous coordinator`));
    assert.doesNotMatch(since, /submitted Slurm job/);
  });

  test('pool down cancels every job, also after its coordinator was killed: nothing is left in squeue, and no worker process', async () => {
    assert.ok(workerProcs().length >= 3, 'workers run before pool down');
    process.kill(sb.coordinator('cpus').pid, 'SIGKILL');
    for (const pool of ['gpus', 'cpus']) {
      const d = await sb.cli(['pool', 'down', pool, '-y'], { env });
      assert.equal(d.code, 0, d.stderr);
    }
    assert.deepEqual(squeue(), []);
    await waitFor('every worker process to exit', () => (workerProcs().length === 0 ? true : undefined), 15_000);
    assert.ok(!fs.existsSync(path.join(shared, '.skybatch', 'pools', 'gpus', 'token')), 'the pool token is removed from the shared folder');
  });
});
