import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRunSettings } from '../../extension/core/run-settings.js';
import { Dataset } from '../../runtime/client/dataset.js';
import { JsonReader } from '../../formats/json-reader.js';
import { JsonWriter } from '../../formats/json-writer.js';
import { remoteFunction } from '../../runtime/mapper-api.js';
import { DEFAULT_BATCH_TIMEOUT_MS, POOL_NAME_PATTERN, jobOptionProblems, withDefaults } from '../../runtime/job-options.js';
import { checkFrame, clientMessage } from '../../runtime/protocol-guards.js';
import type { JobRequest } from '../../runtime/protocol.js';
import { assertPoolName } from '../../runtime/store/pool-store.js';

const mapper = remoteFunction(async function unitMapper() {});
const writer = new JsonWriter('/tmp/skybatch-unit-never-written.jsonl');

/** What `Dataset.map` says of `options` (it checks them before bundling anything), or undefined when it accepts them. */
async function mapSays(options: Record<string, unknown>): Promise<string | undefined> {
  const ds = new Dataset(new JsonReader('/tmp/skybatch-unit-never-read.jsonl'));
  try {
    await ds.map(mapper, { output: writer, script: '/nonexistent/skybatch-unit-job.ts', ...options } as never);
  } catch (err) {
    const e = err as { code?: string; message: string };
    if (e.code === 'SKYBATCH_E_BAD_OPTION' && e.message.startsWith('map(): option')) return e.message;
  }
  return undefined;
}

/** What the coordinator's check of a submitted job says, or undefined when it accepts it. */
function coordinatorSays(options: Record<string, unknown>): string | undefined {
  const job: JobRequest = {
    bundleHash: 'a'.repeat(64), mapperId: 'm#0', scriptPath: '/s.ts', reader: { type: 'jsonl', path: '/in', options: {} },
    writers: [{ type: 'jsonl', path: '/out', options: {} }], batchSize: 2, total: 4, env: {}, argv: [], cwd: '/', ...options,
  } as JobRequest;
  const r = checkFrame(clientMessage, { type: 'submit', reqId: 1, job }, 'a client');
  return r.ok ? undefined : r.error.message;
}

/** What the notebook's run cell says, or undefined when it accepts it. */
function runCellSays(yaml: string): string | undefined {
  return parseRunSettings(yaml).problems[0]?.message;
}

describe('job options', () => {
  it('fills the defaults the coordinator runs with', () => {
    assert.deepEqual(withDefaults({ batchSize: 2 }), { batchSize: 2, maxAttempts: 4, retryBaseMs: 1000, batchTimeoutMs: DEFAULT_BATCH_TIMEOUT_MS, onItemError: 'fail' });
    assert.equal(withDefaults({ maxAttempts: 2 }).maxAttempts, 2);
  });

  it('names every bad option, with the value given', () => {
    const problems = jobOptionProblems({ poolName: 'a b', batchSize: 0, onItemError: 'ignore' });
    assert.deepEqual(problems.map((p) => [p.field, p.got]), [['poolName', 'a b'], ['batchSize', 0], ['onItemError', 'ignore']]);
  });

  it('refuses a last retry more than a day away', () => {
    assert.match(jobOptionProblems({ poolName: 'p', batchSize: 1, maxAttempts: 60 })[0].message, /last retry wait more than 24 h/);
  });

  it('has one pool name rule for pools, map() and the run cell', () => {
    for (const name of ['p', 'my-pool_1.x', 'a'.repeat(63)]) {
      assert.ok(POOL_NAME_PATTERN.test(name), name);
      assert.doesNotThrow(() => assertPoolName(name));
    }
    for (const name of ['', '-p', 'a b', '../x', 'a'.repeat(64)]) {
      assert.ok(!POOL_NAME_PATTERN.test(name), name);
      assert.throws(() => assertPoolName(name));
      assert.match(runCellSays(`pool: ${JSON.stringify(name)}\nbatchSize: 2`) ?? '', /'pool' must be a pool name/, name);
    }
  });

  it('map(), the coordinator and the run cell refuse the same values', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['batchSize', 0, /positive integer/],
      ['batchSize', 1.5, /positive integer/],
      ['batchSize', 2_000_000, /at most 1000000/],
      ['maxAttempts', 0, /positive integer/],
      ['retryBaseMs', -1, /must not be negative/],
      ['batchTimeoutMs', 5, /at least 100 ms/],
      ['onItemError', 'ignore', /'fail' or 'skip'/],
      ['activateEnv', 5, /shell command/],
    ];
    for (const [field, value, why] of cases) {
      const opts = { poolName: 'p', batchSize: 2, [field]: value };
      assert.match((await mapSays(opts)) ?? 'accepted', new RegExp(`option '${field}' .*${why.source}`), `map() ${field}=${value}`);
      assert.match(coordinatorSays({ [field]: value }) ?? 'accepted', new RegExp(`${field} .*${why.source}`), `coordinator ${field}=${value}`);
      const yaml = `pool: p\n${field === 'batchSize' ? '' : 'batchSize: 2\n'}${field}: ${JSON.stringify(value)}`;
      assert.match(runCellSays(yaml) ?? 'accepted', new RegExp(`'${field}' .*${why.source}`), `run cell ${field}=${value}`);
    }
  });

  it('map(), the coordinator and the run cell accept the same good values', async () => {
    const good = { batchSize: 3, maxAttempts: 2, retryBaseMs: 0, batchTimeoutMs: 100, onItemError: 'skip', activateEnv: 'true' };
    assert.equal(coordinatorSays(good), undefined);
    assert.equal(runCellSays(`pool: p\n${Object.entries(good).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n')}`), undefined);
    // Once its options pass, map() goes on to bundle the (missing) script: it fails there, on something else.
    assert.equal(await mapSays({ poolName: 'p', ...good }), undefined);
  });
});
