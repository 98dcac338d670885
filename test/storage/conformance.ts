import { after, describe, test, TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ErrorCode, SkybatchError } from '../../formats/common/errors.js';
import { Storage } from '../../formats/storage/storage.js';
import { eachLimit } from '../../formats/concurrency.js';

export { eachLimit };

/** One backend under test. */
export interface BackendFactory {
  name: string;
  storage(): Storage;
  /** A fresh, empty prefix ending in `/` (`s3://bucket/run-x/`, a temp dir), unique per call. */
  root(): Promise<string>;
  /** Removes everything the backend made (bucket, temp dir). */
  cleanup(): Promise<void>;
  /** A path whose container (bucket, directory) does not exist, and the code a read of it fails with. */
  missingContainer?: { path: string; code: ErrorCode };
}

/** Reads a server location the test command exported (scripts/servers/up.sh writes them). */
export function serverEnv(name: string, what: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${what} not started: run scripts/servers/up.sh and source .cache/servers.env (${name} is not set${process.env.CI ? ', CI' : ''})`,
    );
  }
  return v;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every object under `prefix`. */
export async function removeAll(storage: Storage, prefix: string): Promise<void> {
  const paths: string[] = [];
  for await (const o of storage.list(prefix)) paths.push(o.path);
  await storage.delete(paths);
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

export async function listAll(storage: Storage, prefix: string): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  for await (const o of storage.list(prefix)) out.push(o);
  return out;
}

/** Runs `work` over `items` with at most `limit` in flight. */

export async function assertRejectsWith(p: Promise<unknown>, code: ErrorCode, pathInMessage: string): Promise<SkybatchError> {
  const err = await p.then(
    () => assert.fail(`expected ${code}, but the call succeeded`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof SkybatchError, `expected a SkybatchError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.ok(err.message.includes(pathInMessage), `message should name ${pathInMessage}: ${err.message}`);
  return err;
}

const MiB = 1024 * 1024;

