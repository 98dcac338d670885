import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { agentToMapper, checkFrame, coordinatorToWorker, mapperToAgent, workerMessage } from '../../runtime/protocol-guards.js';

// The per-batch frames are checked by hand before zod (runtime/hot-frames.ts): whatever path
// a frame takes, the receiver gets what zod would give, and a bad frame zod's error.
const schemas = { workerMessage, coordinatorToWorker, agentToMapper, mapperToAgent };
type SchemaName = keyof typeof schemas;

function both(name: SchemaName, frame: object) {
  const schema = schemas[name];
  return { checked: checkFrame(schema, JSON.stringify(frame), 'a test peer'), zod: schema.safeParse(frame) };
}

/** The refusal's message; `code`: a bad job id is a bad value, as in every frame, not a malformed frame. */
function refusal(name: SchemaName, frame: object, code = 'SKYBATCH_E_BAD_FRAME'): string {
  const { checked, zod } = both(name, frame);
  assert.equal(zod.success, false, `zod takes ${JSON.stringify(frame)}`);
  assert.equal(checked.ok, false, `the hand check takes ${JSON.stringify(frame)}`);
  if (checked.ok) throw new Error('unreachable');
  assert.equal(checked.error.code, code);
  return checked.error.message;
}

describe('per-batch frames, checked by hand', () => {
  test('good frames, one batch or several, come out exactly as zod gives them (unknown fields dropped)', () => {
    const good: [SchemaName, object][] = [
      ['workerMessage', { type: 'batchStarted', jobId: '7', index: 0, attempt: 1 }],
      ['workerMessage', { type: 'batchDone', jobId: '7', index: 3, attempt: 2, items: 1, extra: 'dropped' }],
      ['workerMessage', { type: 'batchDone', jobId: '7', index: 3, attempt: 2, items: 1, sample: [{ a: 1 }, 'x'] }],
      ['workerMessage', { type: 'batchDone', jobId: '7', index: 3, attempt: 2, items: 0, deadLetters: [{ index: 3, input: 1, error: 'boom', code: 'SKYBATCH_E_ITEM_FAILED' }] }],
      [
        'workerMessage',
        {
          type: 'batchReports',
          jobId: '12',
          reports: [
            { type: 'batchStarted', index: 4, attempt: 1, stray: true },
            { type: 'batchDone', index: 4, attempt: 1, items: 1, sample: [1] },
            { type: 'batchReleased', index: 5, attempt: 1 },
            { type: 'batchFailed', index: 6, attempt: 1, error: { code: 'SKYBATCH_E_MAPPER', message: 'boom', retryable: true } },
          ],
        },
      ],
      ['coordinatorToWorker', { type: 'batch', jobId: '7', index: 1, start: 10, end: 19, attempt: 1, wantSample: false }],
      [
        'coordinatorToWorker',
        {
          type: 'batches',
          jobId: '7',
          batches: [
            { index: 1, start: 10, end: 19, attempt: 1, wantSample: true },
            { index: 2, start: 20, end: 29, attempt: 3, wantSample: false, more: 1 },
          ],
        },
      ],
      ['agentToMapper', { type: 'batches', batches: [{ index: 1, start: 10, end: 19, attempt: 1, wantSample: false }] }],
      [
        'agentToMapper',
        {
          type: 'batches',
          batches: [
            { index: 1, start: 10, end: 19, attempt: 1, wantSample: true },
            { index: 2, start: 20, end: 29, attempt: 2, wantSample: false, more: 1 },
          ],
        },
      ],
      ['mapperToAgent', { type: 'batchStarted', index: 1, attempt: 1 }],
      ['mapperToAgent', { type: 'batchDone', index: 1, attempt: 1, items: 10 }],
    ];
    for (const [name, frame] of good) {
      const { checked, zod } = both(name, frame);
      assert.ok(zod.success, JSON.stringify(frame));
      assert.ok(checked.ok, `${JSON.stringify(frame)}: ${checked.ok ? '' : checked.error.message}`);
      assert.deepEqual(checked.msg, zod.data);
    }
  });

  test('a bad multi-batch report frame is refused naming the report and field', () => {
    const reports = (...r: object[]) => ({ type: 'batchReports', jobId: '12', reports: r });
    assert.match(refusal('workerMessage', reports({ type: 'batchStarted', index: 0, attempt: 1 }, { type: 'batchDone', index: 1, attempt: 1, items: -1 })), /bad 'batchReports' message: reports\.1\.items: .*, got -1/);
    assert.match(refusal('workerMessage', reports({ type: 'batchDone', index: 1.5, attempt: 1, items: 1 })), /reports\.0\.index: .*, got 1\.5/);
    assert.match(refusal('workerMessage', reports({ type: 'batchDone', index: 1, attempt: 1, items: 1, sample: 'no' })), /reports\.0\.sample: /);
    assert.match(refusal('workerMessage', reports({ type: 'batchExploded', index: 1, attempt: 1 })), /reports\.0\.type: /);
    assert.match(refusal('workerMessage', reports()), /reports: must list at least one report/);
    assert.match(refusal('workerMessage', { type: 'batchReports', jobId: 'x/../1', reports: [{ type: 'batchStarted', index: 0, attempt: 1 }] }, 'SKYBATCH_E_BAD_OPTION'), /jobId must be decimal digits/);
    assert.match(refusal('workerMessage', { type: 'batchReports', jobId: '1', reports: { type: 'batchStarted', index: 0, attempt: 1 } }), /reports: /);
    assert.match(refusal('workerMessage', { type: 'batchDone', jobId: '1', index: 0, attempt: -1, items: 1 }), /bad 'batchDone' message: attempt: /);
    assert.match(refusal('workerMessage', { type: 'batchStarted', jobId: 1, index: 0, attempt: 1 }, 'SKYBATCH_E_BAD_OPTION'), /jobId /);
  });

  test('a bad multi-batch assignment is refused naming the batch and field', () => {
    const batches = (...b: object[]) => ({ type: 'batches', jobId: '3', batches: b });
    const ok = { index: 0, start: 0, end: 0, attempt: 1, wantSample: false };
    assert.match(refusal('coordinatorToWorker', batches(ok, { ...ok, end: '9' })), /bad 'batches' message: batches\.1\.end: .*, got "9"/);
    assert.match(refusal('coordinatorToWorker', batches({ ...ok, wantSample: undefined })), /batches\.0\.wantSample: /);
    assert.match(refusal('coordinatorToWorker', batches()), /batches: must list at least one batch/);
    assert.match(refusal('agentToMapper', { type: 'batches', batches: [{ ...ok, start: -1 }] }), /batches\.0\.start: /);
    assert.match(refusal('agentToMapper', { type: 'batch', ...ok }), /unknown type "batch"; expected one of: start, batches, end, release, ping/);
    assert.match(refusal('agentToMapper', { type: 'batches', batches: [ok, { ...ok, attempt: 0.5 }] }), /bad 'batches' message: batches\.1\.attempt: /);
    assert.match(refusal('agentToMapper', { type: 'batches', batches: [] }), /batches: must list at least one batch/);
    assert.match(refusal('mapperToAgent', { type: 'batchDone', index: 0, attempt: 1 }), /items: /);
  });
});
