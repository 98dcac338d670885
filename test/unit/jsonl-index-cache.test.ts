import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { JsonReader, buildIndex } from '../../formats/json-reader.js';
import { cachedIndex } from '../../runtime/client/jsonl-index-cache.js';

/** Waits (with a deadline) until the file's last change is older than the cache's racy window. */
async function settle(file: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() - fs.statSync(file).ctimeMs < 150) {
    assert.ok(Date.now() < deadline, 'the file never aged');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const entries = (home: string) => fs.readdirSync(path.join(home, 'cache', 'jsonl-index')).filter((n) => n.endsWith('.json'));

describe('the client caches a JSONL input line index by file identity, size, mtime and ctime', () => {
  let dir: string;
  let savedHome: string | undefined;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-index-cache-'));
    savedHome = process.env.SKYBATCH_HOME;
    process.env.SKYBATCH_HOME = path.join(dir, 'home');
  });
  after(() => {
    if (savedHome === undefined) delete process.env.SKYBATCH_HOME;
    else process.env.SKYBATCH_HOME = savedHome;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves a repeated index of an unchanged file from the cache', async () => {
    const file = path.join(dir, 'same.jsonl');
    fs.writeFileSync(file, '{"a":1}\n\n{"a":2}\r\n{"a":"é"}\n');
    await settle(file);
    const first = await cachedIndex(file);
    assert.deepEqual(first, await buildIndex(file));
    const [entry] = entries(process.env.SKYBATCH_HOME!);
    assert.ok(entry, 'the index was stored');
    // Proof that the next call reads the entry and not the file: a marked entry comes back.
    const at = path.join(process.env.SKYBATCH_HOME!, 'cache', 'jsonl-index', entry);
    const stored = JSON.parse(fs.readFileSync(at, 'utf8'));
    stored.index.lines[0] = 7;
    fs.writeFileSync(at, JSON.stringify(stored));
    assert.equal((await cachedIndex(file))!.lines[0], 7);
  });

  it('indexes again a file rewritten with the same size and its old mtime', async () => {
    const file = path.join(dir, 'rewritten.jsonl');
    // whole seconds, so utimes can put the very same mtime back (to the nanosecond)
    const when = 1_700_000_000;
    fs.writeFileSync(file, '{"a":11}\n{"a":22}\n');
    fs.utimesSync(file, when, when);
    await settle(file);
    const old = await cachedIndex(file);
    assert.equal(old!.rows, 2);
    const was = fs.statSync(file, { bigint: true });
    fs.writeFileSync(file, '{"a":1}\n\n{"a":33}\n'); // same 18 bytes, other lines
    fs.utimesSync(file, when, when);
    const now = fs.statSync(file, { bigint: true });
    assert.deepEqual([now.ino, now.size, now.mtimeNs], [was.ino, was.size, was.mtimeNs]);
    await settle(file);
    const fresh = await cachedIndex(file);
    assert.deepEqual(fresh, await buildIndex(file));
    assert.deepEqual(fresh!.lines, [1, 3]);
    const reader = new JsonReader(file);
    reader.importJobState(fresh);
    assert.deepEqual(await reader.downloadBatch(0, 1), [{ a: 1 }, { a: 33 }]);
  });

  it('does not cache a file changed a moment ago, nor a remote input', async () => {
    const file = path.join(dir, 'fresh.jsonl');
    const before = entries(process.env.SKYBATCH_HOME!).length;
    fs.writeFileSync(file, '{"a":1}\n');
    assert.equal((await cachedIndex(file))!.rows, 1);
    assert.equal(entries(process.env.SKYBATCH_HOME!).length, before);
    assert.equal(await cachedIndex('s3://bucket/rows.jsonl'), undefined);
  });
});
