import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Bundle, BundleRequest } from '../../runtime/client/bundle.js';
import { useTempHome } from './spec.js';

/** A fresh copy of bundle.ts, as a new `map()` process has: its in-memory cache is empty. */
let copies = 0;
async function bundleInNewProcess(req: BundleRequest): Promise<Bundle> {
  const url = new URL('../../runtime/client/bundle.js', import.meta.url);
  url.searchParams.set('copy', String(++copies));
  const mod = (await import(url.href)) as typeof import('../../runtime/client/bundle.js');
  return mod.bundleScript(req);
}

function cacheFiles(): { file: string; ino: number }[] {
  const dir = path.join(process.env.SKYBATCH_HOME!, 'cache', 'bundles');
  return fs.readdirSync(dir).map((f) => ({ file: f, ino: fs.statSync(path.join(dir, f)).ino }));
}

describe('the client bundle cache', () => {
  useTempHome();
  let dir = '';
  let req: BundleRequest;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-bundle-cache-'));
    fs.writeFileSync(path.join(dir, 'helper.ts'), "console.log('helper one');\n");
    // a side-effect import is always kept, so helper.ts is an input of the bundle
    fs.writeFileSync(path.join(dir, 'main.ts'), "import './helper.js';\nconsole.log('main');\n");
    req = { entry: path.join(dir, 'main.ts'), formats: [] };
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('an unchanged script is served from the cache; a changed input or a new file that changes resolution rebuilds', async () => {
    const first = await bundleInNewProcess(req);
    assert.match(first.code, /helper one/);
    const stored = cacheFiles();
    assert.equal(stored.length, 1);

    const again = await bundleInNewProcess(req);
    assert.equal(again.hash, first.hash);
    assert.deepEqual(cacheFiles(), stored, 'served from the cache, not rebuilt and rewritten');

    fs.writeFileSync(path.join(dir, 'helper.ts'), "console.log('helper two');\n"); // same size
    const edited = await bundleInNewProcess(req);
    assert.match(edited.code, /helper two/);
    assert.doesNotMatch(edited.code, /helper one/);
    assert.notEqual(edited.hash, first.hash);

    // `./helper.js` now names a file of its own, which esbuild prefers to helper.ts
    fs.writeFileSync(path.join(dir, 'helper.js'), "console.log('helper js');\n");
    const resolved = await bundleInNewProcess(req);
    assert.match(resolved.code, /helper js/);

    fs.writeFileSync(path.join(dir, 'other.ts'), "console.log('other');\n");
    fs.writeFileSync(req.entry, "import './helper.js';\nimport './other.js';\n");
    const entryEdited = await bundleInNewProcess(req);
    assert.match(entryEdited.code, /other/);
  });

  test('the cache keeps the newest entries only', async () => {
    const { BUNDLE_CACHE_ENTRIES } = await import('../../runtime/client/bundle.js');
    const cacheDir = path.join(process.env.SKYBATCH_HOME!, 'cache', 'bundles');
    const old = new Date(Date.now() - 3600_000);
    for (let i = 0; i < BUNDLE_CACHE_ENTRIES + 5; i++) {
      const f = path.join(cacheDir, `old${i}.json`);
      fs.writeFileSync(f, '{}');
      fs.utimesSync(f, old, old);
    }
    fs.writeFileSync(path.join(dir, 'helper.js'), "console.log('helper three');\n"); // an input: rebuilds
    await bundleInNewProcess(req);
    const left = fs.readdirSync(cacheDir);
    assert.equal(left.length, BUNDLE_CACHE_ENTRIES);
    assert.equal(left.filter((n) => !n.startsWith('old')).length >= 1, true, 'the new entry is kept');
  });
});