/** The behaviour every storage backend must show, registered as one `describe` per backend. */
export function storageConformance(backend: BackendFactory): void {
  describe(`storage conformance: ${backend.name}`, () => {
    const s = (): Storage => backend.storage();
    after(() => backend.cleanup());

    /** A fresh prefix for one test, emptied when the test ends. */
    async function fresh(t: TestContext): Promise<string> {
      const root = await backend.root();
      t.after(() => removeAll(s(), root));
      return root;
    }

    test('get returns exactly the bytes put', async (t) => {
      const root = await fresh(t);
      const bytes = randomBytes(4096);
      await s().put(root + 'bin/data.bin', bytes);
      assert.deepEqual(await s().get(root + 'bin/data.bin'), bytes);
    });

    test('a string body is stored as UTF-8', async (t) => {
      const root = await fresh(t);
      await s().put(root + 'text.txt', 'héllo wörld ✓');
      assert.equal((await s().get(root + 'text.txt')).toString('utf8'), 'héllo wörld ✓');
      assert.equal(await s().size(root + 'text.txt'), Buffer.byteLength('héllo wörld ✓'));
    });

    test('a Readable or an async iterable is stored whole', async (t) => {
      const root = await fresh(t);
      const parts = [randomBytes(1000), randomBytes(3000), randomBytes(17)];
      await s().put(root + 'readable', Readable.from(parts));
      async function* gen(): AsyncIterable<Uint8Array> {
        for (const p of parts) yield new Uint8Array(p);
      }
      await s().put(root + 'iterable', gen());
      assert.deepEqual(await s().get(root + 'readable'), Buffer.concat(parts));
      assert.deepEqual(await s().get(root + 'iterable'), Buffer.concat(parts));
    });

    test('an empty object round-trips and has size 0', async (t) => {
      const root = await fresh(t);
      await s().put(root + 'empty', new Uint8Array(0));
      assert.equal((await s().get(root + 'empty')).length, 0);
      assert.equal(await s().size(root + 'empty'), 0);
      assert.equal((await s().getRange(root + 'empty', 0, 10)).length, 0);
    });

    test('put replaces an existing object', async (t) => {
      const root = await fresh(t);
      await s().put(root + 'k', 'first version, longer');
      await s().put(root + 'k', 'second');
      assert.equal((await s().get(root + 'k')).toString(), 'second');
      assert.equal(await s().size(root + 'k'), 6);
    });

    test('getRange returns bytes [start, end) and clips at the end', async (t) => {
      const root = await fresh(t);
      const bytes = randomBytes(1000);
      await s().put(root + 'r', bytes);
      assert.deepEqual(await s().getRange(root + 'r', 0, 1), bytes.subarray(0, 1));
      assert.deepEqual(await s().getRange(root + 'r', 100, 200), bytes.subarray(100, 200));
      assert.deepEqual(await s().getRange(root + 'r', 990, 5000), bytes.subarray(990));
      assert.equal((await s().getRange(root + 'r', 1000, 1010)).length, 0, 'a range starting at the end is empty');
      assert.equal((await s().getRange(root + 'r', 5000, 6000)).length, 0, 'a range starting past the end is empty');
      assert.equal((await s().getRange(root + 'r', 50, 50)).length, 0, 'an empty range is empty');
    });

    test('readStream streams the whole object or a range of it', async (t) => {
      const root = await fresh(t);
      const bytes = randomBytes(100_000);
      await s().put(root + 'st', bytes);
      const whole = await s().readStream(root + 'st');
      assert.equal(whole.readableObjectMode, false, 'a byte stream, not an object stream');
      assert.deepEqual(await collect(whole), bytes);
      assert.deepEqual(await collect(await s().readStream(root + 'st', { start: 10, end: 70_000 })), bytes.subarray(10, 70_000));
      assert.deepEqual(await collect(await s().readStream(root + 'st', { start: 99_990, end: 200_000 })), bytes.subarray(99_990));
      assert.equal((await collect(await s().readStream(root + 'st', { start: 200_000, end: 300_000 }))).length, 0);
    });

    test('size and exists tell present from missing objects', async (t) => {
      const root = await fresh(t);
      await s().put(root + 'dir/present', randomBytes(123));
      assert.equal(await s().size(root + 'dir/present'), 123);
      assert.equal(await s().exists(root + 'dir/present'), true);
      assert.equal(await s().exists(root + 'dir/missing'), false);
      assert.equal(await s().exists(root + 'dir'), false, 'a "directory" is not an object');
    });

    test('a missing object fails with SKYBATCH_E_NOT_FOUND naming its full path', async (t) => {
      const root = await fresh(t);
      const missing = root + 'no/such/object.bin';
      await assertRejectsWith(s().get(missing), 'SKYBATCH_E_NOT_FOUND', missing);
      await assertRejectsWith(s().getRange(missing, 0, 10), 'SKYBATCH_E_NOT_FOUND', missing);
      await assertRejectsWith(s().readStream(missing), 'SKYBATCH_E_NOT_FOUND', missing);
      await assertRejectsWith(s().size(missing), 'SKYBATCH_E_NOT_FOUND', missing);
    });

    if (backend.missingContainer) {
      const { path, code } = backend.missingContainer;
      test(`a read in a missing bucket or directory fails with ${code}`, async () => {
        await assertRejectsWith(s().get(path), code, path);
        assert.equal(await s().exists(path), false);
      });
    }

    test('list yields every object under a prefix at any depth, sorted, with sizes', async (t) => {
      const root = await fresh(t);
      // '-' < '.' < '/' < '0' in byte order: a directory walk and a key sort disagree here.
      // (No key is also a prefix of another: a file system cannot hold both `a/b` and `a/b/c`.)
      const keys = ['a/b/c/deep', 'a/b2', 'a-b', 'a.b', 'a0', 'ab/x', 'b'];
      await eachLimit(keys, 8, (k) => s().put(root + k, k));
      const all = await listAll(s(), root);
      assert.deepEqual(
        all.map((o) => o.path),
        keys.map((k) => root + k).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
      );
      assert.deepEqual(
        all.map((o) => o.size),
        all.map((o) => Buffer.byteLength(o.path.slice(root.length))),
      );
      assert.deepEqual(
        (await listAll(s(), root + 'a/')).map((o) => o.path),
        [root + 'a/b/c/deep', root + 'a/b2'],
      );
    });

    test('list with a prefix that ends mid-name matches by string prefix', async (t) => {
      const root = await fresh(t);
      for (const k of ['part-0001', 'part-0002', 'part-0010', 'partial/x', 'other']) await s().put(root + k, 'x');
      assert.deepEqual(
        (await listAll(s(), root + 'part-000')).map((o) => o.path),
        [root + 'part-0001', root + 'part-0002'],
      );
      assert.deepEqual(
        (await listAll(s(), root + 'part')).map((o) => o.path),
        [root + 'part-0001', root + 'part-0002', root + 'part-0010', root + 'partial/x'],
      );
      assert.deepEqual(await listAll(s(), root + 'nothing-here'), []);
    });

    test('lists more than 1,000 objects and deletes them all in one call', async (t) => {
      const root = await fresh(t);
      const keys = Array.from({ length: 1050 }, (_, i) => `many/${String(i).padStart(5, '0')}`);
      await eachLimit(keys, 32, (k) => s().put(root + k, k));
      const listed = await listAll(s(), root + 'many/');
      assert.equal(listed.length, 1050);
      assert.deepEqual(
        listed.map((o) => o.path),
        keys.map((k) => root + k),
      );
      await s().delete(listed.map((o) => o.path));
      assert.deepEqual(await listAll(s(), root + 'many/'), []);
    });

    test('delete removes the named objects and ignores missing ones', async (t) => {
      const root = await fresh(t);
      await s().put(root + 'd/1', '1');
      await s().put(root + 'd/2', '2');
      await s().delete([root + 'd/1', root + 'd/never-existed']);
      assert.equal(await s().exists(root + 'd/1'), false);
      assert.equal(await s().exists(root + 'd/2'), true);
      await s().delete([root + 'd/1']);
      await s().delete([]);
    });

    test('a 20 MiB stream round-trips intact (multipart / resumable upload)', async (t) => {
      const root = await fresh(t);
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      async function* body(): AsyncIterable<Uint8Array> {
        for (let i = 0; i < 20; i++) {
          const c = randomBytes(MiB);
          hash.update(c);
          chunks.push(c);
          yield c;
        }
      }
      await s().put(root + 'big.bin', body());
      const all = Buffer.concat(chunks);
      assert.equal(await s().size(root + 'big.bin'), 20 * MiB);
      const got = await s().get(root + 'big.bin');
      assert.equal(createHash('sha256').update(got).digest('hex'), hash.digest('hex'));
      // across the 8 MiB part boundary
      const start = 8 * MiB - 10;
      assert.deepEqual(await collect(await s().readStream(root + 'big.bin', { start, end: start + 20 })), all.subarray(start, start + 20));
      assert.deepEqual(await s().getRange(root + 'big.bin', 20 * MiB - 5, 30 * MiB), all.subarray(20 * MiB - 5));
    });
  });
}

/** The Ceph RGW the test command started, as `S3StorageOptions` fields and env. */
export function s3TestServer(): { endpoint: string; accessKeyId: string; secretAccessKey: string } {
  const what = 'S3 server';
  return {
    endpoint: serverEnv('SKYBATCH_TEST_S3_ENDPOINT', what),
    accessKeyId: serverEnv('SKYBATCH_TEST_S3_ACCESS_KEY', what),
    secretAccessKey: serverEnv('SKYBATCH_TEST_S3_SECRET_KEY', what),
  };
}
