import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { PNG } from 'pngjs';
import { S3Storage } from '../../formats/storage/s3.js';
import type { BackendWorkerSummary, PoolSummary } from '../../runtime/protocol.js';
import { ROOT, Sandbox, jsonl, mapperScript, readJsonl, waitFor } from '../harness.js';
import { s3TestServer, uniqueName } from '../storage/conformance.js';
import { type Net, netnsImpossible, readNet, NETNS } from './netns.js';
import { forwardTcp } from './tcp-forward.js';

const skip = netnsImpossible();
if (skip) process.stderr.write(`ssh pool tests skipped: ${skip}\n`);

/** Processes in a host's namespace that belong to skybatch (its runtime folder is .skybatch-host). */
function skybatchProcs(ns: string): { pid: number; argv: string[] }[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  const out: { pid: number; argv: string[] }[] = [];
  for (const p of r.stdout.split('\n').filter(Boolean)) {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      if (argv.some((a) => a.includes('/.skybatch-host/')) && stat[stat.lastIndexOf(')') + 2] !== 'Z') out.push({ pid: Number(p), argv });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** ssh clients on this machine that talk to the test's hosts (their identity file is in the test's folder). */
function sshClients(net: Net): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (path.basename(argv[0]) === 'ssh' && argv.some((a) => a.startsWith(net.dir))) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

describe('a pool on two ssh hosts (network namespaces with their own sshd)', { skip }, () => {
  const sb = new Sandbox('ssh');
  let net: Net;
  let netDir: string | undefined;
  let s3: Awaited<ReturnType<typeof forwardTcp>>;
  let bucket: string;
  let s3env: Record<string, string>;
  const shared = path.join(sb.dir, 'shared');
  /** A project with its own packages, only on this machine: its parent folder is hidden from the hosts. */
  const project = path.join(path.dirname(sb.home), 'client', 'project');

  const poolYaml = (o: { workers: number | string; sharedFs?: string; hosts: Record<string, string>; resources?: string }) => `pool:
  workers: ${o.workers}
  backend: ssh
${o.sharedFs ? `  shared_fs: ${o.sharedFs}\n` : ''}hosts:
${Object.entries(o.hosts)
  .map(([h, extra]) => `  - name: ${h}\n    address: ${net.ip[h]}\n    user: root\n    identity_file: ${net.dir}/id_ed25519\n${extra}`)
  .join('')}ssh:
  known_hosts: ${net.dir}/known_hosts
  options:
    ServerAliveInterval: 1
    ServerAliveCountMax: 3
    ConnectTimeout: 3
${o.resources ?? ''}setup: echo "Setup complete!"
`;
  const s3Storage = () => {
    const rgw = s3TestServer();
    return new S3Storage({ endpoint: rgw.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
  };
  const readS3 = (uri: string) => s3Storage().get(uri);
  const storagePut = (uri: string, data: string) => s3Storage().put(uri, data);
  const ready = (s: PoolSummary) => s.workers.filter((w) => w.state === 'idle' || w.state === 'busy');
  /** ssh's arguments to run `script` on host `h` as root, with the test's key. */
  const sshTo = (h: string, script: string) => ['-i', `${net.dir}/id_ed25519`, '-o', `UserKnownHostsFile=${net.dir}/known_hosts`, '-o', 'BatchMode=yes', `root@${net.ip[h]}`, script];
  const onHost = (h: string, script: string) => execFileSync('ssh', sshTo(h, script), { encoding: 'utf8' });
  /** Folders left on the hosts by earlier skybatch builds and projects (see the first test). */
  const OLD = { runtime: 'a'.repeat(64), runtimeNamed: 'b'.repeat(64), runtimeRecent: 'd'.repeat(64), packages: 'e'.repeat(64), packagesNamed: 'f'.repeat(64) };
  const HOST_DIR = '/root/.skybatch-host';
  const sleepers: Record<string, string> = {};

  before(async () => {
    fs.mkdirSync(path.join(project, 'node_modules', 'tinypkg'), { recursive: true });
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'client-project', private: true, type: 'module' }));
    fs.writeFileSync(path.join(project, 'node_modules', 'tinypkg', 'package.json'), JSON.stringify({ name: 'tinypkg', version: '1.0.0', main: 'index.js' }));
    // a package that reads a data file next to its code, as many do (models, dictionaries)
    fs.writeFileSync(path.join(project, 'node_modules', 'tinypkg', 'index.js'), "const fs = require('fs');\nconst mark = fs.readFileSync(require('path').join(__dirname, 'mark.txt'), 'utf8').trim();\nmodule.exports = (s) => s.toUpperCase() + mark;\n");
    fs.writeFileSync(path.join(project, 'node_modules', 'tinypkg', 'mark.txt'), '!\n');
    // and a model's weights: 64 MB that do not compress, seconds of packing
    fs.writeFileSync(path.join(project, 'node_modules', 'tinypkg', 'weights.bin'), randomBytes(64 * 2 ** 20));
    netDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sky-netns-'));
    // The hosts see neither the repo, nor the coordinator's state, nor the client's project: only what the backend ships.
    execFileSync('bash', [NETNS, 'up', netDir], { env: { ...process.env, SKY_NETNS_HIDE: `${ROOT} ${sb.home} ${path.dirname(project)}` }, stdio: ['ignore', 'ignore', 'inherit'] });
    net = readNet(netDir);
    const rgw = s3TestServer();
    const u = new URL(rgw.endpoint);
    s3 = await forwardTcp(net.hostIp, { host: u.hostname, port: Number(u.port) });
    s3env = { AWS_ENDPOINT_URL_S3: s3.url, AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey, AWS_REGION: 'us-east-1' };
    bucket = uniqueName('skybatch-ssh');
    const storage = new S3Storage({ endpoint: rgw.endpoint, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey }, region: 'us-east-1', forcePathStyle: true });
    await storage.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await storage.put(`s3://${bucket}/quick/data.jsonl`, fs.readFileSync(path.join(ROOT, 'samples/quickstart/data.jsonl')));
    await storage.put(`s3://${bucket}/cut/in.jsonl`, jsonl(Array.from({ length: 24 }, (_, i) => ({ text: `item-${i}` }))));
    await storage.put(`s3://${bucket}/img-in/prompts.jsonl`, fs.readFileSync(path.join(ROOT, 'samples/images/prompts.jsonl')));
    await storage.put(`s3://${bucket}/gpu/in.jsonl`, jsonl([{ text: 'a' }, { text: 'b' }, { text: 'c' }, { text: 'd' }]));
    fs.mkdirSync(shared, { recursive: true });
    // On each host: runtimes and packages of earlier builds and projects, unused for 30 days;
    // one runtime and one packages folder of them named by a live process (as a worker's
    // command line and a mapper's SKYBATCH_PACKAGES name theirs; the hash alone in its
    // command line, so the tests' own count of skybatch processes there leaves it out);
    // a runtime used just now.
    for (const h of Object.keys(net.ip)) {
      sleepers[h] = onHost(
        h,
        `set -e; D=${HOST_DIR}
old() { mkdir -p "$D/$1" && echo x > "$D/$1/.complete" && touch -d '30 days ago' "$D/$1/.complete"; }
old runtime/${OLD.runtime}; old runtime/${OLD.runtimeNamed}; old packages/${OLD.packages}; old packages/${OLD.packagesNamed}
mkdir -p "$D/runtime/${OLD.runtimeRecent}" && echo x > "$D/runtime/${OLD.runtimeRecent}/.complete"
nohup env SKYBATCH_PACKAGES="$D/packages/${OLD.packagesNamed}" sh -c 'while sleep 1; do :; done' "runtime-${OLD.runtimeNamed}" < /dev/null > /dev/null 2>&1 &
echo $!`,
      ).trim();
    }
  });

  after(async () => {
    if (net) for (const v of Object.values(net.veth)) spawnSync('ip', ['link', 'set', v, 'up']);
    for (const [h, pid] of Object.entries(sleepers)) spawnSync('ssh', sshTo(h, `kill ${pid}`)); // not onHost: a failure here must not throw
    await sb.cleanup(); // stops the coordinators, and so their ssh sessions, first
    await s3?.close();
    if (netDir) {
      execFileSync('bash', [NETNS, 'down', netDir], { stdio: 'ignore' });
      fs.rmSync(netDir, { recursive: true, force: true });
    }
  });

  test('2 hosts x 2 workers run the quickstart on S3 exactly, each worker from the runtime shipped to its host', async () => {
    const applied = sb.applyPool('wide', poolYaml({ workers: 4, sharedFs: shared, hosts: { h1: '    cpus: 2\n', h2: '    cpus: 2\n' }, resources: 'resources:\n  cpus: 1\n' }));
    // The runtime is packed beside the coordinator's event loop (a second or more the first
    // time): the pool answers meanwhile, and says so (packed on the loop, an autoscaled pool
    // mid-job answered nothing, heartbeats included, until it was done).
    const packing = await waitFor(
      'a status answered while the runtime is packed',
      async () => {
        const seen = await sb.status('wide').catch(() => undefined); // no coordinator.json yet
        return seen?.backend?.workers.find((w) => w.reason === 'packing the skybatch runtime for the hosts');
      },
      60_000,
    );
    assert.equal(packing.state, 'starting');
    await applied;
    assert.match(fs.readFileSync(path.join(sb.home, 'pools', 'wide', 'coordinator.log'), 'utf8'), /packed the skybatch runtime [0-9a-f]{12} \(\d+ files, [\d.]+ MB\) in \d+ ms/);
    const s = await sb.status('wide');
    assert.deepEqual(ready(s).map((w) => `${w.name}@${w.host}`).sort(), ['h1-0@h1', 'h1-1@h1', 'h2-0@h2', 'h2-1@h2']);
    assert.deepEqual(s.backend?.workers.map((w) => w.state), ['running', 'running', 'running', 'running']);
    assert.match(s.url, new RegExp(`^wss://${net.hostIp.replace(/\./g, '\\.')}:\\d+$`), 'off loopback the coordinator serves wss://');

    const out = `s3://${bucket}/quick/output.jsonl`;
    const r = await sb.run(path.join(ROOT, 'samples/quickstart/double_text.ts'), { ...s3env, POOL: 'wide', INPUT: `s3://${bucket}/quick/data.jsonl`, OUTPUT: out });
    assert.equal(r.code, 0, r.stderr);
    const text = (await readS3(out)).toString();
    assert.deepEqual(text.trim().split('\n').map((l) => JSON.parse(l)), [{ output: 'hellohello' }, { output: 'worldworld' }, { output: 'skysky' }, { output: 'batchbatch' }]);

    // Unpacking a runtime (and the job's packages, where a worker asked for them) removed the
    // folders beside it that no one used for 14 days and no live process names; the others stay.
    const log = fs.readFileSync(path.join(sb.home, 'pools', 'wide', 'coordinator.log'), 'utf8');
    for (const h of ['h1', 'h2']) {
      const list = (d: string) => onHost(h, `ls ${HOST_DIR}/${d}`).split('\n').filter((n) => /^[0-9a-f]{64}$/.test(n));
      const runtimes = list('runtime');
      assert.ok(!runtimes.includes(OLD.runtime), `${h}: the unused runtime is gone: ${runtimes.join(' ')}`);
      for (const kept of [OLD.runtimeNamed, OLD.runtimeRecent]) assert.ok(runtimes.includes(kept), `${h}: ${kept.slice(0, 4)}... stays: ${runtimes.join(' ')}`);
      assert.match(log, new RegExp(`${h}: removed the runtime folder ${OLD.runtime}, unused for 14 days or more`));
      const packages = list('packages');
      assert.ok(packages.includes(OLD.packagesNamed), `${h}: the packages a live process names stay`);
      // where a job's packages were unpacked, the unused ones went; elsewhere nothing was unpacked to trigger it
      const unpackedHere = packages.some((n) => !Object.values(OLD).includes(n));
      assert.equal(packages.includes(OLD.packages), !unpackedHere, `${h}: ${packages.join(' ')}`);
    }

    // Each host runs its workers from ~/.skybatch-host/runtime/HASH, in their own folders; the repo is not even visible there.
    for (const h of ['h1', 'h2']) {
      const procs = skybatchProcs(net.ns[h]).filter((p) => p.argv.some((a) => a.endsWith('/out/runtime/worker/main.js')));
      assert.equal(procs.length, 2, `two workers on ${h}: ${JSON.stringify(procs)}`);
      for (const p of procs) {
        const main = p.argv.find((a) => a.endsWith('/out/runtime/worker/main.js'))!;
        assert.match(main, /^\/root\/\.skybatch-host\/runtime\/[0-9a-f]{64}\/out\/runtime\/worker\/main\.js$/);
        assert.match(fs.readlinkSync(`/proc/${p.pid}/cwd`), new RegExp(`^/root/\\.skybatch-host/pools/wide/${h}-[01]$`));
        assert.deepEqual(fs.readdirSync(`/proc/${p.pid}/root${ROOT}`), [], `the repo is hidden from ${h}`);
      }
    }
  });

  test('the image sample writes one real PNG per caption and its manifest to S3 from the remote workers', async () => {
    const out = `s3://${bucket}/img`;
    const r = await sb.run(path.join(ROOT, 'samples/images/generate_images.ts'), { ...s3env, POOL: 'wide', INPUT: `s3://${bucket}/img-in/prompts.jsonl`, OUTPUT_DIR: out, IMAGE_SIZE: '32' });
    assert.equal(r.code, 0, r.stderr);
    const prompts = readJsonl(path.join(ROOT, 'samples/images/prompts.jsonl')) as { prompt: string }[];
    const storage = s3Storage();
    const keys: string[] = [];
    for await (const o of storage.list(`${out}/`)) keys.push(o.path.slice(out.length + 1));
    const pngs = prompts.map((_, i) => `images/${String(i).padStart(8, '0')}.png`);
    assert.deepEqual(keys.sort(), ['images/_manifest.jsonl', ...pngs, 'manifest.jsonl'].sort());
    const png = PNG.sync.read(await storage.get(`${out}/${pngs[5]}`));
    assert.deepEqual([png.width, png.height], [32, 32]);
    const meta = (await storage.get(`${out}/manifest.jsonl`)).toString().trim().split('\n').map((l) => JSON.parse(l) as { prompt: string });
    assert.deepEqual(meta.map((m) => m.prompt), prompts.map((p) => p.prompt));
  });

  test('under pool.shared_fs a local path works; outside it the job is refused at submission', async () => {
    fs.writeFileSync(path.join(shared, 'in.jsonl'), jsonl([{ text: 'x' }, { text: 'y' }, { text: 'z' }]));
    const body = 'await sky.saveResults(batch.map((x) => ({ out: x.text + "!" })));';
    const ok = sb.file('shared.ts', mapperScript({ input: path.join(shared, 'in.jsonl'), output: path.join(shared, 'out.jsonl'), pool: 'wide', body }));
    const r = await sb.run(ok);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(shared, 'out.jsonl')), [{ out: 'x!' }, { out: 'y!' }, { out: 'z!' }]);

    const outside = path.join(path.dirname(sb.home), 'elsewhere', 'out.jsonl');
    const bad = sb.file('outside.ts', mapperScript({ input: path.join(shared, 'in.jsonl'), output: outside, pool: 'wide', body }));
    const refused = await sb.run(bad);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /SKYBATCH_E_PATH_NOT_SHARED/);
    assert.ok(refused.stderr.includes(`its output ${outside} is a path on this machine outside pool.shared_fs`), refused.stderr);
    assert.ok(!fs.existsSync(outside));
  });

  test('a host cut off mid-job: its batches finish on the other host, the output is exact, and the host rejoins when its link is back', async () => {
    // h1's mappers are slow, so the batches it holds when cut are still running there.
    const script = sb.file(
      'cut.ts',
      mapperScript({
        input: `s3://${bucket}/cut/in.jsonl`,
        output: `s3://${bucket}/cut/out.jsonl`,
        pool: 'wide',
        batchSize: 1,
        prelude: "import * as os from 'node:os';",
        body: 'await new Promise((r) => setTimeout(r, os.hostname() === "h1" ? 8000 : 250)); await sky.saveResults(batch.map((x) => ({ text: x.text, worker: process.env.SKYBATCH_WORKER })));',
      }),
    );
    const run = sb.run(script, s3env);
    const held = await waitFor(
      'both h1 workers to hold batches',
      async () => {
        const h1 = (await sb.status('wide')).workers.filter((w) => w.host === 'h1');
        return h1.length === 2 && h1.every((w) => w.batches.length > 0) ? h1.flatMap((w) => w.batches) : undefined;
      },
      30_000,
    );
    execFileSync('ip', ['link', 'set', net.veth.h1, 'down']);
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const got = (await readS3(`s3://${bucket}/cut/out.jsonl`))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { text: string; worker: string });
    assert.deepEqual(got.map((g) => g.text), Array.from({ length: 24 }, (_, i) => `item-${i}`));
    assert.ok(held.length >= 2);
    for (const [start] of held) assert.match(got[start].worker, /^h2-/, `item ${start}, held by h1 when it was cut, finished on h2`);

    // While cut off, the backend says why h1's workers are not running, and keeps retrying.
    const seen = new Map<string, BackendWorkerSummary>();
    await waitFor('the backend to report each h1 worker unreachable', async () => {
      for (const w of (await sb.status('wide')).backend!.workers) {
        if (w.host === 'h1' && w.state === 'pending' && /ssh to h1 failed or was cut/.test(w.reason ?? '')) seen.set(w.name, w);
      }
      return seen.size === 2 ? true : undefined;
    }, 30_000);
    assert.ok([...seen.values()].every((w) => w.failures >= 1 && /retrying in \d+ s/.test(w.reason!)), JSON.stringify([...seen.values()]));

    execFileSync('ip', ['link', 'set', net.veth.h1, 'up']);
    await waitFor('h1 to rejoin with both workers', async () => (ready(await sb.status('wide')).filter((w) => w.host === 'h1').length === 2 ? true : undefined), 60_000);
    // The launches from before the cut ended (sshd saw their session die, or the coordinator fenced them): two workers on h1, not four.
    await waitFor('only the two new workers to run on h1', () => (skybatchProcs(net.ns.h1).filter((p) => p.argv.some((a) => a.endsWith('/worker/main.js'))).length === 2 ? true : undefined), 30_000);
  });

  test('a worker that says it is an earlier start of a slot is refused, exits, and leaves the slot to the running one', async () => {
    const c = sb.coordinator('wide') as { url: string; token: string; ca: string; pid: number };
    const before = ready(await sb.status('wide')).map((w) => w.workerId).sort();
    // its session is still open (stdin stays open): it leaves because it is refused, not because its lifeline ended
    const proc = spawn(process.execPath, [path.join(ROOT, 'out/runtime/worker/main.js'), '--coordinator', c.url, '--name', 'h1-0', '--workdir', path.join(sb.dir, 'stale-h1-0'), '--launch', 'an-earlier-start', '--lifeline', 'stdin'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    proc.stdin.write(JSON.stringify({ token: c.token, ca: fs.readFileSync(c.ca, 'utf8') }) + '\n');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    clearTimeout(timer);
    assert.equal(code, 3, out);
    assert.match(out, /the coordinator refused this worker: SKYBATCH_E_FENCED: refused worker h1-0 .*: a newer start of h1-0 runs/);
    assert.match(fs.readFileSync(path.join(sb.home, 'pools', 'wide', 'coordinator.log'), 'utf8'), /refused worker h1-0 \([^)]*\): a newer start of h1-0 runs/);
    assert.deepEqual(ready(await sb.status('wide')).map((w) => w.workerId).sort(), before);
  });

  test('pool down leaves no skybatch process on any host and no ssh session here', async () => {
    const d = await sb.cli(['pool', 'down', 'wide', '-y']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('every skybatch process on the hosts to exit', () => (Object.values(net.ns).every((ns) => skybatchProcs(ns).length === 0) ? true : undefined), 15_000);
    assert.deepEqual(sshClients(net), []);
  });

  test('workers land only on hosts with the GPU type they ask for, each with its own CUDA_VISIBLE_DEVICES; without shared_fs a local path is refused', async () => {
    // h2 lists a T4 first, so its L4 is CUDA device 1 there.
    await sb.applyPool('gpus', poolYaml({ workers: 2, hosts: { h1: '    accelerators: L4:1\n', h2: '    accelerators: { T4: 1, L4: 1 }\n' }, resources: 'resources:\n  accelerators: L4:1\n' }));
    const s = await sb.status('gpus');
    assert.deepEqual(
      ready(s).map((w) => [w.name, w.resources?.gpus]).sort(),
      [
        ['h1-0', [{ index: 0, name: 'L4' }]],
        ['h2-0', [{ index: 1, name: 'L4' }]],
      ],
    );
    const body = 'await new Promise((r) => setTimeout(r, 300)); await sky.saveResults(batch.map(() => ({ worker: process.env.SKYBATCH_WORKER, cuda: process.env.CUDA_VISIBLE_DEVICES })));';
    const script = sb.file('gpu.ts', mapperScript({ input: `s3://${bucket}/gpu/in.jsonl`, output: `s3://${bucket}/gpu/out.jsonl`, pool: 'gpus', batchSize: 1, body }));
    const r = await sb.run(script, { ...s3env, CUDA_VISIBLE_DEVICES: '7' });
    assert.equal(r.code, 0, r.stderr);
    const got = (await readS3(`s3://${bucket}/gpu/out.jsonl`))
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { worker: string; cuda: string });
    assert.equal(got.length, 4);
    for (const g of got) assert.equal(g.cuda, g.worker === 'h1-0' ? '0' : '1', JSON.stringify(g));

    const local = sb.file('local.ts', mapperScript({ input: path.join(shared, 'in.jsonl'), output: `s3://${bucket}/gpu/never.jsonl`, pool: 'gpus', body: 'await sky.saveResults(batch);' }));
    const refused = await sb.run(local, s3env);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /SKYBATCH_E_PATH_NOT_SHARED/);
    assert.ok(refused.stderr.includes(`its input ${path.join(shared, 'in.jsonl')} is a path on this machine, and pool 'gpus' runs its workers on other machines (ssh: h1, h2)`), refused.stderr);
    assert.match(refused.stderr, /pool\.shared_fs/);
  });

  test("a job importing its project's packages runs on hosts that have none: they are copied there once, by hash", async () => {
    const script = path.join(project, 'job.ts');
    fs.writeFileSync(
      script,
      mapperScript({
        input: `s3://${bucket}/gpu/in.jsonl`,
        output: `s3://${bucket}/gpu/pkg.jsonl`,
        pool: 'gpus',
        before: "const { default: shout } = await import('tinypkg');",
        body: 'await sky.saveResults(batch.map((x) => ({ v: shout(String(x.text)) })));',
      }),
    );
    const logFile = path.join(sb.home, 'pools', 'gpus', 'coordinator.log');
    const logged = (what: string) => fs.readFileSync(logFile, 'utf8').split('\n').find((l) => l.includes(what));
    const run = sb.run(script, s3env);
    // Packing runs beside the coordinator's event loop: the pool answers while it packs (it
    // answered nothing for seconds, and its workers' heartbeats went unanswered).
    await waitFor('the packing to start', () => logged(`packing the packages of ${project} `), 60_000);
    await sb.status('gpus');
    const answeredAt = Date.now();
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const packed = logged(`packed the packages of ${project} `)!;
    assert.ok(answeredAt < Date.parse(packed.split(' ')[0]), `the status request was answered before the packing ended (${new Date(answeredAt).toISOString()}; ${packed})`);
    const rows = (await readS3(`s3://${bucket}/gpu/pkg.jsonl`)).toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(rows, [{ v: 'A!' }, { v: 'B!' }, { v: 'C!' }, { v: 'D!' }]);
    const log = fs.readFileSync(logFile, 'utf8');
    const copies = log.match(/copied the job's packages to h[12]/g) ?? [];
    assert.ok(copies.length >= 1 && copies.length === new Set(copies).size, `copied at most once per host: ${copies.join(', ')}`);
    // the hosts hold them under their own folder, by content hash; the project stays hidden from them
    const hosts = Object.keys(net.ns).filter((h) => log.includes(`copied the job's packages to ${h}`));
    for (const h of hosts) {
      const worker = skybatchProcs(net.ns[h]).find((p) => p.argv.some((a) => a.endsWith('/worker/main.js')))!;
      // (the samples' jobs before shipped the packages of their own project, this repo, in folders of their own)
      const root = `/proc/${worker.pid}/root/root/.skybatch-host/packages`;
      const dir = fs.readdirSync(root).filter((d) => /^[0-9a-f]{64}$/.test(d) && fs.existsSync(path.join(root, d, 'node_modules', 'tinypkg')));
      assert.equal(dir.length, 1, `one folder with the project's packages on ${h}`);
      assert.equal(fs.readFileSync(path.join(root, dir[0], 'node_modules', 'tinypkg', 'mark.txt'), 'utf8'), '!\n');
      assert.deepEqual(fs.readdirSync(`/proc/${worker.pid}/root${path.dirname(project)}`), [], `the project is hidden from ${h}`);
      // unpacked beside them: the packages no one used for 14 days went, those a live process names stayed
      assert.ok(!fs.existsSync(path.join(root, OLD.packages)) && fs.existsSync(path.join(root, OLD.packagesNamed)), `${h}: ${fs.readdirSync(root).join(' ')}`);
    }

    // a package the project does not have is still reported clearly, naming what was copied
    fs.writeFileSync(script, fs.readFileSync(script, 'utf8').replace("import('tinypkg')", "import('notinstalled')").replace('pkg.jsonl', 'pkg2.jsonl'));
    const missing = await sb.run(script, s3env);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /SKYBATCH_E_PACKAGE_MISSING/);
    assert.match(missing.stderr, /package 'notinstalled', imported by the job's script .*job\.ts, cannot be found on worker h[12]-\d: not installed because the script's folder .* does not exist on this machine/);
    assert.match(missing.stderr, /skybatch copies there the packages installed in the script's project, and 'notinstalled' is not one of them/);
  });

  test('an autoscaled ssh pool grows from zero with a job’s backlog up to max and shrinks back to zero after the idle delay', async () => {
    await sb.applyPool('auto', poolYaml({ workers: '{ min: 0, max: 2 }\n  idle_delay: 2s', hosts: { h1: '', h2: '' } }));
    assert.equal((await sb.status('auto')).backend?.workers.length, 0, 'no worker before a job');
    await storagePut(`s3://${bucket}/auto/in.jsonl`, jsonl(Array.from({ length: 8 }, (_, i) => ({ text: `a${i}` }))));
    const script = sb.file('auto.ts', mapperScript({ input: `s3://${bucket}/auto/in.jsonl`, output: `s3://${bucket}/auto/out.jsonl`, pool: 'auto', batchSize: 1, body: 'await new Promise((r) => setTimeout(r, 500)); await sky.saveResults(batch.map((x) => ({ text: x.text, worker: process.env.SKYBATCH_WORKER })));' }));
    const run = sb.run(script, s3env);
    let most = 0;
    const grown = await waitFor('two workers up on the hosts for the backlog', async () => {
      const s = await sb.status('auto');
      most = Math.max(most, s.backend!.workers.length);
      return ready(s).length === 2 ? s : undefined;
    }, 60_000);
    assert.match(grown.autoscale!.reason, /max 2/);
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const rows = (await readS3(`s3://${bucket}/auto/out.jsonl`)).toString().trim().split('\n').map((l) => JSON.parse(l) as { text: string });
    assert.deepEqual(rows.map((x) => x.text), Array.from({ length: 8 }, (_, i) => `a${i}`));
    await waitFor('the pool to shrink to zero and its workers to leave the hosts', async () => {
      const s = await sb.status('auto');
      most = Math.max(most, s.backend!.workers.length);
      return s.backend!.workers.length === 0 && Object.values(net.ns).every((ns) => !skybatchProcs(ns).some((p) => p.argv.some((a) => a.includes('/pools/auto/')))) ? true : undefined;
    }, 30_000);
    assert.equal(most, 2, 'never more than max');
    const d = await sb.cli(['pool', 'down', 'auto', '-y']);
    assert.equal(d.code, 0, d.stderr);
  });

  test('a coordinator killed with SIGKILL leaves no worker behind on the hosts', async () => {
    const { pid } = sb.coordinator('gpus');
    assert.ok(Object.values(net.ns).every((ns) => skybatchProcs(ns).length > 0), 'workers run on both hosts');
    process.kill(pid, 'SIGKILL');
    await waitFor('every skybatch process on the hosts to exit', () => (Object.values(net.ns).every((ns) => skybatchProcs(ns).length === 0) ? true : undefined), 20_000);
    await waitFor('the ssh sessions here to end', () => (sshClients(net).length === 0 ? true : undefined), 10_000);
  });
});
