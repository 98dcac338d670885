import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { isAlive, skybatchHome } from '../store/pool-store.js';

/** This installation of skybatch: the folder with its package.json (this file is out/runtime/backends/). */
const PACKAGE_ROOT = fs.realpathSync(fileURLToPath(new URL('../../../', import.meta.url)));
/** Dependencies only a client needs (bundling, running TypeScript): big, and never used on a worker. */
const CLIENT_ONLY = new Set(['esbuild', 'tsx']);
/** Never loaded by Node on a host: TypeScript sources and declarations, source maps, docs. */
const SKIP_FILE = /\.([cm]?ts|map|md|markdown)$/i;

/** The skybatch runtime a host needs to run workers: built once per content hash, cached under $SKYBATCH_HOME/runtime. */
export interface RuntimePack {
  /** sha256 of the uncompressed pack: names the runtime's folder on every host. */
  hash: string;
  /** The gzipped pack. */
  file: string;
  bytes: number;
  files: number;
}

export interface Entry {
  /** Path inside the pack. */
  to: string;
  from: string;
  exec: boolean;
  /** The file's bytes when they are made here, not read from `from`. */
  data?: Buffer;
}

/**
 * Packs what a worker runs: skybatch's compiled engine (out/index.js, out/runtime,
 * out/formats), its Python package, its package.json, and the installed production dependencies it resolves
 * (the same versions this machine runs, found as Node would find them, laid out so Node on
 * the host finds the same ones). The format is this file's own (one JSON header line, then
 * the bytes, per file; gzipped) so the host needs nothing but Node to unpack it: see
 * `UNPACK_SCRIPT`.
 */
export function buildRuntimePack(): RuntimePack {
  return writePack(collect(), path.join(skybatchHome(), 'runtime'));
}

/** Packs `entries` into DIR/HASH.pack.gz (once per content hash; the `keep` most recently used others are kept). */
export function writePack(entries: Entry[], dir: string, keep = 2): RuntimePack {
  const records: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? fs.readFileSync(e.from);
    records.push(Buffer.from(JSON.stringify({ p: e.to, x: e.exec, n: data.length }) + '\n'), data);
  }
  const raw = Buffer.concat(records);
  const hash = createHash('sha256').update(raw).digest('hex');
  const file = path.join(dir, `${hash}.pack.gz`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, gzipSync(raw, { level: 6 }));
      fs.renameSync(tmp, file);
    } catch (err) {
      fs.rmSync(tmp, { force: true }); // a full disk leaves no partial pack behind
      throw err;
    }
    forgetOldPacks(dir, file, keep);
  } else {
    const now = new Date();
    fs.utimesSync(file, now, now); // in use again: not among the oldest that go
  }
  return { hash, file, bytes: fs.statSync(file).size, files: entries.length };
}

/**
 * Keeps the newest few packs: each upgrade of skybatch makes one (a few MB). A temp file of a
 * process that died while writing its pack (`HASH.pack.gz.PID.tmp`) goes too.
 */
function forgetOldPacks(dir: string, current: string, keep: number): void {
  const names = fs.readdirSync(dir);
  for (const f of names) {
    const pid = /^[0-9a-f]{64}\.pack\.gz\.(\d+)\.tmp$/.exec(f)?.[1];
    if (pid && !isAlive(Number(pid))) fs.rmSync(path.join(dir, f), { force: true });
  }
  const packs = names
    .filter((f) => f.endsWith('.pack.gz'))
    .map((f) => path.join(dir, f))
    .filter((f) => f !== current)
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  for (const f of packs.slice(keep)) fs.rmSync(f, { force: true });
}

function collect(): Entry[] {
  const out: Entry[] = [];
  const addTree = (from: string, to: string, keep: (rel: string) => boolean) => {
    for (const rel of walk(from)) if (keep(rel)) out.push({ from: path.join(from, rel), to: path.posix.join(to, rel.split(path.sep).join('/')), exec: isExec(path.join(from, rel)) });
  };
  out.push({ from: path.join(PACKAGE_ROOT, 'package.json'), to: 'package.json', exec: false });
  out.push({ from: path.join(PACKAGE_ROOT, 'out', 'index.js'), to: 'out/index.js', exec: false });
  for (const d of ['runtime', 'formats']) addTree(path.join(PACKAGE_ROOT, 'out', d), `out/${d}`, (rel) => rel.endsWith('.js'));
  // The `skybatch` Python package, for Python mappers (runtime/worker/python-bridge.ts finds it above itself).
  const python = path.join(PACKAGE_ROOT, 'python');
  if (fs.existsSync(python)) addTree(python, 'python', (rel) => !rel.split(path.sep).includes('__pycache__'));

  out.push(...dependencyEntries(PACKAGE_ROOT, { wanted: (dep) => !CLIENT_ONLY.has(dep) }));
  return out.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
}

