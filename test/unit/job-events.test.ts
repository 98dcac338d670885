import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobTracker } from '../../extension/core/job-tracker.js';
import {
  EVENT_PREFIX,
  applyEvent,
  applyToJobs,
  applyToWorkers,
  batchFailureLine,
  eventJobId,
  failedAttempt,
  formatEta,
  formatEventLine,
  isTerminal,
  settleBatches,
} from '../../runtime/job-events.js';
import type { JobEvent, JobSummary, WorkerSummary } from '../../runtime/protocol.js';

function summary(over: Partial<JobSummary> = {}): JobSummary {
  return { jobId: '7', pool: 'p', status: 'PENDING', scriptPath: 's.ts', createdAt: '2026-01-01T00:00:00.000Z', batchesTotal: 4, batchesDone: 0, itemsTotal: 8, itemsDone: 0, retries: 0, outputs: ['/out.jsonl'], ...over };
}

function worker(name: string, over: Partial<WorkerSummary> = {}): WorkerSummary {
  return { workerId: name, name, host: 'h', state: 'idle', batches: [], ...over };
}

const progress = (jobId: string, done: number): JobEvent => ({ kind: 'progress', jobId, batchesDone: done, batchesTotal: 4, itemsDone: done * 2, itemsTotal: 8, failed: 0, retrying: 0, itemsPerSec: 2 });
const batch = (jobId: string, index: number, state: 'queued' | 'running' | 'retrying' | 'done' | 'failed', w = 'w1'): JobEvent => ({
  kind: 'batch', jobId, index, start: index * 2, end: index * 2 + 1, state, worker: w, attempt: 1,
  ...(state === 'retrying' || state === 'failed' ? { error: { code: 'SKYBATCH_E_MAPPER', message: 'boom\nat line 3', retryable: true } } : {}),
});

