import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI, Sandbox, jsonl, mapperScript, readJsonl, waitFor } from '../harness.js';

describe('pools', () => {
  const sb = new Sandbox('pool');
  after(() => sb.cleanup());

  test('an invalid pool.yaml names each bad field and its line, and starts nothing', async () => {
    const file = sb.file('bad.yaml', 'pool:\n  workers: two\n\nresources:\n  cpus: 1+\n  gpus: 3\nsetup: echo hi\n');
    const r = await sb.cli(['pool', 'apply', file, '--pool', 'bad', '-y']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SKYBATCH_E_POOL_CONFIG/);
    assert.ok(r.stderr.includes(`${file} line 2: pool.workers:`), r.stderr);
    assert.ok(r.stderr.includes(`${file} line 6: resources.gpus: unknown field gpus`), r.stderr);
    assert.ok(!fs.existsSync(path.join(sb.home, 'pools', 'bad', 'coordinator.json')));
  });

  test('broken YAML is reported with its line', async () => {
    const file = sb.file('broken.yaml', 'pool:\n  workers: 1\nsetup: "unterminated\n');
    const r = await sb.cli(['pool', 'apply', file, '--pool', 'broken', '-y']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line \d+: invalid YAML/);
  });

  test('a job submitted to a pool that does not exist fails with how to create it', async () => {
    sb.file('in.jsonl', jsonl([{ text: 'a' }]));
    const script = sb.file('nopool.ts', mapperScript({ input: path.join(sb.dir, 'in.jsonl'), output: path.join(sb.dir, 'nopool.jsonl'), pool: 'nosuchpool', body: '' }));
    const r = await sb.run(script);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_POOL_NOT_FOUND/);
    assert.match(r.stderr, /skybatch pool apply pool\.yaml --pool nosuchpool -y/);
  });

  test('setup that fails is reported with its output', async () => {
    await assert.rejects(sb.applyPool('badsetup', 'pool:\n  workers: 1\nsetup: |\n  echo installing\n  echo "no such package" >&2\n  exit 3\n'), (err: Error) => {
      assert.match(err.message, /SKYBATCH_E_SETUP_FAILED/);
      assert.match(err.message, /no such package/);
      return true;
    });
  });

  test('a worker with a wrong token is refused and the refusal is logged; a worker started by hand joins', async () => {
    await sb.applyPool('p1', 'pool:\n  workers: 1\nsetup: echo local setup\n');
    const { url, token } = sb.coordinator('p1');
    const wrong = await sb.cli(['worker', '--coordinator', url, '--token', 'not-the-token', '--name', 'intruder', '--workdir', path.join(sb.dir, 'intruder')], { timeoutMs: 20_000 });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stdout + wrong.stderr, /refused this worker \(HTTP 401\)/);
    assert.match(fs.readFileSync(path.join(sb.home, 'pools', 'p1', 'coordinator.log'), 'utf8'), /refused a connection .*wrong token/);

    const manual = spawn(process.execPath, [CLI, 'worker', '--coordinator', url, '--name', 'by-hand', '--workdir', path.join(sb.dir, 'by-hand')], {
      env: sb.env({ SKYBATCH_TOKEN: token }),
      stdio: 'ignore',
    });
    try {
      await waitFor('the manual worker to be ready', async () => {
        const s = await sb.cli(['pool', 'status', 'p1']);
        return /by-hand\s+\S+\s+idle/.test(s.stdout) ? true : undefined;
      });
      assert.equal(fs.readFileSync(path.join(sb.dir, 'by-hand', '.skybatch-setup-done'), 'utf8').length, 64, 'setup ran in the manual worker folder');
      const rows = Array.from({ length: 30 }, (_, i) => ({ text: `r${i}` }));
      sb.file('in30.jsonl', jsonl(rows));
      const script = sb.file(
        'who.ts',
        mapperScript({
          input: path.join(sb.dir, 'in30.jsonl'),
          output: path.join(sb.dir, 'who.jsonl'),
          pool: 'p1',
          batchSize: 1,
          body: `await new Promise((r) => setTimeout(r, 30)); await sky.saveResults(batch.map((x) => ({ text: x.text, worker: process.env.SKYBATCH_WORKER })));`,
        }),
      );
      const r = await sb.run(script);
      assert.equal(r.code, 0, r.stderr);
      const out = readJsonl(path.join(sb.dir, 'who.jsonl')) as { text: string; worker: string }[];
      assert.deepEqual(out.map((o) => o.text), rows.map((x) => x.text));
      assert.deepEqual(new Set(out.map((o) => o.worker)), new Set(['local-0', 'by-hand']), 'both workers took batches');
    } finally {
      manual.kill('SIGTERM');
    }
  });

  test('a coordinator with a TLS certificate serves wss:// to its workers and clients', async () => {
    fs.mkdirSync(path.join(sb.dir, 'tls'));
    const cert = ['-keyout', path.join(sb.dir, 'tls', 'key.pem'), '-out', path.join(sb.dir, 'tls', 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', ...cert], { stdio: 'ignore' });
    await sb.applyPool('tls', 'pool:\n  workers: 1\ncoordinator:\n  tls:\n    cert: tls/cert.pem\n    key: tls/key.pem\n');
    const { url, token } = sb.coordinator('tls');
    assert.match(url, /^wss:\/\/127\.0\.0\.1:\d+$/);
    sb.file('tls-in.jsonl', jsonl([{ text: 'secure' }]));
    const script = sb.file('tls.ts', mapperScript({ input: path.join(sb.dir, 'tls-in.jsonl'), output: path.join(sb.dir, 'tls-out.jsonl'), pool: 'tls', body: `await sky.saveResults(batch.map((x) => ({ out: x.text })));` }));
    const r = await sb.run(script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readJsonl(path.join(sb.dir, 'tls-out.jsonl')), [{ out: 'secure' }]);
    // a client that does not trust the certificate cannot connect, even with the token
    await assert.rejects(CoordinatorClient.connect(url, token), /cannot reach the coordinator.*(self.signed|certificate)/i);
  });

  test('pool status, and pool down stops the coordinator and its workers', async () => {
    const { pid } = sb.coordinator('p1');
    const workers = sb.workerPids('p1');
    assert.equal(workers.length, 1);
    const s = await sb.cli(['pool', 'status']);
    assert.match(s.stdout, /p1: running, \d\/1 workers/);
    const d = await sb.cli(['pool', 'down', 'p1', '-y']);
    assert.equal(d.code, 0, d.stderr);
    const alive = (p: number) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor('processes to exit', () => (!alive(pid) && !workers.some(alive) ? true : undefined));
    assert.ok(!fs.existsSync(path.join(sb.home, 'pools', 'p1')));
    const again = await sb.cli(['pool', 'down', 'p1', '-y']);
    assert.match(again.stderr, /SKYBATCH_E_POOL_NOT_FOUND/);
  });
});