/**
 * The installed production dependencies of the package in `root` (those `wanted` of its own,
 * and theirs), laid out under node_modules/ so that Node finds the same versions from the
 * pack's top folder as it does from `root`. `extra`: more top-level packages to include
 * (those a script imports that its package.json does not list). A dependency that is not
 * installed is an error, except with `skipMissing` (a user's project: what the script
 * needs and lacks is reported where it is imported, with what to do).
 */
export function dependencyEntries(root: string, opts: { wanted?: (dep: string) => boolean; extra?: string[]; skipMissing?: boolean } = {}): Entry[] {
  const { wanted = () => true, extra = [], skipMissing = false } = opts;
  const out: Entry[] = [];
  const addTree = (from: string, to: string, keep: (rel: string) => boolean) => {
    for (const rel of walk(from)) if (keep(rel)) out.push({ from: path.join(from, rel), to: path.posix.join(to, rel.split(path.sep).join('/')), exec: isExec(path.join(from, rel)) });
  };
  // Dependencies: packed path -> real folder. A dependency found in a node_modules above its
  // dependent goes to the pack's top node_modules unless another version holds that place;
  // then (and when it was nested on this machine) it goes under its dependent.
  const placed = new Map<string, string>();
  const visit = (realDir: string, packedDir: string) => {
    const manifest = readManifest(realDir);
    const deps = { ...manifest.optionalDependencies, ...manifest.dependencies };
    const top = packedDir === '';
    const names = top ? [...new Set([...Object.keys(deps).filter(wanted), ...extra])] : Object.keys(deps);
    for (const dep of names) {
      if (dep.startsWith('@types/') || dep === 'skybatch') continue;
      const found = findPackage(dep, realDir);
      if (!found) {
        if (skipMissing || manifest.optionalDependencies?.[dep] !== undefined || (top && !(dep in deps))) continue; // not installed, or not for this platform
        throw new Error(`the dependency ${dep} (needed by ${manifest.name ?? realDir}) is not installed next to ${realDir}: run npm install`);
      }
      const nested = found.startsWith(path.join(realDir, 'node_modules') + path.sep);
      let to = nested ? path.posix.join(packedDir, 'node_modules', dep) : path.posix.join('node_modules', dep);
      if (placed.has(to) && placed.get(to) !== found) to = path.posix.join(packedDir, 'node_modules', dep);
      if (placed.get(to) === found) continue;
      placed.set(to, found);
      visit(found, to);
    }
  };
  visit(root, '');
  for (const [to, from] of placed) addTree(from, to, (rel) => !SKIP_FILE.test(rel));
  return out;
}

/** Files under `dir`, relative, skipping nested node_modules (each dependency is placed on its own). */
function walk(dir: string, rel = ''): string[] {
  const files: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.name === 'node_modules') continue;
    const st = fs.statSync(path.join(dir, r)); // follows symlinks: the host gets the files themselves
    if (st.isDirectory()) files.push(...walk(dir, r));
    else if (st.isFile()) files.push(r);
  }
  return files;
}

function isExec(file: string): boolean {
  return (fs.statSync(file).mode & 0o111) !== 0;
}

function readManifest(dir: string): { name?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> } {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}; // a project with node_modules but no package.json
    throw err;
  }
}

