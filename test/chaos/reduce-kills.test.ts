import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox, jsonl, listFiles, waitFor } from '../harness.js';

const POOL = 'reducechaos';
const ITEMS = 40;
const ROUNDS = 4;
const rows = Array.from({ length: ITEMS }, (_, i) => ({ text: `item-${i}`, n: i }));
const expectedA = jsonl(rows.map((r) => ({ text: r.text.split('').reverse().join('') })));
const expectedB = jsonl(rows.map((r) => ({ square: r.n ** 2 })));

/** Pids of this sandbox's reduce processes for `jobId` (any job when ''), found by command line and SKYBATCH_HOME. */
function reducePids(sb: Sandbox, jobId: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (!cmd.some((a) => a.endsWith('reduce-process.js')) || (jobId && !cmd.includes(jobId))) continue;
      if (fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0').includes(`SKYBATCH_HOME=${sb.home}`)) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

describe('chaos: the coordinator dies during reduce, the outputs do not change', () => {
  const sb = new Sandbox('reducechaos');
  before(async () => {
    await sb.applyPool(POOL, 'pool:\n  workers: 2\n');
    sb.file('in.jsonl', jsonl(rows));
  });
  after(async () => {
    for (const pid of reducePids(sb, '')) process.kill(pid, 'SIGKILL'); // an orphan left by a failed round
    await sb.cleanup();
  });

  // Three outputs: a JsonWriter, a custom writer whose reduce and cleanup take a while (so
  // kills land in every phase: before, between and after the publications, mid-cleanup),
  // and another JsonWriter.
  const job = (name: string) =>
    sb.file(
      `${name}.ts`,
      `import * as sky from 'skybatch';
class SlowWriter extends sky.OutputWriter {
  uploadBatch(): string {
    return this.path;
  }
  override async reduceResults(): Promise<void> {
    for (let i = 0; i < 30; i++) await new Promise((r) => setTimeout(r, 20));
  }
  override async cleanup(): Promise<void> {
    for (let i = 0; i < 30; i++) await new Promise((r) => setTimeout(r, 20));
  }
}
sky.registry.OUTPUT_WRITER_REGISTRY.register('slow', SlowWriter);
const mapper = sky.remoteFunction(async function mapper() {
  for await (const batch of sky.load()) {
    await sky.saveResults(batch.map((x) => ({ text: String(x.text).split('').reverse().join(''), square: Number(x.n) ** 2 })));
  }
});
const ds = new sky.Dataset(new sky.JsonReader(${JSON.stringify(path.join(sb.dir, 'in.jsonl'))}));
const dir = ${JSON.stringify(path.join(sb.dir, name))};
const job = await ds.map(mapper, {
  poolName: ${JSON.stringify(POOL)},
  batchSize: 2,
  stream: false,
  output: [new sky.JsonWriter(dir + '/a.jsonl', { column: 'text' }), new SlowWriter(dir + '/slow/'), new sky.JsonWriter(dir + '/b.jsonl', { column: 'square' })],
});
console.log('RESULT', job.jobId);
`,
    );

  test(`SIGKILL of the coordinator (and sometimes its reduce process) at a random moment of the reduce, ${ROUNDS} times: every job SUCCEEDS with exact outputs`, async (t) => {
    for (let round = 0; round < ROUNDS; round++) {
      const name = `round${round}`;
      const r = await sb.run(job(name));
      assert.equal(r.code, 0, r.stderr);
      const jobId = /RESULT (\d+)/.exec(r.stdout)![1];
      const log = path.join(sb.home, 'jobs', jobId, 'job.log');
      await waitFor('the reduce to start', () => (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('reducing outputs') ? true : undefined), 60_000);
      const delay = Math.floor(Math.random() * 2000);
      const both = Math.random() < 0.5;
      await new Promise((res) => setTimeout(res, delay));
      const reducers = reducePids(sb, jobId);
      process.kill(sb.coordinator(POOL).pid, 'SIGKILL');
      if (both) for (const pid of reducers) process.kill(pid, 'SIGKILL');
      t.diagnostic(`round ${round}: killed the coordinator${both ? ` and reduce process ${reducers.join(', ') || '(already done)'}` : ''} ${delay} ms into the reduce`);

      const apply = await sb.cli(['pool', 'apply', path.join(sb.dir, `${POOL}.pool.yaml`), '--pool', POOL, '-y']);
      assert.equal(apply.code, 0, apply.stderr);
      const status = await waitFor(
        `job ${jobId} to end`,
        async () => new RegExp(`^${jobId}\\s+\\S+\\s+(SUCCEEDED|FAILED|CANCELLED)`, 'm').exec((await sb.cli(['jobs', 'queue'])).stdout)?.[1],
        60_000,
      );
      assert.equal(status, 'SUCCEEDED', `round ${round}: ${fs.readFileSync(log, 'utf8')}`);
      const dir = path.join(sb.dir, name);
      assert.equal(fs.readFileSync(path.join(dir, 'a.jsonl'), 'utf8'), expectedA, `round ${round}: a.jsonl`);
      assert.equal(fs.readFileSync(path.join(dir, 'b.jsonl'), 'utf8'), expectedB, `round ${round}: b.jsonl`);
      assert.deepEqual(listFiles(dir), ['a.jsonl', 'b.jsonl'], `round ${round}: no temp or half-written files are left`);
    }
  });
});
