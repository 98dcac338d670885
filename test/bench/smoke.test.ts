import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT } from '../harness.js';

/**
 * `npm run bench` at its smoke size, so the bench keeps working (issue 13: "a short smoke of
 * the bench script may run in CI"). Every section but remote runs with its peers (BullMQ on
 * Redis, the hand loops, the plain processes, the load generator); what is checked is that
 * each one ran and what the bench compares byte for byte was identical, never a timing.
 */
describe('the bench, smoke size', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skybatch-bench-smoke-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('every section but remote runs with its peers and reports figures', { timeout: 10 * 60_000 }, async () => {
    const json = path.join(dir, 'bench.json');
    const proc = spawn(process.execPath, [path.join(ROOT, 'out', 'bench', 'run.js'), '--smoke', '--json', json], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
    assert.equal(code, 0, out.slice(-6000));

    const { results } = JSON.parse(fs.readFileSync(json, 'utf8')) as { results: Record<string, Record<string, unknown> | undefined> };
    for (const section of ['dispatch', 'python', 'bullmq', 'double', 'cpu', 'failure', 'scale', 'scaleMemory']) assert.ok(results[section], `${section}: no figures\n${out.slice(-3000)}`);
    assert.equal(results.python!.failed, undefined, 'the Python no-op mapper ran');
    // redis-server is installed by the bench when it runs as root (as CI does)
    if (process.getuid?.() === 0) assert.equal(results.bullmq!.skipped, undefined, 'BullMQ ran');
    assert.deepEqual(results.double!.identical, { hand: true, split: true }, 'the job and both hand loops wrote the same bytes');
    const cpu = results.cpu as { speedup: number; plain: { speedup: number } };
    assert.ok(cpu.speedup > 0 && cpu.plain.speedup > 0, JSON.stringify(cpu));
    assert.equal((results.scale as { status?: string }).status, 'SUCCEEDED', JSON.stringify(results.scale).slice(0, 2000));
    assert.doesNotMatch(out, /section \w+ failed/);
  });
});
