import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { CreateBucketCommand, DeleteBucketCommand } from '@aws-sdk/client-s3';
import { S3Storage } from '../../formats/storage/s3.js';
import { assertRejectsWith, collect, eachLimit, listAll, removeAll, s3TestServer, uniqueName } from './conformance.js';
import { FaultProxy, FaultProxyOptions } from './fault-proxy.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('S3Storage behind a faulty network', () => {
  const server = s3TestServer();
  const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  const direct = new S3Storage({ endpoint: server.endpoint, credentials, region: 'us-east-1' });
  const bucket = uniqueName('skybatch-faults');
  const proxies: FaultProxy[] = [];

  async function through(opts: Omit<FaultProxyOptions, 'target'>, maxAttempts?: number): Promise<{ proxy: FaultProxy; storage: S3Storage }> {
    const proxy = await FaultProxy.start({ target: server.endpoint, ...opts });
    proxies.push(proxy);
    return { proxy, storage: new S3Storage({ endpoint: proxy.url, credentials, region: 'us-east-1', maxAttempts }) };
  }

  before(() => direct.client.send(new CreateBucketCommand({ Bucket: bucket })));
  after(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await removeAll(direct, `s3://${bucket}/`);
    await direct.client.send(new DeleteBucketCommand({ Bucket: bucket }));
  });

  test('every operation still succeeds with the right bytes when a fifth of requests fail', async (t) => {
    // 8 attempts: the chance that one request fails 8 times in a row at 20 % is 3e-6.
    const { proxy, storage } = await through({ faultRate: 0.2, faults: ['503', 'reset', 'truncate'], seed: 7 }, 8);
    const root = `s3://${bucket}/flaky/`;
    const small = randomBytes(50_000);
    const big = randomBytes(20 * MiB);

    await storage.put(root + 'small', small);
    await storage.put(root + 'big', Readable.from((function* () {
      for (let i = 0; i < big.length; i += MiB) yield big.subarray(i, i + MiB);
    })()));
    await storage.put(root + 'buffer-9mib', big.subarray(0, 9 * MiB));

    assert.equal(sha(await storage.get(root + 'small')), sha(small));
    assert.equal(sha(await storage.get(root + 'big')), sha(big));
    assert.equal(sha(await storage.get(root + 'buffer-9mib')), sha(big.subarray(0, 9 * MiB)));
    assert.equal(sha(await collect(await storage.readStream(root + 'big'))), sha(big));
    assert.deepEqual(await storage.getRange(root + 'small', 1000, 41_000), small.subarray(1000, 41_000));
    assert.deepEqual(await collect(await storage.readStream(root + 'big', { start: 5 * MiB, end: 13 * MiB })), big.subarray(5 * MiB, 13 * MiB));
    assert.equal(await storage.size(root + 'big'), big.length);
    assert.equal(await storage.exists(root + 'small'), true);
    assert.equal(await storage.exists(root + 'missing'), false);

    const keys = Array.from({ length: 40 }, (_, i) => `${root}many/${String(i).padStart(3, '0')}`);
    await eachLimit(keys, 8, (k) => storage.put(k, k));
    assert.deepEqual((await listAll(storage, root + 'many/')).map((o) => o.path), keys);
    await storage.delete(keys);
    assert.deepEqual(await listAll(direct, root + 'many/'), []);

    t.diagnostic(`${proxy.requests} requests, faults injected: ${JSON.stringify(proxy.injected)}`);
    for (const kind of ['503', 'reset'] as const) assert.ok(proxy.injected[kind] > 0, `no ${kind} was injected`);
  });

  test('a download cut off mid-body resumes from the last byte received', async (t) => {
    const big = randomBytes(20 * MiB);
    const path = `s3://${bucket}/cut/big`;
    await direct.put(path, big);
    // Every second request is cut off: each read below is cut once, then resumed.
    const { proxy, storage } = await through({ faultEvery: 2, faults: ['truncate'] });
    assert.equal(await storage.size(path), big.length);
    assert.equal(sha(await storage.get(path)), sha(big));
    assert.equal(sha(await collect(await storage.readStream(path))), sha(big));
    assert.deepEqual(await collect(await storage.readStream(path, { start: MiB + 1, end: 15 * MiB })), big.subarray(MiB + 1, 15 * MiB));
    assert.deepEqual(await storage.getRange(path, 3, 4 * MiB), big.subarray(3, 4 * MiB));
    t.diagnostic(`${proxy.requests} requests, faults injected: ${JSON.stringify(proxy.injected)}`);
    assert.equal(proxy.injected.truncate, 4);
  });

  test('a permanent 403 fails at once with SKYBATCH_E_ACCESS_DENIED, never retried', async () => {
    await direct.put(`s3://${bucket}/denied/x`, 'x');
    const { proxy, storage } = await through({ permanentStatus: 403 });
    const path = `s3://${bucket}/denied/x`;
    const ops: [string, () => Promise<unknown>][] = [
      ['get', () => storage.get(path)],
      ['getRange', () => storage.getRange(path, 0, 1)],
      ['put', () => storage.put(path, 'y')],
      ['list', () => listAll(storage, path)],
      ['delete', () => storage.delete([path])],
    ];
    for (const [name, op] of ops) {
      proxy.requests = 0;
      const err = await assertRejectsWith(op(), 'SKYBATCH_E_ACCESS_DENIED', path);
      assert.equal(err.retryable, false, name);
      assert.equal(proxy.requests, 1, `${name} sent ${proxy.requests} requests`);
    }
    // HEAD answers carry no error code: size sends the HEAD and one GET to learn why (no retry either).
    proxy.requests = 0;
    await assertRejectsWith(storage.size(path), 'SKYBATCH_E_ACCESS_DENIED', path);
    assert.equal(proxy.requests, 2);
  });
});
