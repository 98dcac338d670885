import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Journal, JournalRecord, readJournal } from '../../runtime/store/job-store.js';
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
});
