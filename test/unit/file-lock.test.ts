import assert from 'node:assert/strict';
import fsDefault, * as fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { FileLock } from '../../runtime/file-lock.js';

/**
 * The instant between a lock's temp file and its hard link: a `pool down` that removes the
 * pool's folder right then. The link is made to find the folder gone, once.
 */
describe('a lock whose folder is removed while it is being taken', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-file-lock-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  function removeFolderBeforeTheLink(dir: string): () => void {
    const link = fsDefault.linkSync;
    fsDefault.linkSync = (from, to) => {
      fsDefault.linkSync = link;
      syncBuiltinESMExports();
      fs.rmSync(dir, { recursive: true, force: true });
      return link(from, to);
    };
    syncBuiltinESMExports();
    return () => {
      fsDefault.linkSync = link;
      syncBuiltinESMExports();
    };
  }

  test('without folderGone (pool apply) the folder is made again and the lock is taken', (t) => {
    const dir = path.join(root, 'apply');
    fs.mkdirSync(dir);
    t.after(removeFolderBeforeTheLink(dir));
    const lock = FileLock.tryAcquire(path.join(dir, 'pool.lock'), 'this test');
    assert.ok(lock);
    assert.deepEqual(fs.readdirSync(dir), ['pool.lock']);
    lock.release();
  });

  test("with folderGone (pool down) it throws the caller's error, leaves no folder, and the temp file is gone with it", (t) => {
    const dir = path.join(root, 'down');
    fs.mkdirSync(dir);
    t.after(removeFolderBeforeTheLink(dir));
    assert.throws(
      () => FileLock.tryAcquire(path.join(dir, 'pool.lock'), 'this test', () => new Error('pool is gone')),
      /^Error: pool is gone$/,
    );
    assert.ok(!fs.existsSync(dir));
  });
});
