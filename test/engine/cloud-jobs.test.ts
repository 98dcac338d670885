import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { PNG } from 'pngjs';
import { S3Storage } from '../../formats/storage/s3.js';
import { GcsStorage } from '../../formats/storage/gcs.js';
import type { Storage } from '../../formats/storage/storage.js';
import { ROOT, Sandbox, jsonl, mapperScript } from '../harness.js';
import { s3TestServer, serverEnv, uniqueName } from '../storage/conformance.js';
import { FaultProxy, FaultProxyOptions } from '../storage/fault-proxy.js';

interface Cloud {
  name: string;
  /** Environment for the CLI, the pool and the jobs: how users point skybatch at the backend. */
  env(): Record<string, string>;
  /** A fresh bucket URI prefix like `s3://bucket/run-x`. */
  prefix(): Promise<string>;
  storage(): Storage;
}

const clouds: Cloud[] = [
  {
    name: 's3 (Ceph RGW)',
    env: () => {
      const s = s3TestServer();
      return { AWS_ENDPOINT_URL_S3: s.endpoint, AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey, AWS_REGION: 'us-east-1' };
    },
    async prefix() {
      const s = s3TestServer();
      const storage = new S3Storage({ endpoint: s.endpoint, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey }, region: 'us-east-1', forcePathStyle: true });
      const bucket = uniqueName('skybatch-job');
      await storage.client.send(new CreateBucketCommand({ Bucket: bucket }));
      return `s3://${bucket}/run`;
    },
    storage: () => {
      const s = s3TestServer();
      return new S3Storage({ endpoint: s.endpoint, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey }, region: 'us-east-1', forcePathStyle: true });
    },
  },
  {
    name: 'gcs (Firebase Storage emulator)',
    env: () => ({ STORAGE_EMULATOR_HOST: serverEnv('SKYBATCH_TEST_GCS_HOST', 'GCS emulator'), GOOGLE_CLOUD_PROJECT: 'skybatch-test' }),
    prefix: async () => `gs://${uniqueName('skybatch-job')}/run`,
    storage: () => {
      process.env.STORAGE_EMULATOR_HOST = serverEnv('SKYBATCH_TEST_GCS_HOST', 'GCS emulator');
      return new GcsStorage({ projectId: 'skybatch-test' });
    },
  },
];

async function keys(storage: Storage, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of storage.list(prefix + '/')) out.push(o.path.slice(prefix.length + 1));
  return out.sort();
}

for (const cloud of clouds) {
  describe(`full jobs on ${cloud.name}`, () => {
    const sb = new Sandbox('cloud');
    let prefix: string;
    let storage: Storage;
    const pool = 'cloud';
    before(async () => {
      prefix = await cloud.prefix();
      storage = cloud.storage();
      await sb.applyPool(pool, 'pool:\n  workers: 2\n');
    });
    after(() => sb.cleanup());

    test('the quickstart reads its input from and writes its output to the bucket', async () => {
      await storage.put(`${prefix}/data.jsonl`, fs.readFileSync(path.join(ROOT, 'samples/quickstart/data.jsonl')));
      const r = await sb.run(path.join(ROOT, 'samples/quickstart/double_text.ts'), { ...cloud.env(), POOL: pool, INPUT: `${prefix}/data.jsonl`, OUTPUT: `${prefix}/output.jsonl` });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await storage.get(`${prefix}/output.jsonl`)).toString(), '{"output":"hellohello"}\n{"output":"worldworld"}\n{"output":"skysky"}\n{"output":"batchbatch"}\n');
      assert.deepEqual(await keys(storage, prefix), ['data.jsonl', 'output.jsonl'], 'no temp objects are left');
    });

    test('the image sample writes PNGs, their manifest and the prompts to the bucket', async () => {
      await storage.put(`${prefix}/prompts.jsonl`, fs.readFileSync(path.join(ROOT, 'samples/images/prompts.jsonl')));
      const r = await sb.run(path.join(ROOT, 'samples/images/generate_images.ts'), { ...cloud.env(), POOL: pool, INPUT: `${prefix}/prompts.jsonl`, OUTPUT_DIR: `${prefix}/img`, IMAGE_SIZE: '16' });
      assert.equal(r.code, 0, r.stderr);
      const all = await keys(storage, `${prefix}/img`);
      const pngs = Array.from({ length: 12 }, (_, i) => `images/${String(i).padStart(8, '0')}.png`);
      assert.deepEqual(all, ['images/_manifest.jsonl', ...pngs, 'manifest.jsonl'].sort());
      const png = PNG.sync.read(await storage.get(`${prefix}/img/images/00000011.png`));
      assert.equal(png.width, 16);
      const manifest = (await storage.get(`${prefix}/img/images/_manifest.jsonl`)).toString().trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(manifest[11], { file: '00000011.png', index: 11 });
    });

    test('recover merges a failed job\'s finished batches in the bucket and removes its temp objects', async () => {
      await storage.put(`${prefix}/in.jsonl`, jsonl(Array.from({ length: 10 }, (_, i) => ({ text: `t${i}` }))));
      const script = sb.file(
        'poison.ts',
        mapperScript({
          input: `${prefix}/in.jsonl`,
          output: `${prefix}/rec/out.jsonl`,
          pool,
          body: `if (batch[0].text === 't4') throw new TypeError('bad row'); await sky.saveResults(batch.map((x) => ({ out: x.text })));`,
        }),
      );
      const r = await sb.run(script, cloud.env());
      assert.notEqual(r.code, 0);
      const jobId = /job (\d+) failed/.exec(r.stderr)?.[1];
      assert.ok(jobId, r.stderr);
      const temp = await keys(storage, `${prefix}/rec`);
      assert.ok(temp.some((k) => k.startsWith('.sky_batch_tmp/')), 'finished batches are kept in the bucket');
      const rec = await sb.cli(['recover', jobId], { env: cloud.env() });
      assert.equal(rec.code, 0, rec.stderr);
      const rows = (await storage.get(`${prefix}/rec/out.jsonl`)).toString().trim().split('\n').map((l) => JSON.parse(l).out);
      assert.ok(!rows.includes('t4') && !rows.includes('t5'));
      assert.deepEqual(rows, [...rows].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))));
      assert.deepEqual(await keys(storage, `${prefix}/rec`), ['out.jsonl']);
    });
  });
}

