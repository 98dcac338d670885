import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SkybatchError } from '../../formats/common/errors.js';
import { toJsonl, toJsonlBytes } from '../../formats/utils.js';

/** Rows whose strings and nesting hold every byte the comma-to-newline pass must not touch. */
const tricky: unknown[] = [
  { a: 1, b: 'x,y', c: '},{', d: '"quoted", \\ backslash \\", "' },
  { nested: { list: [1, { x: [2, 3] }, []], empty: {} }, s: '[{,}]' },
  {},
  { unicode: 'é ñ 中文 🙂, ,', lone: '\ud800', newline: 'line\nbreak\r\n', tab: '\t' },
  [1, 'two', { three: [3] }],
  { when: new Date(0), gone: undefined, nothing: null, fn: () => 1 },
  { deep: [[[[{ a: '\\' }]]]], end: '\\' },
];

describe('toJsonlBytes', () => {
  it('writes what a JSON.stringify per item writes, byte for byte', () => {
    const want = Buffer.from(toJsonl(tricky, 'w'));
    assert.deepEqual(toJsonlBytes(tricky, 'w'), want);
    for (let i = 0; i < tricky.length; i++) assert.deepEqual(toJsonlBytes([tricky[i]], 'w'), Buffer.from(toJsonl([tricky[i]], 'w')), `item ${i} alone`);
    const many = Array.from({ length: 5000 }, (_, i) => ({ i, s: `r${i},"${'\\'.repeat(i % 3)}` }));
    assert.deepEqual(toJsonlBytes(many, 'w'), Buffer.from(toJsonl(many, 'w')));
    assert.equal(toJsonlBytes([], 'w').length, 0);
  });

  it('goes item by item where a list would write otherwise, and names the item it cannot write', () => {
    const own = { toJSON: () => undefined };
    assert.throws(() => toJsonlBytes([{ a: 1 }, own], 'w'), (e: unknown) => e instanceof SkybatchError && e.code === 'SKYBATCH_E_SERIALIZE' && /w: item 1 cannot be written as JSON/.test(e.message));
    assert.deepEqual(toJsonlBytes([{ a: 1 }, 'text', 5], 'w'), Buffer.from('{"a":1}\n"text"\n5\n'));
    assert.throws(() => toJsonlBytes([{ a: 1 }, undefined], 'w'), /w: item 1 cannot be written as JSON \(it is undefined\)/);
    assert.throws(() => toJsonlBytes([{ a: 1 }, { big: 1n }], 'w'), /w: item 1 cannot be written as JSON: Do not know how to serialize a BigInt/);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    assert.throws(() => toJsonlBytes([{}, {}, loop], 'w'), /w: item 2 cannot be written as JSON: Converting circular structure/);
  });
});
