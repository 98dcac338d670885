#!/usr/bin/env node
// Checks that skybatch's `engines.node` says what the tests prove, and that every package
// `npm ci` installs accepts every Node version that range admits. Run by scripts/test.sh
// on each Node the suites run on, so a dependency upgrade that drops Node 20 (or a Node we
// add) fails CI here instead of on a user's machine.
//
// What it reads is package-lock.json: production, dev, optional and nested packages, as
// `npm ci` installs them. Tools the tests install outside the lock (code-server and
// firebase-tools under .cache/) are not dependencies of skybatch and run only on the
// machine's Node 20; code-server 4.100.3's own engines is "20" by design (see TESTING.md).
//
// Usage: node scripts/check-engines.mjs      exit 1 and a list of violations on failure
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import semver from 'semver';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

// The Node majors the suites are run on: 20 and 24 by scripts/test.sh (CI), 22 by hand.
// `engines.node` may only admit these majors: 21 and 23 are never tested (and several
// dependencies, glob among them, reject 21).
const TESTED_MAJORS = [20, 22, 24];

// A dependency whose engines.node does not cover ours, accepted on purpose. Each entry
// matches one lock path with exactly this engines value, so an upgrade that changes the
// value is checked again; an entry that matches nothing is reported, so none go stale.
// { path: 'node_modules/NAME', engines: '>=x', why: 'dev-only: ..., runs only on Node 24 in CI' }
const EXCEPTIONS = [];

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
const ours = pkg.engines?.node;
const problems = [];

if (!ours || !semver.validRange(ours)) {
  problems.push(`package.json engines.node is ${JSON.stringify(ours)}, not a semver range`);
} else {
  const tested = TESTED_MAJORS.map((m) => `^${m}.0.0`).join(' || ');
  if (!semver.subset(ours, tested)) {
    problems.push(`package.json engines.node "${ours}" admits Node versions outside the tested majors (${TESTED_MAJORS.join(', ')})`);
  }
  for (const major of TESTED_MAJORS) {
    if (!semver.intersects(ours, `^${major}.0.0`)) problems.push(`package.json engines.node "${ours}" leaves out Node ${major}, which is tested`);
  }
  if (!semver.satisfies(process.version, ours)) {
    problems.push(`this Node, ${process.version} (${process.execPath}), is not in package.json engines.node "${ours}"`);
  }
}

let checked = 0;
const used = new Set();
if (ours && semver.validRange(ours)) {
  // Each `||` alternative of ours as its own range, to name the part a dependency leaves out.
  const ourParts = new semver.Range(ours).set.map((comparators) => comparators.map((c) => c.value).join(' '));
  for (const [where, entry] of Object.entries(lock.packages ?? {})) {
    if (where === '' || entry.link) continue;
    // Old packages may carry engines as an array of strings; npm itself ignores that form.
    const range = entry.engines && !Array.isArray(entry.engines) ? entry.engines.node : undefined;
    if (range === undefined) continue;
    checked++;
    const fits = typeof range === 'string' && semver.validRange(range) !== null && semver.subset(ours, range);
    if (fits) continue;
    const exception = EXCEPTIONS.find((e) => e.path === where && e.engines === range);
    if (exception) {
      used.add(exception);
      continue;
    }
    const kind = entry.dev ? 'dev' : entry.devOptional ? 'dev/optional' : entry.optional ? 'optional' : 'production';
    const name = where.replace(/^.*node_modules\//, '');
    const missed = typeof range === 'string' && semver.validRange(range) ? ourParts.filter((part) => !semver.subset(part, range)) : ourParts;
    problems.push(`${name}@${entry.version} (${kind}, ${where}) has engines.node ${JSON.stringify(range)}: it leaves out ${missed.join(' || ')}`);
  }
}
for (const e of EXCEPTIONS) if (!used.has(e)) problems.push(`exception for ${e.path} (engines ${JSON.stringify(e.engines)}) matches nothing in package-lock.json: remove it`);

if (problems.length) {
  console.error(`check-engines: ${problems.length} problem(s):`);
  for (const p of problems) console.error(`  - ${p}`);
  console.error(
    'check-engines: pin or replace the dependency, or narrow engines.node in package.json (and say so in README), ' +
      'or add a justified entry to EXCEPTIONS in scripts/check-engines.mjs',
  );
  process.exit(1);
}
console.log(`check-engines: ${checked} packages in package-lock.json accept node "${ours}"; ${process.version} is in it`);