describe('jobs behind a faulty S3 network', () => {
  const sb = new Sandbox('faults');
  const proxies: FaultProxy[] = [];
  const pool = 'faulty';
  let bucket: string;
  before(async () => {
    bucket = (await clouds[0].prefix()).split('/')[2];
    await sb.applyPool(pool, 'pool:\n  workers: 2\n');
  });
  after(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await sb.cleanup();
  });

  async function envThrough(opts: Omit<FaultProxyOptions, 'target'>): Promise<{ proxy: FaultProxy; env: Record<string, string> }> {
    const s = s3TestServer();
    const proxy = await FaultProxy.start({ target: s.endpoint, ...opts });
    proxies.push(proxy);
    return { proxy, env: { ...clouds[0].env(), AWS_ENDPOINT_URL_S3: proxy.url } };
  }

  test('injected 503s, dropped connections and stalls still end in a correct output', async (t) => {
    const rows = Array.from({ length: 60 }, (_, i) => ({ text: `t${i}` }));
    await clouds[0].storage().put(`s3://${bucket}/flaky/in.jsonl`, jsonl(rows));
    const { proxy, env: proxied } = await envThrough({ faultRate: 0.3, faults: ['503', 'reset', 'stall'], seed: 7 });
    const env = { ...proxied, SKYBATCH_STORAGE_TIMEOUT_MS: '1500' };
    const script = sb.file(
      'flaky.ts',
      mapperScript({ input: `s3://${bucket}/flaky/in.jsonl`, output: `s3://${bucket}/flaky/out.jsonl`, pool, batchSize: 5, body: `await sky.saveResults(batch.map((x) => ({ out: x.text })));` }),
    );
    const r = await sb.run(script, env);
    t.diagnostic(`${proxy.requests} requests, faults injected: ${JSON.stringify(proxy.injected)}`);
    assert.equal(r.code, 0, r.stderr);
    for (const kind of ['503', 'reset', 'stall'] as const) assert.ok(proxy.injected[kind] > 0, `no ${kind} was injected`);
    const out = (await clouds[0].storage().get(`s3://${bucket}/flaky/out.jsonl`)).toString();
    assert.equal(out, rows.map((x) => JSON.stringify({ out: x.text }) + '\n').join(''));
  });

  test('a permanent 403 fails the job at once with a clear error carrying the job id', async () => {
    sb.file('in.jsonl', jsonl([{ text: 'a' }, { text: 'b' }]));
    const { env } = await envThrough({ permanentStatus: 403 });
    const script = sb.file(
      'denied.ts',
      mapperScript({ input: `${sb.dir}/in.jsonl`, output: `s3://${bucket}/denied/out.jsonl`, pool, body: `await sky.saveResults(batch.map((x) => ({ out: x.text })));` }),
    );
    const r = await sb.run(script, env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SKYBATCH_E_ACCESS_DENIED/);
    assert.match(r.stderr, /job \d+ failed: .*s3:\/\/[^ ]+denied/);
    assert.match(r.stderr, /skybatch recover \d+/);
    assert.doesNotMatch(r.stderr, /attempt 2/, 'a 403 is not retried');
  });
});
