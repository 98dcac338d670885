import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { COORDINATOR_ENV, COORDINATOR_NODE_FLAGS } from '../../runtime/coordinator/node-flags.js';
import { ROOT } from '../harness.js';

/** The packages (by name) a fresh process holds in its CommonJS cache after importing `modules`, then running `after`. */
function packagesAfter(modules: string[], after = ''): string[] {
  const urls = modules.map((m) => pathToFileURL(path.join(ROOT, 'out', m)).href);
  const script = `
    import { createRequire } from 'node:module';
    const loaded = [];
    for (const u of ${JSON.stringify(urls)}) loaded.push(await import(u));
    ${after}
    const keys = Object.keys(createRequire(import.meta.url)('module')._cache);
    console.log(JSON.stringify([...new Set(keys.map((k) => k.match(/node_modules\\/((@[^/]+\\/)?[^/]+)/)?.[1]).filter(Boolean))]));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim()) as string[];
}

const COORDINATOR_IMPORTS = ['runtime/coordinator/coordinator.js', 'runtime/coordinator/server.js', 'runtime/backends/make-backend.js', 'runtime/pool-config.js', 'runtime/store/pool-store.js'];

describe('coordinator start', () => {
  it('does not load yaml or pngjs until a pool file is parsed or an image written, and requires ws', () => {
    const atStart = packagesAfter(COORDINATOR_IMPORTS);
    assert.ok(!atStart.includes('yaml'), `yaml loaded at start: ${atStart}`);
    assert.ok(!atStart.includes('pngjs'), `pngjs loaded at start: ${atStart}`);
    assert.ok(atStart.includes('ws'), `ws not in the CommonJS cache: ${atStart}`);
    const parsed = packagesAfter(['runtime/pool-config.js'], `
      const c = loaded[0].parsePoolConfig('pool:\\n  workers: 2\\n');
      if (c.pool.workers !== 2) throw new Error('parsed ' + JSON.stringify(c));
      let err;
      try { loaded[0].parsePoolConfig('pool:\\n  workers: two\\n'); } catch (e) { err = e; }
      if (!/line 2/.test(err?.message)) throw new Error('no line in ' + err?.message);`);
    assert.ok(parsed.includes('yaml'), `yaml not loaded by parsePoolConfig: ${parsed}`);
  });

  it("starts node with the coordinator's flags", () => {
    // an unknown V8 flag would stop every coordinator start (`node: bad option`)
    assert.equal(execFileSync(process.execPath, [...COORDINATOR_NODE_FLAGS, '-e', 'console.log("ok")'], { encoding: 'utf8' }).trim(), 'ok');
  });

  it("keeps the coordinator's malloc setting out of the processes it starts", () => {
    const flags = pathToFileURL(path.join(ROOT, 'out', 'runtime', 'coordinator', 'node-flags.js')).href;
    const script = `
      import { execFileSync } from 'node:child_process';
      import { dropCoordinatorEnv } from ${JSON.stringify(flags)};
      const own = process.env.MALLOC_MMAP_THRESHOLD_;
      dropCoordinatorEnv();
      const child = execFileSync(process.execPath, ['-e', 'console.log(process.env.MALLOC_MMAP_THRESHOLD_ ?? "unset")'], { encoding: 'utf8' }).trim();
      console.log(JSON.stringify([own, child]));`;
    const run = (env: NodeJS.ProcessEnv) => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env }).trim()) as string[];
    assert.deepEqual(run({ ...process.env, ...COORDINATOR_ENV }), [COORDINATOR_ENV.MALLOC_MMAP_THRESHOLD_, 'unset']);
    // a value the user chose for every process is theirs: passed on
    assert.deepEqual(run({ ...process.env, MALLOC_MMAP_THRESHOLD_: '65536' }), ['65536', '65536']);
  });
});
