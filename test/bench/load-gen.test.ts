import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runScale } from '../../bench/load-gen.js';

describe('the bench load generator', () => {
  test('simulated workers speaking the worker protocol finish a job on a real coordinator, across a SIGKILL and restart of the coordinator and a frozen event subscriber', async () => {
    const lines: string[] = [];
    const r = await runScale({ workers: 4, batches: 1500, delayMs: 50, procs: 2, pauseSeconds: 0.3, restart: true, maxSeconds: 120, log: (l) => lines.push(l) });
    assert.equal(r.status, 'SUCCEEDED', lines.join('\n'));
    assert.ok(r.restart, `the coordinator was restarted mid-job:\n${lines.join('\n')}`);
    assert.ok(r.journalMbEnd > 0, 'the job has a journal');
    assert.ok(r.paused, 'a subscriber was frozen');
    assert.ok(r.rss.series.length > 0 && r.rss.peak > 0, 'the coordinator RSS was sampled');
  });
});
