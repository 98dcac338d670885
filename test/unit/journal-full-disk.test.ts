import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SkybatchError } from '../../formats/common/errors.js';
import { FileLock } from '../../runtime/file-lock.js';
import { readJournal } from '../../runtime/store/job-store.js';
import { ROOT, fill, mountTmpfs, unmount } from '../tmpfs.js';
import { Journal } from '../../runtime/store/journal.js';

const commit = (i: number) => ({ e: 'commit' as const, i, s: i, x: i, a: 1, w: 'local-0', n: 1 });

describe('a journal on a disk that fills up', { skip: ROOT ? false : 'mounting a tmpfs needs root' }, () => {
  // a tmpfs of its own: a full disk without filling the machine's
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-journal-full-'));
  const saved = process.env.SKYBATCH_HOME;
  before(() => {
    mountTmpfs(home, '4m', '0700');
    process.env.SKYBATCH_HOME = home;
  });
  after(() => {
    process.env.SKYBATCH_HOME = saved;
    unmount(home);
    fs.rmSync(home, { recursive: true, force: true });
  });

  test('a failed append is reported once, coded and naming the file; nothing throws; the file keeps every whole record', async () => {
    fs.mkdirSync(path.join(home, 'jobs', '1'), { recursive: true });
    const j = new Journal('1');
    const broken: SkybatchError[] = [];
    j.onBroken = (err) => broken.push(err);
    j.append(commit(0));
    j.flush();
    const filler = fill(home);
    try {
      // far more than the slack in the file's last page
      for (let i = 1; i < 2000; i++) j.append(commit(i));
      j.flush();
      j.appendDurably({ e: 'status', status: 'FAILED', at: new Date().toISOString() });
      j.log('a line with nowhere to go');
      j.close();
      await new Promise((r) => setImmediate(r));
      assert.equal(broken.length, 1);
      assert.equal(broken[0].code, 'SKYBATCH_E_STORAGE');
      assert.equal(broken[0].retryable, true);
      const file = path.join(home, 'jobs', '1', 'journal.jsonl');
      assert.equal(broken[0].message, `${file}: disk full while trying to append to the journal`);
      assert.equal(broken[0].context.path, file);
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      const last = lines.pop()!; // '' or a torn record
      for (const l of lines) assert.equal(JSON.parse(l).e, 'commit');
      const committed = [...readJournal('1').committed.keys()];
      assert.deepEqual(committed, Array.from({ length: lines.length }, (_, i) => i));
      assert.ok(last === '' || !last.includes('\n'));
    } finally {
      fs.rmSync(filler);
    }
    // with room again, the next journal of the job starts on a line of its own
    const again = new Journal('1', readJournal('1'));
    again.append(commit(5000));
    again.close();
    assert.ok(readJournal('1').committed.has(5000));
  });

  test('a compaction with no room for its snapshot leaves the journal as it was', () => {
    fs.mkdirSync(path.join(home, 'jobs', '2'), { recursive: true });
    const j = new Journal('2');
    j.reserve(30_000);
    for (let i = 0; i < 30_000; i++) j.append(commit(i)); // some 1.7 MB: compacted when the job ends
    j.flush();
    const file = path.join(home, 'jobs', '2', 'journal.jsonl');
    const before = fs.readFileSync(file);
    assert.ok(before.length > 1 << 20);
    const filler = fill(home);
    try {
      j.close(true);
      assert.ok(fs.readFileSync(file).equals(before), 'the journal changed');
      assert.ok(!fs.existsSync(`${file}.compact`), 'the partial snapshot was left behind');
      assert.equal(readJournal('2').committed.size, 30_000);
    } finally {
      fs.rmSync(filler);
    }
  });

  test('a lock that cannot be written is a coded error naming the lock', () => {
    const filler = fill(home);
    try {
      const lock = path.join(home, 'pools', 'p', 'pool.lock');
      fs.mkdirSync(path.dirname(lock), { recursive: true });
      assert.throws(
        () => FileLock.tryAcquire(lock, 'pool apply'),
        (err: SkybatchError) => err.code === 'SKYBATCH_E_STORAGE' && err.message === `${lock}: disk full while trying to take the lock (pool apply)`,
      );
      assert.deepEqual(fs.readdirSync(path.dirname(lock)), [], 'a temp file of the lock was left behind');
    } finally {
      fs.rmSync(filler);
    }
  });
});