/** Where Node would find package `name` for code in `fromDir`: the nearest node_modules/name going up. */
function findPackage(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    if (path.basename(dir) !== 'node_modules') {
      const candidate = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(candidate, 'package.json'))) return fs.realpathSync(candidate);
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/**
 * Run on a host as `node -e UNPACK_SCRIPT ROOT HASH [DAYS] < pack.gz`: checks the pack against its
 * hash, writes it to ROOT/HASH.tmp-PID, then renames that to ROOT/HASH, so a host never
 * sees half a runtime, and two unpacks at once leave one. Exit 76: Node too old. Written
 * without single quotes, so it travels inside '...' to the host's shell.
 *
 * With DAYS, it then removes the other packs' folders in ROOT that no one used for DAYS
 * (their `.complete` is touched at each use) and that no live process names in its command
 * line or environment (a worker runs from its runtime's folder; a mapper has its packages'
 * folder in SKYBATCH_PACKAGES). Without /proc it removes nothing. A coordinator that finds
 * one gone copies it again (the runtime at a launch, packages when a worker asks).
 */
export const UNPACK_SCRIPT = `
const fs = require("fs"), path = require("path"), zlib = require("zlib"), crypto = require("crypto");
const [root, hash] = process.argv.slice(1, 3), pruneDays = Number(process.argv[3] || 0);
if (Number(process.versions.node.split(".")[0]) < 20) { console.error("skybatch needs Node 20 or newer on this host; " + process.execPath + " is " + process.version); process.exit(76); }
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const raw = zlib.gunzipSync(Buffer.concat(chunks));
  const got = crypto.createHash("sha256").update(raw).digest("hex");
  if (got !== hash) { console.error("skybatch runtime pack damaged in transit: sha256 " + got + ", expected " + hash); process.exit(1); }
  const final = path.join(root, hash), tmp = final + ".tmp-" + process.pid;
  fs.rmSync(tmp, { recursive: true, force: true });
  let at = 0;
  while (at < raw.length) {
    const nl = raw.indexOf(10, at);
    const h = JSON.parse(raw.subarray(at, nl).toString("utf8"));
    const to = path.join(tmp, h.p);
    if (!to.startsWith(tmp + path.sep)) { console.error("bad path in pack: " + h.p); process.exit(1); }
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.writeFileSync(to, raw.subarray(nl + 1, nl + 1 + h.n), { mode: h.x ? 0o755 : 0o644 });
    at = nl + 1 + h.n;
  }
  fs.writeFileSync(path.join(tmp, ".complete"), hash);
  if (!fs.existsSync(path.join(final, ".complete"))) fs.rmSync(final, { recursive: true, force: true });
  try { fs.renameSync(tmp, final); } catch (e) { fs.rmSync(tmp, { recursive: true, force: true }); if (!fs.existsSync(path.join(final, ".complete"))) throw e; }
  console.log("unpacked " + hash);
  if (pruneDays > 0) prune();
});
function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === "EPERM"; }
}
function prune() {
  try {
    const cutoff = Date.now() - pruneDays * 864e5, dayAgo = Date.now() - 864e5;
    const names = fs.readdirSync(root);
    // an unpack killed midway (a dropped ssh session) leaves HASH.tmp-PID: gone once a day old and its PID is not alive
    for (const n of names) {
      const m = /^[0-9a-f]{64}[.]tmp-([0-9]+)$/.exec(n);
      if (!m || alive(Number(m[1]))) continue;
      try { if (fs.statSync(path.join(root, n)).mtimeMs >= dayAgo) continue; } catch { continue; }
      fs.rmSync(path.join(root, n), { recursive: true, force: true });
      console.log("removed " + n + ", an unpack that did not finish");
    }
    const old = names.filter((n) => /^[0-9a-f]{64}$/.test(n) && n !== hash).filter((n) => {
      try { return fs.statSync(path.join(root, n, ".complete")).mtimeMs < cutoff; } catch { return false; }
    });
    if (!old.length || !fs.existsSync("/proc/self/environ")) return;
    const named = [];
    for (const pid of fs.readdirSync("/proc")) {
      if (!/^[0-9]+$/.test(pid)) continue;
      for (const f of ["cmdline", "environ"]) { try { named.push(fs.readFileSync("/proc/" + pid + "/" + f, "latin1")); } catch {} }
    }
    const inUse = named.join(" ");
    for (const n of old) {
      if (inUse.includes(n)) continue;
      fs.rmSync(path.join(root, n), { recursive: true, force: true });
      console.log("removed " + n + ", unused for " + pruneDays + " days or more");
    }
  } catch (e) { console.error("skybatch: could not remove old folders in " + root + ": " + e.message); }
}
`;
