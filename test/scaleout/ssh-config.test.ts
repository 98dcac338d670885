import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { planHostWorkers } from '../../runtime/backends/host-placement.js';
import { listenAddress } from '../../runtime/backends/make-backend.js';
import { buildRuntimePack, UNPACK_SCRIPT } from '../../runtime/backends/runtime-pack.js';
import { assertWorkersCanReach } from '../../runtime/backends/shared-paths.js';
import { EXIT_NO_RUNTIME, launchCommand, shipCommand, sshArgs, UNUSED_DAYS_KEPT } from '../../runtime/backends/ssh-command.js';
import { parsePoolConfig } from '../../runtime/pool-config.js';

const SSH_POOL = `pool:
  workers: 3
  backend: ssh
hosts:
  - name: big
    address: 10.0.0.1
    user: ubuntu
    port: 2222
    cpus: 8
    accelerators: { T4: 1, L4: 2 }
  - address: 10.0.0.2
    cpus: 2
    memory: 4
`;

function problems(yaml: string): string {
  try {
    parsePoolConfig(yaml);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('expected a pool config error');
}

describe('ssh pool files', () => {
  test('an ssh pool lists its hosts with what each has', () => {
    const c = parsePoolConfig(SSH_POOL);
    assert.equal(c.pool.backend, 'ssh');
    assert.deepEqual(c.hosts?.[0], { name: 'big', address: '10.0.0.1', user: 'ubuntu', port: 2222, cpus: 8, accelerators: { T4: 1, L4: 2 } });
  });

  test('a bad host field is reported at its line, as hosts[i].field', () => {
    const msg = problems(SSH_POOL.replace('    port: 2222\n', '    port: 99999\n').replace('    memory: 4\n', '    memory: 4\n    gpus: 2\n'));
    assert.match(msg, /pool\.yaml line 8: hosts\[0\]\.port: .*65535/);
    assert.match(msg, /pool\.yaml line 14: hosts\[1\]\.gpus: unknown field gpus/);
  });

  test('backend and hosts must go together; host: belongs to local pools', () => {
    assert.match(problems('pool:\n  workers: 1\n  backend: ssh\n'), /line 3: pool\.backend: backend ssh needs a hosts: list/);
    assert.match(problems('pool:\n  workers: 1\nhosts:\n  - address: a\n'), /line 3: hosts: only an ssh pool has hosts \(set pool\.backend: ssh\)/);
    assert.match(problems(`${SSH_POOL}host:\n  cpus: 2\n`), /line 14: host: describes this machine, for the local backend; an ssh pool describes each of its machines under hosts:/);
    assert.match(problems(SSH_POOL.replace('  - address: 10.0.0.2', '  - address: 10.0.0.2\n    name: big')), /hosts\[1\]\.name: host big is listed twice/);
    assert.match(problems(SSH_POOL.replace('  backend: ssh', '  backend: ssh\n  shared_fs: data')), /line 4: pool\.shared_fs: expected an absolute path/);
  });
});

describe('placing workers on ssh hosts (pure logic)', () => {
  const config = (resources: string, workers = 3) => parsePoolConfig(SSH_POOL.replace('workers: 3', `workers: ${workers}`) + resources);

  test('workers spread over the hosts, named after their host', () => {
    const plan = planHostWorkers(config('', 4));
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(plan.workers.map((w) => w.name), ['big-0', '10.0.0.2-0', 'big-1', '10.0.0.2-1']);
  });

  test('a worker that needs an L4 lands only where an L4 is declared, with that host CUDA index', () => {
    const plan = planHostWorkers(config('resources:\n  accelerators: L4:1\n', 2));
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(
      plan.workers.map((w) => [w.name, w.resources.gpus]),
      [
        ['big-0', [{ index: 1, name: 'L4' }]],
        ['big-1', [{ index: 2, name: 'L4' }]],
      ],
    );
    const over = planHostWorkers(config('resources:\n  accelerators: L4:1\n', 3));
    assert.equal(over.workers.length, 2);
    assert.deepEqual(over.problems[0].field, ['resources', 'accelerators']);
    assert.match(over.problems[0].message, /worker 2 fits on none \(.*big has 3 GPUs \(0: T4, 1: L4, 2: L4\), 2 taken by earlier workers/);
    assert.match(over.problems[0].message, /10\.0\.0\.2 has no GPU declared/);
  });

  test('CPUs are pinned per host from its declared cpus, and memory is counted where declared', () => {
    const plan = planHostWorkers(config('resources:\n  cpus: 2\n  memory: 2\n', 4));
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(
      plan.workers.map((w) => [w.name, w.resources.cpus, w.resources.memoryMb]),
      [
        ['big-0', '0-1', 2048],
        ['10.0.0.2-0', '0-1', 2048],
        ['big-1', '2-3', 2048],
        ['big-2', '4-5', 2048],
      ],
    );
  });

  test('growing a pool leaves earlier workers where they were', () => {
    const small = planHostWorkers(config('resources:\n  accelerators: gpu:1\n', 2));
    const big = planHostWorkers(config('resources:\n  accelerators: gpu:1\n', 3));
    assert.deepEqual(big.workers.slice(0, 2), small.workers);
  });
});

describe('which paths a remote pool refuses (pure logic)', () => {
  const remote = parsePoolConfig(SSH_POOL);
  const shared = parsePoolConfig(SSH_POOL.replace('  backend: ssh', '  backend: ssh\n  shared_fs: /mnt/shared'));
  const job = (input: string, output: string) => ({ reader: { type: 'json', path: input, options: {} }, writers: [{ type: 'json', path: output, options: {} }], cwd: '/home/me/project' });
  const refusal = (config: typeof remote, input: string, output: string) => {
    try {
      assertWorkersCanReach(job(input, output), config, 'p');
      return undefined;
    } catch (err) {
      return err as Error & { code: string; context: { path: string; field: string } };
    }
  };

  test('object storage is fine anywhere; a local pool takes local paths', () => {
    assert.equal(refusal(remote, 's3://b/in.jsonl', 'gs://b/out.jsonl'), undefined);
    assert.equal(refusal(parsePoolConfig('pool:\n  workers: 1\n'), 'in.jsonl', '/tmp/out.jsonl'), undefined);
  });

  test('a local path, relative or file://, is refused naming the field, the path and the way out', () => {
    const e = refusal(remote, 'data/in.jsonl', 's3://b/out.jsonl')!;
    assert.equal(e.code, 'SKYBATCH_E_PATH_NOT_SHARED');
    assert.deepEqual(e.context, { path: 'data/in.jsonl', field: 'input' });
    assert.match(e.message, /its input data\/in\.jsonl is a path on this machine, and pool 'p' runs its workers on other machines \(ssh: big, 10\.0\.0\.2\).*s3:\/\/ or gs:\/\/.*pool\.shared_fs/);
    assert.equal(refusal(remote, 's3://b/in.jsonl', 'file:///tmp/out.jsonl')?.context.field, 'output');
  });

  test('under pool.shared_fs local paths are fine; a sibling folder with the same prefix is not under it', () => {
    assert.equal(refusal(shared, '/mnt/shared/in.jsonl', 'file:///mnt/shared/out/x.jsonl'), undefined);
    assert.equal(refusal(shared, '../../../mnt/shared/in.jsonl', 's3://b/o.jsonl'), undefined);
    const e = refusal(shared, '/mnt/shared2/in.jsonl', 's3://b/o.jsonl')!;
    assert.match(e.message, /outside pool\.shared_fs.*see only pool\.shared_fs \(\/mnt\/shared\)/);
  });
});

describe('where the coordinator of an ssh pool listens', () => {
  const pool = (extra = '') => parsePoolConfig(`pool:\n  workers: 2\n  backend: ssh\nhosts:\n  - address: 127.0.0.1\n  - address: 127.0.0.2\n${extra}`);

  test('on the address of this machine its hosts reach (here loopback, so plain ws://)', async () => {
    const l = await listenAddress(pool());
    assert.equal(l.bind, '127.0.0.1');
    assert.equal(l.dial({ address: '127.0.0.2' }), '127.0.0.1');
  });

  test('with coordinator.host 0.0.0.0, each host dials the address its route leaves from, and the certificate covers the wildcard too', async () => {
    const l = await listenAddress(pool('coordinator:\n  host: 0.0.0.0\n'));
    assert.equal(l.bind, '0.0.0.0');
    assert.equal(l.dial({ address: '127.0.0.2' }), '127.0.0.1');
    assert.deepEqual([...new Set(l.names)].sort(), ['0.0.0.0', '127.0.0.1']);
  });

  test('an explicit coordinator.host is used as is', async () => {
    const l = await listenAddress(pool('coordinator:\n  host: 127.0.0.5\n'));
    assert.deepEqual([l.bind, l.dial({ address: '127.0.0.2' })], ['127.0.0.5', '127.0.0.5']);
  });
});

describe('ssh commands', () => {
  test("the user's ssh options come before the defaults (ssh keeps the first value), the host last", () => {
    const h = parsePoolConfig(SSH_POOL).hosts![0];
    const args = sshArgs({ ...h, identity_file: '/k/id' }, { options: { ServerAliveInterval: '1' }, known_hosts: '/k/known' }, 'true');
    assert.ok(args.indexOf('ServerAliveInterval=1') < args.indexOf('ServerAliveInterval=5'));
    assert.deepEqual(args.slice(-3), ['--', '10.0.0.1', 'true']);
    assert.ok(args.includes('BatchMode=yes'));
    for (const pair of ['-p 2222', '-l ubuntu', '-i /k/id', '-o UserKnownHostsFile=/k/known']) assert.ok(args.join(' ').includes(pair), pair);
  });

  // `home` plays the host's home folder; the coordinator side (the pack's cache) gets its own SKYBATCH_HOME.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'sky-launch-'));
  const skybatchHome = process.env.SKYBATCH_HOME;
  process.env.SKYBATCH_HOME = path.join(home, 'coordinator-home');
  after(() => {
    if (skybatchHome === undefined) delete process.env.SKYBATCH_HOME;
    else process.env.SKYBATCH_HOME = skybatchHome;
    fs.rmSync(home, { recursive: true, force: true });
  });
  const spec = { host: { address: 'h', dir: '~/sky' }, pool: "it's", name: 'h-0', url: 'wss://10.0.0.9:1234', launch: 'abc', resources: { gpus: [] } };

  test('a launch on a host without the runtime exits 75 (ship it) and never puts the token on the command line', () => {
    const cmd = launchCommand({ ...spec, hash: 'f'.repeat(64) });
    assert.ok(!/token/i.test(cmd));
    const r = spawnSync('sh', ['-c', cmd], { env: { HOME: home, PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(r.status, EXIT_NO_RUNTIME, r.stderr);
    assert.match(r.stderr, /skybatch runtime ffffffffffff is not on this host yet/);
  });

  test('the runtime pack unpacks with nothing but Node, checked against its hash, and the worker starts from it', () => {
    const pack = buildRuntimePack();
    const ship = spawnSync('sh', ['-c', `mkdir -p "$HOME/sky/runtime" && exec node -e '${UNPACK_SCRIPT}' "$HOME/sky/runtime" ${pack.hash}`], { env: { HOME: home, PATH: process.env.PATH }, input: fs.readFileSync(pack.file), encoding: 'utf8' });
    assert.equal(ship.status, 0, ship.stderr);
    const root = path.join(home, 'sky', 'runtime', pack.hash);
    assert.equal(fs.readFileSync(path.join(root, '.complete'), 'utf8'), pack.hash);
    assert.ok(!fs.existsSync(path.join(root, 'node_modules', 'esbuild')), 'client-only packages stay home');
    const damaged = spawnSync('node', ['-e', UNPACK_SCRIPT, path.join(home, 'other'), 'e'.repeat(64)], { input: fs.readFileSync(pack.file), encoding: 'utf8' });
    assert.notEqual(damaged.status, 0);
    assert.match(damaged.stderr, /damaged in transit/);

    // The worker runs from the unpacked folder alone: it reads the secrets line, says it is up, and exits when stdin closes.
    const run = spawnSync('sh', ['-c', launchCommand({ ...spec, hash: pack.hash, url: 'ws://127.0.0.1:9' })], {
      env: { HOME: home, PATH: process.env.PATH },
      input: JSON.stringify({ token: 't' }) + '\n',
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /^SKYBATCH_WORKER_UP \{"name":"h-0"/m);
    assert.match(run.stdout, /stdin closed: the session that started this worker ended; exiting/);
    assert.ok(fs.existsSync(path.join(home, 'sky', 'pools', "it's", 'h-0', 'worker.pid')));
  });

  test('an unpack removes the folders beside it no one used for 14 days, except one a live process names, and unpacks that died a day ago; a launch marks its runtime used', async () => {
    const pack = buildRuntimePack();
    const rt = path.join(home, 'sky', 'runtime');
    const folder = (name: string, daysAgo?: number) => {
      fs.mkdirSync(path.join(rt, name), { recursive: true });
      if (daysAgo === undefined) return; // no .complete: an unpack that never finished
      const complete = path.join(rt, name, '.complete');
      fs.writeFileSync(complete, name);
      const t = new Date(Date.now() - daysAgo * 864e5);
      fs.utimesSync(complete, t, t);
    };
    const [unused, named, recent, unfinished] = ['1', '2', '3', '4'].map((c) => c.repeat(64));
    folder(unused, UNUSED_DAYS_KEPT + 1);
    folder(named, UNUSED_DAYS_KEPT + 1);
    folder(recent, UNUSED_DAYS_KEPT - 1);
    folder(unfinished);
    // unpacks killed midway (HASH.tmp-PID): a day old by a dead process, a fresh one, one of a live process
    const dead = spawnSync('true').pid!;
    const tmpFolder = (name: string, hoursAgo: number) => {
      fs.mkdirSync(path.join(rt, name, 'out'), { recursive: true });
      const t = new Date(Date.now() - hoursAgo * 36e5);
      fs.utimesSync(path.join(rt, name), t, t);
      return name;
    };
    const deadOld = tmpFolder(`${'5'.repeat(64)}.tmp-${dead}`, 25);
    const deadFresh = tmpFolder(`${'6'.repeat(64)}.tmp-${dead}`, 1);
    const liveOld = tmpFolder(`${'7'.repeat(64)}.tmp-${process.pid}`, 25);
    // as a mapper names its packages' folder in its environment
    const sleeper = spawn('sleep', ['60'], { env: { ...process.env, SKYBATCH_PACKAGES: path.join(rt, named) }, stdio: 'ignore' });
    try {
      for (let i = 0; !fs.readFileSync(`/proc/${sleeper.pid}/environ`, 'latin1').includes(named); i++) {
        assert.ok(i < 200, 'the sleeper execs');
        await new Promise((r) => setTimeout(r, 10));
      }
      const r = spawnSync('sh', ['-c', shipCommand({ address: 'h', dir: '~/sky' }, pack.hash)], { env: { HOME: home, PATH: process.env.PATH }, input: fs.readFileSync(pack.file), encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `unpacked ${pack.hash}\nremoved ${deadOld}, an unpack that did not finish\nremoved ${unused}, unused for 14 days or more\n`);
      assert.deepEqual(fs.readdirSync(rt).sort(), [named, recent, unfinished, deadFresh, liveOld, pack.hash].sort());
    } finally {
      sleeper.kill();
    }

    const complete = path.join(rt, pack.hash, '.complete');
    const monthAgo = new Date(Date.now() - 30 * 864e5);
    fs.utimesSync(complete, monthAgo, monthAgo);
    const run = spawnSync('sh', ['-c', launchCommand({ ...spec, hash: pack.hash, url: 'ws://127.0.0.1:9' })], { env: { HOME: home, PATH: process.env.PATH }, input: JSON.stringify({ token: 't' }) + '\n', encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr + run.stdout);
    assert.ok(Date.now() - fs.statSync(complete).mtimeMs < 60_000, 'the launch touched its runtime');
  });
});