describe('job events', () => {
  it('calls SUCCEEDED, FAILED and CANCELLED terminal, and nothing else', () => {
    for (const s of ['SUCCEEDED', 'FAILED', 'CANCELLED']) assert.equal(isTerminal(s), true, s);
    for (const s of ['PENDING', 'RUNNING', 'STARTING']) assert.equal(isTerminal(s), false, s);
  });

  it('names the job of an event, and none for pool-wide ones', () => {
    assert.equal(eventJobId(progress('3', 1)), '3');
    assert.equal(eventJobId({ kind: 'jobFinished', job: summary({ jobId: '4' }) }), '4');
    assert.equal(eventJobId({ kind: 'worker', worker: worker('w1') }), undefined);
    assert.equal(eventJobId({ kind: 'log', stream: 'info', line: 'x' }), undefined);
  });

  it('writes an event line that starts with the prefix tools look for', () => {
    const e = progress('3', 1);
    const line = formatEventLine(e);
    assert.ok(line.startsWith(EVENT_PREFIX));
    assert.deepEqual(JSON.parse(line.slice(EVENT_PREFIX.length)), e);
  });

  it('takes the counts of progress and turns a pending job running', () => {
    const j = applyEvent(summary(), progress('7', 2));
    assert.deepEqual([j.status, j.batchesDone, j.itemsDone], ['RUNNING', 2, 4]);
  });

  it('counts a retry per retrying batch and leaves other jobs and pool events alone', () => {
    const before = summary({ status: 'RUNNING' });
    const j = applyEvent(applyEvent(before, batch('7', 0, 'retrying')), batch('7', 1, 'done'));
    assert.equal(j.retries, 1);
    assert.equal(before.retries, 0, 'the input is not changed');
    assert.equal(applyEvent(before, progress('8', 3)), before);
    assert.equal(applyEvent(before, { kind: 'worker', worker: worker('w1') }), before);
    assert.equal(applyEvent(before, { kind: 'sample', jobId: '7', start: 0, results: [1] }), before);
  });

  it('takes the coordinator summary on submit and finish, keeping retries seen live', () => {
    const live = applyEvent(summary({ status: 'RUNNING' }), batch('7', 0, 'retrying'));
    const done = applyEvent(live, { kind: 'jobFinished', job: summary({ status: 'SUCCEEDED', batchesDone: 4, itemsDone: 8, retries: 0 }) });
    assert.deepEqual([done.status, done.batchesDone, done.retries], ['SUCCEEDED', 4, 1]);
  });

  it('adds a job to a pool on its submission and folds progress into it', () => {
    let jobs = applyToJobs([summary({ jobId: '1', status: 'SUCCEEDED' })], { kind: 'jobSubmitted', job: summary() });
    assert.deepEqual(jobs.map((j) => j.jobId), ['1', '7']);
    jobs = applyToJobs(jobs, progress('7', 1));
    assert.deepEqual(jobs.map((j) => [j.status, j.batchesDone]), [['SUCCEEDED', 0], ['RUNNING', 1]]);
    assert.equal(applyToJobs(jobs, progress('9', 1)), jobs, 'an unknown job changes nothing');
  });

  it('moves a batch to the worker that runs it and frees the one that held it', () => {
    let ws = [worker('w1', { state: 'busy', jobId: '7', batches: [[0, 1]] }), worker('w2')];
    ws = applyToWorkers(ws, batch('7', 0, 'queued', 'w2'));
    assert.deepEqual(ws.map((w) => [w.name, w.state, w.batches]), [['w1', 'idle', []], ['w2', 'busy', [[0, 1]]]]);
    ws = applyToWorkers(ws, batch('7', 0, 'done', 'w2'));
    assert.deepEqual(ws.map((w) => [w.name, w.state, w.batches]), [['w1', 'idle', []], ['w2', 'idle', []]]);
    const same = applyToWorkers(ws, batch('7', 3, 'done', 'w2'));
    assert.equal(same, ws, 'a batch nobody holds changes nothing');
    ws = applyToWorkers(ws, { kind: 'worker', worker: worker('w3', { state: 'setup' }) });
    assert.deepEqual(ws.map((w) => w.name), ['w1', 'w2', 'w3']);
  });

  it('puts queued, running and retrying batches back to pending when the job ends', () => {
    assert.deepEqual(settleBatches(['done', 'queued', 'running', 'retrying', 'failed', 'pending']), ['done', 'pending', 'pending', 'pending', 'failed', 'pending']);
  });

  it('prints the first line of a failed attempt, and nothing for other events', () => {
    assert.equal(batchFailureLine(batch('7', 1, 'retrying')), 'batch [2, 3] attempt 1 failed, retrying: boom');
    assert.equal(batchFailureLine(batch('7', 1, 'failed')), 'batch [2, 3] attempt 1 failed: boom');
    assert.equal(batchFailureLine(batch('7', 1, 'done')), undefined);
    assert.equal(failedAttempt(batch('7', 1, 'failed'))?.error.message, 'boom\nat line 3');
    assert.equal(failedAttempt(batch('7', 1, 'running')), undefined);
  });

  it('formats the time left', () => {
    assert.deepEqual([formatEta(0, 1), formatEta(5, 0), formatEta(3, 1), formatEta(125, 1), formatEta(7260, 1)], ['0s', '?', '3s', '2m05s', '2h01m']);
  });
});

describe('the notebook job tracker folds the same events', () => {
  it('adopts the submitted job, runs on progress, counts retries and logs failed attempts', () => {
    const t = new JobTracker('p', 0);
    assert.equal(t.handle({ kind: 'jobSubmitted', job: summary() }), true);
    assert.equal(t.handle(progress('8', 1)), false, "another job's event");
    t.handle(progress('7', 1));
    t.handle(batch('7', 1, 'retrying'));
    assert.deepEqual([t.state.jobId, t.state.status, t.state.batchesDone, t.state.retries, t.finished], ['7', 'RUNNING', 1, 1, false]);
    assert.deepEqual(t.state.logs, ['batch [2, 3] attempt 1 failed, retrying: boom']);
    t.handle({ kind: 'jobFinished', job: summary({ status: 'FAILED', retries: 0 }), recoverCommand: 'skybatch recover 7' }, 5);
    assert.deepEqual([t.state.status, t.state.retries, t.state.finishedAt, t.state.recoverCommand, t.finished], ['FAILED', 1, 5, 'skybatch recover 7', true]);
  });
});
