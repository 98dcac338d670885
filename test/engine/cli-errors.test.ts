import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { CLI, Sandbox } from '../harness.js';

/**
 * Runs the CLI as the extension does: a pipe on fd 3 named by SKYBATCH_ERROR_FD, on which
 * the failure arrives as JSON; stderr stays for people.
 */
function runWithChannel(sb: Sandbox, args: string[]): Promise<{ code: number | null; stderr: string; channel: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], { cwd: sb.dir, env: sb.env({ SKYBATCH_ERROR_FD: '3' }), stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let channel = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d));
  (proc.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => (channel += d));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, stderr, channel })));
}

describe('the CLI reports its failure as a structured error', () => {
  const sb = new Sandbox('cli-errors');
  after(() => sb.cleanup());

  it('a control error crosses with its code and context on the error channel', async () => {
    const r = await runWithChannel(sb, ['jobs', 'cancel', '4242']);
    assert.equal(r.code, 1);
    const lines = r.channel.trim().split('\n');
    assert.equal(lines.length, 1, r.channel);
    const e = JSON.parse(lines[0]) as { code: string; message: string; retryable: boolean; context?: { jobId?: string } };
    assert.equal(e.code, 'SKYBATCH_E_JOB_NOT_FOUND');
    assert.equal(e.message, 'job 4242 not found');
    assert.equal(e.context?.jobId, '4242');
    assert.equal(e.retryable, false);
    // people still read it on stderr
    assert.match(r.stderr, /error \[SKYBATCH_E_JOB_NOT_FOUND\]: job 4242 not found/);
  });

  it("a script run by `skybatch run` reports its uncaught error there too: a SkybatchError's code, else SKYBATCH_E_SCRIPT", async () => {
    sb.file('coded.ts', "import { SkybatchError } from 'skybatch';\nawait Promise.resolve();\nthrow new SkybatchError('SKYBATCH_E_BAD_OPTION', 'batchSize is wrong', { context: { field: 'batchSize' } });\n");
    sb.file('plain.ts', "const o: { f?: () => void } = {};\nawait new Promise((r) => setTimeout(r, 10));\no.f!();\n");
    const coded = await runWithChannel(sb, ['run', 'coded.ts']);
    assert.equal(coded.code, 1);
    const c = JSON.parse(coded.channel) as { code: string; message: string; stack: string; context: { field: string } };
    assert.equal(c.code, 'SKYBATCH_E_BAD_OPTION');
    assert.equal(c.message, 'batchSize is wrong');
    assert.equal(c.context.field, 'batchSize');
    assert.match(c.stack, /coded\.ts:3:/, 'the stack names the script line');

    const plain = await runWithChannel(sb, ['run', 'plain.ts']);
    assert.equal(plain.code, 1);
    const p = JSON.parse(plain.channel) as { code: string; message: string; stack: string };
    assert.equal(p.code, 'SKYBATCH_E_SCRIPT');
    assert.match(p.message, /^TypeError: /);
    assert.match(p.stack, /plain\.ts:3:/);
  });

  it('nothing is written on the channel when the command succeeds, and no channel is needed', async () => {
    const ok = await runWithChannel(sb, ['jobs', 'queue']);
    assert.equal(ok.code, 0);
    assert.equal(ok.channel, '');
    const without = await sb.cli(['jobs', 'cancel', '4242']);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /SKYBATCH_E_JOB_NOT_FOUND/);
  });
});
