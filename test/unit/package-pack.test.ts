import assert from 'node:assert/strict';
import fsDefault, * as fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { PACKAGES_MANIFEST, PackagesManifest, buildPackagesPack, platformMismatch } from '../../runtime/backends/package-pack.js';

/** The files of a pack, path → text. */
function unpack(file: string): Map<string, string> {
  const raw = gunzipSync(fs.readFileSync(file));
  const out = new Map<string, string>();
  for (let at = 0; at < raw.length; ) {
    const nl = raw.indexOf(10, at);
    const h = JSON.parse(raw.subarray(at, nl).toString()) as { p: string; n: number };
    out.set(h.p, raw.subarray(nl + 1, nl + 1 + h.n).toString());
    at = nl + 1 + h.n;
  }
  return out;
}

describe("a job's packages pack", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-pkgpack-'));
  const home = process.env.SKYBATCH_HOME;
  process.env.SKYBATCH_HOME = path.join(base, 'home');
  after(() => {
    process.env.SKYBATCH_HOME = home;
    fs.rmSync(base, { recursive: true, force: true });
  });
  const project = path.join(base, 'project');
  const pkg = (dir: string, name: string, deps: Record<string, string> = {}, files: Record<string, string> = {}) => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', dependencies: deps }));
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  };
  pkg(project, 'app', { listed: '1', absent: '1' });
  pkg(path.join(project, 'node_modules', 'listed'), 'listed', { shared: '2' }, { 'index.js': 'listed', 'data.txt': 'words', 'README.md': 'docs' });
  pkg(path.join(project, 'node_modules', 'listed', 'node_modules', 'shared'), 'shared', {}, { 'index.js': 'shared v2' });
  pkg(path.join(project, 'node_modules', 'shared'), 'shared', {}, { 'index.js': 'shared v1' });
  pkg(path.join(project, 'node_modules', 'imported'), 'imported', {}, { 'index.js': 'imported' });
  pkg(path.join(project, 'node_modules', 'devonly'), 'devonly', {}, { 'index.js': 'dev' });

  it('holds the listed and imported packages with theirs, as Node resolves them in the project, and what it was built on', () => {
    const pack = buildPackagesPack({ v: 1, entry: path.join(project, 'job.ts'), projectRoot: project, packages: ['imported', 'missing-too', 'skybatch'] })!;
    assert.match(pack.hash, /^[0-9a-f]{64}$/);
    assert.equal(pack.file, path.join(base, 'home', 'packages', `${pack.hash}.pack.gz`));
    const files = unpack(pack.file);
    assert.equal(files.get('node_modules/listed/data.txt'), 'words', 'files next to the code travel');
    assert.equal(files.get('node_modules/listed/node_modules/shared/index.js'), 'shared v2', 'a nested version stays nested');
    assert.equal(files.get('node_modules/imported/index.js'), 'imported');
    assert.ok(!files.has('node_modules/listed/README.md'));
    assert.ok(![...files.keys()].some((f) => f.includes('devonly')), 'neither listed nor imported');
    assert.ok(!files.has('node_modules/shared/index.js'), 'the top-level version is needed by nothing packed');
    const manifest = JSON.parse(files.get(PACKAGES_MANIFEST)!) as PackagesManifest;
    assert.deepEqual(manifest, { platform: process.platform, arch: process.arch, abi: process.versions.modules, native: false, project });
    assert.equal(buildPackagesPack({ v: 1, entry: path.join(project, 'job.ts'), projectRoot: project, packages: ['imported'] })!.hash, pack.hash, 'same content, same hash');
  });

  it('is nothing for a script whose folder has no packages', () => {
    const bare = path.join(base, 'bare');
    fs.mkdirSync(bare);
    assert.equal(buildPackagesPack({ v: 1, entry: path.join(bare, 'job.ts'), packages: ['skybatch'] }), undefined);
  });

  it('leaves no temp file of a pack behind: a failed write removes its own, the next pack removes a dead process’s', (t) => {
    const dir = path.join(base, 'home', 'packages');
    const dead = spawnSync('true').pid!; // a process that has exited
    const deadTmp = `${'a'.repeat(64)}.pack.gz.${dead}.tmp`;
    const liveTmp = `${'b'.repeat(64)}.pack.gz.${process.pid}.tmp`; // this process, packing
    fs.mkdirSync(dir, { recursive: true });
    for (const f of [deadTmp, liveTmp]) fs.writeFileSync(path.join(dir, f), 'half a pack');

    // the disk fills up halfway through the pack's write
    const write = fsDefault.writeFileSync;
    fsDefault.writeFileSync = ((file: fs.PathOrFileDescriptor, data: Uint8Array) => {
      write(file, data.subarray(0, 10));
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    }) as typeof fs.writeFileSync;
    syncBuiltinESMExports();
    const restore = () => {
      fsDefault.writeFileSync = write;
      syncBuiltinESMExports();
    };
    t.after(restore);
    const before = new Set(fs.readdirSync(dir));
    assert.throws(() => buildPackagesPack({ v: 1, entry: path.join(project, 'job.ts'), projectRoot: project, packages: ['listed'] }), /ENOSPC/);
    restore();
    assert.deepEqual(new Set(fs.readdirSync(dir)), before, 'nothing new: the partial pack was removed');

    const pack = buildPackagesPack({ v: 1, entry: path.join(project, 'job.ts'), projectRoot: project, packages: ['listed'] })!;
    const left = fs.readdirSync(dir);
    assert.ok(left.includes(`${pack.hash}.pack.gz`));
    assert.ok(!left.includes(deadTmp), 'the dead process’s temp file went');
    assert.ok(left.includes(liveTmp), 'a live process’s temp file stays');
  });

  it('refuses native addons built for another platform or Node ABI, and nothing else', () => {
    const here = { platform: process.platform, arch: process.arch, abi: process.versions.modules, project: '/p' };
    assert.equal(platformMismatch({ ...here, native: true }), undefined);
    assert.equal(platformMismatch({ ...here, abi: '1', native: false }), undefined);
    assert.match(platformMismatch({ ...here, abi: '1', native: true })!, /native addons built for .*Node ABI 1, and this host is/);
  });
});
