import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateBucketCommand, DeleteBucketCommand } from '@aws-sdk/client-s3';
import { S3Storage } from '../../formats/storage/s3.js';
import { assertRejectsWith, listAll, removeAll, s3TestServer, uniqueName } from './conformance.js';
import { FaultProxy } from './fault-proxy.js';

const AWS_VARS = [
  'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN',
  'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_EC2_METADATA_DISABLED', 'AWS_S3_FORCE_PATH_STYLE', 'AWS_MAX_ATTEMPTS',
];

/** Runs `fn` with exactly `vars` as the AWS environment (no profile files, no IMDS), then restores it. */
async function withAwsEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(AWS_VARS.map((k) => [k, process.env[k]]));
  for (const k of AWS_VARS) delete process.env[k];
  Object.assign(process.env, {
    AWS_CONFIG_FILE: '/nonexistent/skybatch-aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/skybatch-aws-credentials',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...vars,
  });
  try {
    return await fn();
  } finally {
    for (const k of AWS_VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

describe('S3Storage quirks (Ceph RGW)', () => {
  const server = s3TestServer();
  const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  const direct = new S3Storage({ endpoint: server.endpoint, credentials, region: 'us-east-1' });
  const bucket = uniqueName('skybatch-quirks');
  const path = `s3://${bucket}/quirks/object.txt`;
  let proxy: FaultProxy;

  before(async () => {
    await direct.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await direct.put(path, 'hello');
    proxy = await FaultProxy.start({ target: server.endpoint });
  });
  after(async () => {
    await proxy.close();
    await removeAll(direct, `s3://${bucket}/`);
    await direct.client.send(new DeleteBucketCommand({ Bucket: bucket }));
  });

  test('a wrong secret fails with SKYBATCH_E_BAD_CREDENTIALS after one request, never retried', async () => {
    const storage = new S3Storage({ endpoint: proxy.url, credentials: { ...credentials, secretAccessKey: 'wrong-secret' }, region: 'us-east-1' });
    const ops: [string, () => Promise<unknown>][] = [
      ['get', () => storage.get(path)],
      ['put', () => storage.put(path, 'x')],
      ['list', () => listAll(storage, path)],
    ];
    for (const [name, op] of ops) {
      proxy.requests = 0;
      const err = await assertRejectsWith(op(), 'SKYBATCH_E_BAD_CREDENTIALS', path);
      assert.equal(err.retryable, false);
      assert.equal(proxy.requests, 1, `${name} sent ${proxy.requests} requests`);
    }
    // A HEAD 403 has no body to say why; size asks once more with a GET and reports the real cause.
    proxy.requests = 0;
    await assertRejectsWith(storage.size(path), 'SKYBATCH_E_BAD_CREDENTIALS', path);
    await assertRejectsWith(storage.exists(path), 'SKYBATCH_E_BAD_CREDENTIALS', path);
    assert.equal(proxy.requests, 4);
    assert.equal((await direct.get(path)).toString(), 'hello', 'the failed put changed nothing');
  });

  test('an unknown access key fails with SKYBATCH_E_BAD_CREDENTIALS', async () => {
    const storage = new S3Storage({ endpoint: server.endpoint, credentials: { accessKeyId: 'NOSUCHKEY000', secretAccessKey: 'x' } });
    const err = await assertRejectsWith(storage.get(path), 'SKYBATCH_E_BAD_CREDENTIALS', path);
    assert.match(err.message, /InvalidAccessKeyId/);
  });

  test('no credentials anywhere fails with SKYBATCH_E_BAD_CREDENTIALS', async () => {
    await withAwsEnv({ AWS_ENDPOINT_URL_S3: server.endpoint }, async () => {
      await assertRejectsWith(new S3Storage().get(path), 'SKYBATCH_E_BAD_CREDENTIALS', path);
    });
  });

  test('with no region configured the client uses us-east-1', async () => {
    await withAwsEnv({ AWS_ENDPOINT_URL_S3: server.endpoint, AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey }, async () => {
      const storage = new S3Storage();
      assert.equal(await storage.client.config.region(), 'us-east-1');
      assert.equal((await storage.get(path)).toString(), 'hello');
    });
  });

  test('AWS_ENDPOINT_URL is used when AWS_ENDPOINT_URL_S3 is unset, with path-style addressing', async () => {
    await withAwsEnv({ AWS_ENDPOINT_URL: server.endpoint, AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey, AWS_REGION: 'eu-west-1' }, async () => {
      const storage = new S3Storage();
      assert.equal(storage.client.config.forcePathStyle, true);
      assert.equal((await storage.get(path)).toString(), 'hello');
    });
  });

  test('a missing bucket fails every read with SKYBATCH_E_NO_BUCKET; exists is false', async () => {
    const missing = `s3://${uniqueName('skybatch-no-such-bucket')}/a/b.txt`;
    await assertRejectsWith(direct.get(missing), 'SKYBATCH_E_NO_BUCKET', missing);
    await assertRejectsWith(direct.size(missing), 'SKYBATCH_E_NO_BUCKET', missing);
    await assertRejectsWith(listAll(direct, missing), 'SKYBATCH_E_NO_BUCKET', missing);
    await assertRejectsWith(direct.put(missing, 'x'), 'SKYBATCH_E_NO_BUCKET', missing);
    assert.equal(await direct.exists(missing), false);
  });
});
