import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { CoordinatorClient } from '../../runtime/client/connection.js';
import { Sandbox, jsonl, mapperScript, readJsonl, waitFor } from '../harness.js';

describe('resizing a pool', () => {
  const sb = new Sandbox('shrink');
  after(() => sb.cleanup());

  test('pool apply with fewer workers lets a worker holding a batch finish it before it is stopped', async () => {
    await sb.applyPool('shrink', 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(Array.from({ length: 6 }, (_, i) => ({ text: `t${i}` }))));
    const script = sb.file(
      'slow.ts',
      mapperScript({
        input: path.join(sb.dir, 'in.jsonl'),
        output: path.join(sb.dir, 'out.jsonl'),
        pool: 'shrink',
        batchSize: 1,
        body: 'await new Promise((r) => setTimeout(r, 1500)); await sky.saveResults(batch.map((x) => ({ text: x.text, worker: process.env.SKYBATCH_WORKER })));',
      }),
    );
    const run = sb.run(script);
    const c = sb.coordinator('shrink');
    const client = await CoordinatorClient.connect(c.url, c.token);
    try {
      const held = await waitFor(
        'local-1 to hold a batch',
        async () => {
          const batches = (await client.request({ type: 'status' })).workers.find((w) => w.name === 'local-1')?.batches;
          return batches?.length ? batches : undefined;
        },
        20_000,
      );
      const leaving = sb.workerPids('shrink');
      await sb.applyPool('shrink', 'pool:\n  workers: 1\n');
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      const out = readJsonl(path.join(sb.dir, 'out.jsonl')) as { text: string; worker: string }[];
      assert.deepEqual(
        out.map((x) => x.text),
        ['t0', 't1', 't2', 't3', 't4', 't5'],
      );
      for (const [start] of held) assert.equal(out[start].worker, 'local-1', `batch ${start}, held by local-1 when the pool shrank, was finished by it`);
      const [job] = (await client.request({ type: 'status' })).jobs;
      assert.equal(job.retries, 0, 'no batch was lost to the shrink');
      const log = fs.readFileSync(path.join(sb.home, 'jobs', job.jobId, 'job.log'), 'utf8');
      assert.doesNotMatch(log, /was lost|WORKER_LOST/);
      await waitFor('one worker left', async () => {
        const s = await client.request({ type: 'status' });
        return s.workers.length === 1 && s.backend?.workers.length === 1 && sb.workerPids('shrink').length === 1 ? s : undefined;
      });
      assert.equal(leaving.length, 2);
    } finally {
      client.close();
    }
  });
});
