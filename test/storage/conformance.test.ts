import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand } from '@aws-sdk/client-s3';
import { LocalStorage } from '../../formats/storage/local.js';
import { S3Storage } from '../../formats/storage/s3.js';
import { GcsStorage } from '../../formats/storage/gcs.js';
import { removeAll, s3TestServer, serverEnv, storageConformance, uniqueName } from './conformance.js';

let tmp: string | undefined;
const local = new LocalStorage();
storageConformance({
  name: 'local',
  storage: () => local,
  async root() {
    tmp ??= await fsp.mkdtemp(nodePath.join(os.tmpdir(), 'skybatch-conformance-'));
    return nodePath.join(tmp, uniqueName('run')) + '/';
  },
  async cleanup() {
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  },
  missingContainer: { path: nodePath.join(os.tmpdir(), uniqueName('skybatch-no-such-dir'), 'x.bin'), code: 'SKYBATCH_E_NOT_FOUND' },
});

// S3Storage is configured the way users configure it: through the standard AWS environment.
let s3: S3Storage | undefined;
let s3Bucket: string | undefined;
function s3Storage(): S3Storage {
  if (!s3) {
    const server = s3TestServer();
    process.env.AWS_ENDPOINT_URL_S3 = server.endpoint;
    process.env.AWS_ACCESS_KEY_ID = server.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = server.secretAccessKey;
    process.env.AWS_REGION = 'us-east-1';
    s3 = new S3Storage();
  }
  return s3;
}
storageConformance({
  name: 's3 (Ceph RGW)',
  storage: s3Storage,
  async root() {
    if (!s3Bucket) {
      const bucket = uniqueName('skybatch-conf');
      await s3Storage().client.send(new CreateBucketCommand({ Bucket: bucket }));
      s3Bucket = bucket;
    }
    return `s3://${s3Bucket}/${uniqueName('run')}/`;
  },
  async cleanup() {
    if (!s3Bucket) return;
    await removeAll(s3Storage(), `s3://${s3Bucket}/`);
    await s3Storage().client.send(new DeleteBucketCommand({ Bucket: s3Bucket }));
    s3Storage().client.destroy();
  },
  missingContainer: { path: `s3://${uniqueName('skybatch-no-such-bucket')}/x.bin`, code: 'SKYBATCH_E_NO_BUCKET' },
});

// The emulator creates buckets on first use and cannot delete them (501); objects are removed.
// A missing bucket reads as a missing object there, so it has no `missingContainer` case.
let gcs: GcsStorage | undefined;
const gcsBucket = uniqueName('skybatch-conf');
function gcsStorage(): GcsStorage {
  if (!gcs) {
    process.env.STORAGE_EMULATOR_HOST = serverEnv('SKYBATCH_TEST_GCS_HOST', 'GCS emulator');
    gcs = new GcsStorage({ projectId: 'skybatch-test' });
  }
  return gcs;
}
storageConformance({
  name: 'gcs (Firebase Storage emulator)',
  storage: gcsStorage,
  root: async () => `gs://${gcsBucket}/${uniqueName('run')}/`,
  cleanup: () => removeAll(gcsStorage(), `gs://${gcsBucket}/`),
});
