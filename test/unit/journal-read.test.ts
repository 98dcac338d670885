import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Journal } from '../../runtime/store/journal.js';
import { JournalRecord, appendJournalRecord, readJournal } from '../../runtime/store/job-store.js';
import { JournalFold } from '../../runtime/store/journal-fold.js';
import { jobDir } from '../../runtime/store/pool-store.js';
import { useTempHome } from './spec.js';

let nextId = 1;

function newJob(): string {
  const id = String(nextId++);
  fs.mkdirSync(jobDir(id), { recursive: true });
  return id;
}

const file = (id: string) => path.join(jobDir(id), 'journal.jsonl');

/** The state a fold of the whole file as one string gives, and what `readJournal` gives, side by side. */
function both(id: string) {
  const whole = new JournalFold();
  whole.foldText(fs.readFileSync(file(id), 'utf8'));
  const plain = (s: ReturnType<typeof readJournal>) => ({ ...s, committed: [...s.committed], commits: [...s.commits], winners: s.winners });
  return { read: plain(readJournal(id)), whole: plain(whole.toState()) };
}

/**
 * Records whose lines are long and full of multi-byte characters (dead letters carry the
 * input), so that the pieces a journal is read in end inside lines and inside characters.
 */
function records(n: number, deadEvery = 11): JournalRecord[] {
  const out: JournalRecord[] = [{ e: 'status', status: 'RUNNING', at: 'T0' }];
  for (let i = 0; i < n; i++) {
    out.push({ e: 'commit', i, s: 3 * i, x: 3 * i + 2, a: 1 + (i % 2), w: `wörker-${i % 7}`, n: i % deadEvery === 0 ? 2 : 3 });
    if (i % deadEvery === 0) out.push({ e: 'dead', d: [{ index: 3 * i + 2, input: `é🙂${'ü'.repeat(1 + ((i * 7919) % 40_000))}`, error: 'bad ✗', code: 'SKYBATCH_E_ITEM_FAILED' }] });
  }
  return out;
}

