import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GcsStorage } from '../../formats/storage/gcs.js';
import { assertRejectsWith, removeAll, serverEnv, uniqueName } from './conformance.js';

// Against the Firebase Storage emulator. Cases that need real GCS (a missing bucket failing with
// SKYBATCH_E_NO_BUCKET, 401 for bad credentials) cannot run here; see TESTING.md.
describe('GcsStorage quirks (Firebase Storage emulator)', () => {
  const host = serverEnv('SKYBATCH_TEST_GCS_HOST', 'GCS emulator');
  const bucket = uniqueName('skybatch-quirks');
  const storage = new GcsStorage({ apiEndpoint: host, projectId: 'skybatch-test' });
  after(() => removeAll(storage, `gs://${bucket}/`));

  test('the apiEndpoint option reaches a custom endpoint without credentials', async () => {
    assert.equal(process.env.STORAGE_EMULATOR_HOST, undefined);
    await storage.put(`gs://${bucket}/a.txt`, 'via apiEndpoint');
    assert.equal((await storage.get(`gs://${bucket}/a.txt`)).toString(), 'via apiEndpoint');
  });

  test('STORAGE_EMULATOR_HOST alone points the no-argument constructor at the emulator', async () => {
    process.env.STORAGE_EMULATOR_HOST = host;
    try {
      const viaEnv = new GcsStorage();
      assert.equal((await viaEnv.get(`gs://${bucket}/a.txt`)).toString(), 'via apiEndpoint');
    } finally {
      delete process.env.STORAGE_EMULATOR_HOST;
    }
  });

  test('the emulator makes buckets on first use, so a missing bucket reads as a missing object', async () => {
    const missing = `gs://${uniqueName('skybatch-no-such-bucket')}/x.bin`;
    await assertRejectsWith(storage.get(missing), 'SKYBATCH_E_NOT_FOUND', missing);
    assert.equal(await storage.exists(missing), false);
  });
});
