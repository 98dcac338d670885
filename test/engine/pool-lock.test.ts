import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { FileLock } from '../../runtime/file-lock.js';
import { Sandbox, waitFor } from '../harness.js';

const YAML = 'pool:\n  workers: 2\n';

describe('pool apply and pool down hold the pool lock', () => {
  const sb = new Sandbox('pool-lock');
  after(() => sb.cleanup());

  /** Live coordinator processes of `pool` in this sandbox (found by command line and SKYBATCH_HOME). */
  function coordinators(pool: string): number[] {
    const out: number[] = [];
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const args = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        const env = fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (stat[stat.lastIndexOf(')') + 2] === 'Z') continue;
        if (args.some((a) => a.endsWith('coordinator/main.js')) && args[args.indexOf('--pool') + 1] === pool && env.includes(`SKYBATCH_HOME=${sb.home}`)) out.push(Number(d));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  function apply(pool: string) {
    return sb.cli(['pool', 'apply', sb.file(`${pool}.yaml`, YAML), '--pool', pool, '-y'], { timeoutMs: 60_000 });
  }

  test('concurrent `pool apply` of one name start exactly one coordinator, all return with it, and `pool down` leaves no coordinator or worker', async () => {
    const pool = 'race';
    const runs = await Promise.all([apply(pool), apply(pool), apply(pool)]);
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const live = coordinators(pool);
    assert.equal(live.length, 1, `coordinators running: ${live.join(', ')}`);
    const { pid } = sb.coordinator(pool);
    assert.deepEqual(live, [pid]);
    for (const r of runs) assert.match(r.stdout, new RegExp(`pool race: 2/2 workers ready \\(coordinator ws://127\\.0\\.0\\.1:\\d+, pid ${pid}\\)`));
    const workers = sb.workerPids(pool);
    assert.equal(workers.length, 2);

    const down = await sb.cli(['pool', 'down', pool, '-y']);
    assert.equal(down.code, 0, down.stderr);
    await waitFor('every coordinator and worker of the pool to exit', () => (coordinators(pool).length === 0 && sb.workerPids(pool).length === 0) || undefined);
    assert.ok(!fs.existsSync(path.join(sb.home, 'pools', pool)));
  });

  test('apply waits while a live process holds the pool lock, and breaks a lock whose holder died', async () => {
    const pool = 'locked';
    const lockFile = path.join(sb.home, 'pools', pool, 'pool.lock');
    const held = FileLock.tryAcquire(lockFile, 'this test');
    assert.ok(held);
    const first = sb.spawnCli(['pool', 'apply', sb.file(`${pool}.yaml`, YAML), '--pool', pool, '-y']);
    let stderr = '';
    first.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => first.on('close', resolve));
    await waitFor('apply to wait for the lock', () => stderr.includes(`is being changed by this test (pid ${process.pid}); waiting for it`) || undefined);
    assert.equal(coordinators(pool).length, 0, 'nothing started while the lock is held');
    held.release();
    assert.equal(await exited, 0, stderr);
    assert.equal(coordinators(pool).length, 1);

    const down = await sb.cli(['pool', 'down', pool, '-y']);
    assert.equal(down.code, 0, down.stderr);
    // A holder that died (its pid now names no process) leaves a stale lock: the next apply takes it over.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(lockFile, JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), what: 'a crashed apply', since: new Date().toISOString() }));
    const r = await apply(pool);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(coordinators(pool).length, 1);
    assert.ok(!fs.existsSync(lockFile), 'apply gave the lock back');
    assert.equal((await sb.cli(['pool', 'down', pool, '-y'])).code, 0);
    await waitFor('the coordinator to exit', () => coordinators(pool).length === 0 || undefined);
  });
});