describe('reading a journal', () => {
  useTempHome();

  it('folds lines that span the pieces it is read in, multi-byte characters included, as one read would', () => {
    const id = newJob();
    fs.writeFileSync(file(id), records(400).map((r) => JSON.stringify(r)).join('\n') + '\n');
    assert.ok(fs.statSync(file(id)).size > 1 << 20);
    const { read, whole } = both(id);
    assert.equal(read.deadLetters.length, 37);
    assert.deepEqual(read, whole);
  });

  it('folds a whole last record without its newline, and skips a torn one', () => {
    const whole = newJob();
    const rs = records(30);
    fs.writeFileSync(file(whole), rs.map((r) => JSON.stringify(r)).join('\n'));
    assert.equal(readJournal(whole).committed.has(29), true);
    assert.deepEqual(both(whole).read, both(whole).whole);
    const torn = newJob();
    const text = rs.map((r) => JSON.stringify(r)).join('\n');
    fs.writeFileSync(file(torn), text.slice(0, text.length - 3));
    assert.deepEqual(both(torn).read, both(torn).whole);
    assert.equal(readJournal(torn).committed.has(29), false);
  });

  it('compacts from what it reads since its last compaction, long lines included', () => {
    const id = newJob();
    const rs = records(60_000, 1000);
    const j = new Journal(id);
    for (const r of rs) j.append(r);
    j.close(true);
    const lines = fs.readFileSync(file(id), 'utf8').split('\n').filter(Boolean);
    assert.equal((JSON.parse(lines[0]) as { e: string }).e, 'snap');
    assert.ok(lines.length < rs.length / 2, `${lines.length} lines after compaction`);
    const plain = newJob();
    fs.writeFileSync(file(plain), rs.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const got = readJournal(id);
    const want = readJournal(plain);
    assert.deepEqual([...got.commits], [...want.commits]);
    assert.deepEqual(got.deadLetters, want.deadLetters);
    assert.equal(got.itemsDone, want.itemsDone);
  });

  /**
   * What a restarted coordinator does: `readJournal`, then a `Journal` that takes over its
   * fold and compacts from there. The result must hold every record once, whatever came
   * before the restart, what another process (the reduce step) appended between the read
   * and the new journal, and what came after.
   */
  function continueAfterRead(first: JournalRecord[], between: JournalRecord[], after: JournalRecord[], lastNewline: boolean) {
    const id = newJob();
    const old = new Journal(id);
    const half = Math.floor(first.length / 2);
    for (const r of first.slice(0, half)) old.append(r);
    old.compact(); // a snapshot line first, as a journal compacted before the crash, then records
    for (const r of first.slice(half)) old.append(r);
    old.close();
    if (!lastNewline) {
      const text = fs.readFileSync(file(id), 'utf8');
      fs.writeFileSync(file(id), text.slice(0, -1));
    }
    const replay = readJournal(id);
    for (const r of between) appendJournalRecord(id, r);
    const j = new Journal(id, replay);
    j.reserve(first.length + after.length);
    for (const r of after) j.append(r);
    j.compact();
    for (const r of after.slice(0, 3)) if (r.e === 'commit') j.append({ ...r, a: 99 }); // a later commit of a batch loses
    j.close();
    const plain = newJob();
    fs.writeFileSync(file(plain), [...first, ...between, ...after].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const got = readJournal(id);
    const want = readJournal(plain);
    assert.deepEqual([...got.commits], [...want.commits]);
    assert.deepEqual(got.deadLetters, want.deadLetters);
    assert.deepEqual(got.failures, want.failures);
    assert.deepEqual(got.splits, want.splits);
    assert.equal(got.itemsDone, want.itemsDone);
    assert.equal(got.retries, want.retries);
    assert.equal(got.loads, want.loads);
    assert.equal(got.status, want.status);
    assert.deepEqual(got.published, want.published);
  }

  const fail = (i: number): JournalRecord => ({ e: 'fail', i, a: 1, w: 'w1', code: 'SKYBATCH_E_MAPPER_CRASHED' });

  it('continued by the journal of a restarted job, keeps every record once through its compactions', () => {
    const rs = records(3000, 100);
    const first = [...rs.slice(0, 2000), fail(2500), { e: 'split', i: 2600, base: 5000 } as JournalRecord];
    const between: JournalRecord[] = [fail(2700), { e: 'status', status: 'RUNNING', at: 'T1' }];
    continueAfterRead(first, between, rs.slice(2000), true);
  });

  it('continued by the journal of a restarted job whose last record lacks its newline, keeps it once', () => {
    const rs = records(3000, 100);
    continueAfterRead([...rs.slice(0, 2000), fail(2100)], [fail(2200)], rs.slice(2000), false);
  });

  it('continued after a record published by another process, keeps that record', () => {
    const rs = records(200, 50);
    const published: JournalRecord = { e: 'published', at: 'T2', outputs: [] };
    continueAfterRead(rs, [published], [], true);
  });

  it('compacts what another process appended among its own records, and its own records once', () => {
    const id = newJob();
    const rs = records(3000, 100);
    const j = new Journal(id);
    j.reserve(rs.length);
    for (const r of rs.slice(0, 1000)) j.append(r);
    j.compact();
    for (const r of rs.slice(1000, 2000)) j.append(r);
    j.flush();
    const foreign: JournalRecord[] = [fail(2500), { e: 'published', at: 'T3', outputs: [] }];
    for (const r of foreign) appendJournalRecord(id, r);
    for (const r of rs.slice(2000)) j.append(r);
    j.compact();
    j.append(fail(2900));
    j.compact();
    j.close();
    const plain = newJob();
    fs.writeFileSync(file(plain), [...rs.slice(0, 2000), ...foreign, ...rs.slice(2000), fail(2900)].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const got = readJournal(id);
    const want = readJournal(plain);
    assert.deepEqual([...got.commits], [...want.commits]);
    assert.deepEqual(got.deadLetters, want.deadLetters);
    assert.deepEqual(got.failures, want.failures);
    assert.equal(got.retries, want.retries);
    assert.equal(got.itemsDone, want.itemsDone);
    assert.equal(got.loads, want.loads);
    assert.equal(fs.readFileSync(file(id), 'utf8').trim().split('\n').length, 1);
  });
});
