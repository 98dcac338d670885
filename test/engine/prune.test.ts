import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pruneEntry, type FormatRoot } from '../../runtime/client/prune.js';

const FILE = '/project/job.ts';

/** The 1-based line and column of the first `needle` in `text`, as a stack frame would print it. */
function siteOf(text: string, needle: string): string {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, `${needle} is in the script`);
  const before = text.slice(0, at).split('\n');
  return `${FILE}:${before.length}:${before[before.length - 1].length + 1}`;
}

function prune(source: string, mapper: { name: string; at: string }, formats: FormatRoot[] = []) {
  return pruneEntry(FILE, source, { name: mapper.name, site: [siteOf(source, mapper.at)] }, formats);
}

/** Non-blank lines of the pruned code, trimmed. */
function kept(code: string): string[] {
  return code
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== ';');
}

describe('pruning the entry script to what workers run', () => {
  const script = `import * as fs from 'node:fs';
import * as sky from 'skybatch';
import { helper } from './lib.js';
import 'reflect-metadata';
import { unused } from 'some-package';
type Row = { text: string };
const SUFFIX = process.env.SUFFIX ?? '!';
fs.writeFileSync('manifest.json', '{}');
const sample = [1, 2, 3].sort(() => Math.random() - 0.5);
function shout(s: string): string { return helper(s).toUpperCase() + SUFFIX; }
const double = sky.remoteFunction(async function double() {
  for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ out: shout(String((x as Row).text)) })));
});
const ds = new sky.Dataset(new sky.JsonReader('in.jsonl'));
await ds.map(double, { poolName: 'p', batchSize: 2, output: new sky.JsonWriter('out.jsonl') });
console.log(sample, unused);
`;

  test('keeps the mapper, the declarations it references and their imports; blanks the rest in place', () => {
    const r = prune(script, { name: 'double', at: 'remoteFunction' });
    assert.equal(r.code.length, script.length, 'same length');
    assert.equal(r.code.split('\n').length, script.split('\n').length, 'same lines');
    assert.deepEqual(kept(r.code), [
      `import * as sky from 'skybatch';`,
      `import { helper } from './lib.js';`,
      `import 'reflect-metadata';`,
      `type Row = { text: string };`,
      `const SUFFIX = process.env.SUFFIX ?? '!';`,
      `function shout(s: string): string { return helper(s).toUpperCase() + SUFFIX; }`,
      `const double = sky.remoteFunction(async function double() {`,
      `for await (const batch of sky.load()) await sky.saveResults(batch.map((x) => ({ out: shout(String((x as Row).text)) })));`,
      `});`,
    ]);
    // every kept token is where it was
    const a = script.split('\n');
    r.code.split('\n').forEach((line, i) => {
      if (line.trim() && line.trim() !== ';') assert.equal(line, a[i]);
    });
  });

  test('a mapper written inside the map() call is kept alone, at its own columns', () => {
    const src = `import * as sky from 'skybatch';
const N = 3;
const job = await new sky.Dataset(new sky.JsonReader('in.jsonl')).map(sky.remoteFunction(async () => {
  for await (const b of sky.load()) await sky.saveResults(b.map(() => ({ n: N })));
}), { poolName: 'p', batchSize: 1, output: new sky.JsonWriter('o.jsonl') });
console.log(job.jobId);
`;
    const r = prune(src, { name: 'anonymous', at: 'remoteFunction' });
    const lines = r.code.split('\n');
    assert.equal(lines[2].indexOf('sky.remoteFunction('), src.split('\n')[2].indexOf('sky.remoteFunction('));
    assert.match(lines[2], /^;\s+sky\.remoteFunction\(async \(\) => \{$/);
    assert.match(lines[4], /^\}\)\s+;$/);
    assert.ok(!r.code.includes('Dataset') && !r.code.includes('console'));
    assert.ok(r.code.includes('const N = 3;'));
  });

  test('same-named mappers: only the one of the job is kept', () => {
    const src = `import * as sky from 'skybatch';
const a = sky.remoteFunction(async function m() { for await (const b of sky.load()) await sky.saveResults(b.map(() => ({ v: 'a' }))); });
const b = sky.remoteFunction(async function m() { for await (const b of sky.load()) await sky.saveResults(b.map(() => ({ v: 'b' }))); });
await new sky.Dataset(new sky.JsonReader('in.jsonl')).map(b, { poolName: 'p', batchSize: 1, output: new sky.JsonWriter('o.jsonl') });
`;
    const second = src.indexOf('remoteFunction', src.indexOf('const b'));
    const line = src.slice(0, second).split('\n').length;
    const col = second - src.lastIndexOf('\n', second - 1);
    const r = pruneEntry(FILE, src, { name: 'm', site: [`${FILE}:${line}:${col}`] }, []);
    assert.ok(!r.code.includes("v: 'a'"));
    assert.ok(r.code.includes("v: 'b'"));
  });

  test("keeps the job's custom formats with their registration, decorator or register() call", () => {
    const src = `import * as sky from 'skybatch';
@sky.registry.INPUT_READER_REGISTRY.typeRegister('range')
class RangeReader extends sky.InputReader<{ count: number }> {
  length() { return this.options.count; }
  async downloadBatch(s: number, e: number) { return Array.from({ length: e - s + 1 }, (_, i) => ({ i: s + i })); }
}
@sky.registry.INPUT_READER_REGISTRY.typeRegister('other')
class OtherReader extends RangeReader {}
class TextWriter extends sky.OutputWriter<object> { async uploadBatch() { return this.path; } }
sky.registry.OUTPUT_WRITER_REGISTRY.register('text', TextWriter);
const m = sky.remoteFunction(async function m() { for await (const b of sky.load()) await sky.saveResults(b); });
await new sky.Dataset(new RangeReader('', { count: 3 })).map(m, { poolName: 'p', batchSize: 1, output: new TextWriter('out/') });
`;
    const r = prune(src, { name: 'm', at: 'remoteFunction' }, [
      { kind: 'reader', type: 'range', builtin: false },
      { kind: 'writer', type: 'text', builtin: false },
    ]);
    assert.ok(r.code.includes(`@sky.registry.INPUT_READER_REGISTRY.typeRegister('range')`));
    assert.ok(r.code.includes(`sky.registry.OUTPUT_WRITER_REGISTRY.register('text', TextWriter);`));
    assert.ok(r.code.includes('class TextWriter'));
    assert.ok(!r.code.includes('OtherReader'), 'a format the job does not use does not run');
    assert.ok(!r.code.includes('new RangeReader'));
  });

  test('a binding the mapper uses but a dropped statement assigns cannot travel: the error names both lines', () => {
    const src = `import * as sky from 'skybatch';
let model: { name: string } | undefined;
const config = { mode: 'slow' };
model = { name: 'loaded at top level' };
config.mode = 'fast';
const m = sky.remoteFunction(async function m() {
  for await (const b of sky.load()) await sky.saveResults(b.map(() => ({ model: model?.name, mode: config.mode })));
});
`;
    assert.throws(
      () => prune(src, { name: 'm', at: 'remoteFunction' }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SKYBATCH_E_CANNOT_TRAVEL');
        assert.match(err.message, /job\.ts:4: this statement does not run on workers, but it assigns 'model' \(declared at line 2\)/);
        assert.match(err.message, /job\.ts:5: this statement does not run on workers, but it changes 'config' \(declared at line 3\)/);
        return true;
      },
    );
  });

  test('locals that shadow a kept name are not mistaken for it', () => {
    const src = `import * as sky from 'skybatch';
const limit = 10;
function report() { let limit = 0; limit += 1; return limit; }
for (let limit = 0; limit < 2; limit++) console.log(report());
const m = sky.remoteFunction(async function m() { for await (const b of sky.load()) await sky.saveResults(b.map(() => ({ limit }))); });
`;
    const r = prune(src, { name: 'm', at: 'remoteFunction' });
    assert.ok(r.code.includes('const limit = 10;'));
    assert.ok(!r.code.includes('report'));
  });

  test('a mapper created inside a function after an await is refused with the fix', () => {
    const src = `import * as sky from 'skybatch';
async function main() {
  await Promise.resolve();
  const m = sky.remoteFunction(async function m() {});
  return m;
}
await main();
`;
    const inner = siteOf(src, 'remoteFunction');
    assert.throws(
      () => pruneEntry(FILE, src, { name: 'm', site: [inner] }, []),
      (err: Error & { code?: string }) => err.code === 'SKYBATCH_E_CANNOT_TRAVEL' && /job\.ts:4: mapper m is created inside function main\(\).*Create the mapper at the top level/s.test(err.message),
    );
  });

  test('a mapper made by a main() that also submits still works, with a note saying workers run main()', () => {
    const src = `import * as sky from 'skybatch';
function main() {
  const m = sky.remoteFunction(async function m() {});
  return new sky.Dataset(new sky.JsonReader('in.jsonl')).map(m, { poolName: 'p', batchSize: 1, output: new sky.JsonWriter('o.jsonl') });
}
await main();
`;
    const r = pruneEntry(FILE, src, { name: 'm', site: [siteOf(src, 'remoteFunction'), siteOf(src, 'main();')] }, []);
    assert.ok(r.code.includes('await main();'));
    assert.match(r.notes.join('\n'), /job\.ts:3: mapper m is created inside main\(\), which also submits the job/);
  });

  test('legacy decorators with parameter decorators parse, and a syntax error names the line', () => {
    const src = `import * as sky from 'skybatch';
function inject(): ParameterDecorator { return () => {}; }
class Svc { constructor(@inject() readonly x: number) {} }
const m = sky.remoteFunction(async function m() { return new Svc(1); });
`;
    assert.ok(prune(src, { name: 'm', at: 'remoteFunction' }).code.includes('class Svc'));
    assert.throws(
      () => pruneEntry(FILE, 'const = 1;\n', { name: 'm', site: [] }, []),
      (err: Error & { code?: string }) => err.code === 'SKYBATCH_E_SCRIPT_LOAD' && /^cannot parse \/project\/job\.ts:1:7: /.test(err.message),
    );
  });
});
