/**
 * `node out/bench/profile-summary.js DIR [--top N]`: reads the CPU profiles a
 * `run.js --profile DIR` run wrote, names each process by its role (coordinator, agent,
 * mapper, reduce, client, ...) and prints, per role, where its busy time went: by function
 * (self time), by function including what it calls (inclusive), and by area.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const ROLES: [string, RegExp][] = [
  ['coordinator', /coordinator\/main\.js/],
  ['agent', /worker\/main\.js/],
  ['mapper', /mapper-process\.js/],
  ['reduce', /reduce-process\.js|reduce-step\.js/],
  ['client', /bench\/scripts\//],
  ['cli', /bin\/skybatch\.js/],
  ['hand loop', /hand-loop\.js/],
  ['bullmq worker', /bullmq-worker\.js/],
];

export function roleOf(argv: string[]): string {
  const cmd = argv.join(' ');
  return ROLES.find(([, re]) => re.test(cmd))?.[0] ?? `other (${path.basename(argv[1] ?? '?')})`;
}

const IDLE = new Set(['(idle)', '(program)', '(root)']);

function key(f: CallFrame): string {
  if (!f.url) return f.functionName || '(anonymous)';
  const url = f.url.replace(/^file:\/\//, '');
  const short = url.includes('/node_modules/') ? url.slice(url.lastIndexOf('/node_modules/') + 14) : url.includes('/out/') ? url.slice(url.lastIndexOf('/out/') + 5) : url.replace(/^node:/, 'node:');
  return `${f.functionName || '(anonymous)'} ${short}:${f.lineNumber + 1}`;
}

/** Where a frame's time counts, by its file: the areas the bench's write-up ranks. */
function area(f: CallFrame): string {
  const u = f.url;
  if (f.functionName === '(garbage collector)') return 'GC';
  if (IDLE.has(f.functionName)) return 'idle';
  if (!u) return f.functionName.startsWith('JSON') || f.functionName === 'stringify' || f.functionName === 'parse' ? 'JSON (native)' : 'native/other';
  if (u.includes('/node_modules/ws/')) return 'ws library';
  if (u.includes('/node_modules/esbuild/')) return 'esbuild (bundling)';
  if (u.includes('/node_modules/tsx/')) return 'tsx (script loading)';
  if (u.includes('/node_modules/')) return 'other packages';
  if (u.includes('/runtime/coordinator/')) return `coordinator: ${path.basename(u, '.js')}`;
  if (u.includes('/runtime/worker/')) return `worker: ${path.basename(u, '.js')}`;
  if (u.includes('/runtime/client/')) return `client: ${path.basename(u, '.js')}`;
  if (u.includes('/formats/')) return `formats: ${path.basename(u, '.js')}`;
  if (u.includes('/runtime/')) return `runtime: ${path.basename(u, '.js')}`;
  if (u.startsWith('node:internal/child_process') || u.includes('serialization')) return 'node: child_process IPC';
  if (u.startsWith('node:internal/streams') || u.startsWith('node:net') || u.startsWith('node:internal/stream_base')) return 'node: streams/net';
  if (u.startsWith('node:internal/fs') || u.startsWith('node:fs')) return 'node: fs';
  if (u.startsWith('node:internal/modules') || u.startsWith('node:internal/vm')) return 'node: module loading';
  if (u.startsWith('node:')) return `node: ${u.slice(5).split('/').slice(0, 2).join('/')}`;
  return 'user script / bundle';
}

export interface Summary {
  role: string;
  file: string;
  totalMs: number;
  busyMs: number;
  self: [string, number][];
  inclusive: [string, number][];
  areas: [string, number][];
}

export function summarize(file: string): Summary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  let argv: string[] = [];
  try {
    argv = JSON.parse(fs.readFileSync(`${file}.argv`, 'utf8')) as string[];
  } catch {
    // profile written by --cpu-prof: no argv beside it
  }
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i] ?? 0) / 1000;
    if (dt <= 0) continue;
    const leaf = byId.get(prof.samples[i])!;
    total += dt;
    if (IDLE.has(leaf.callFrame.functionName)) {
      idle += dt;
      continue;
    }
    const k = key(leaf.callFrame);
    self.set(k, (self.get(k) ?? 0) + dt);
    // the area of the innermost frame that is not a builtin/native one says whose work it was
    let a = area(leaf.callFrame);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if ((a === 'native/other' || a === 'JSON (native)') && f.url && !f.url.startsWith('node:')) a = `${a === 'JSON (native)' ? 'JSON' : 'native'} in ${area(f)}`;
      const fk = key(f);
      if (seen.has(fk) || IDLE.has(f.functionName)) continue;
      seen.add(fk);
      incl.set(fk, (incl.get(fk) ?? 0) + dt);
    }
    areas.set(a, (areas.get(a) ?? 0) + dt);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((p, q) => q[1] - p[1]);
  // a process that loaded a skybatch entry point is that role, whatever its argv says
  const urls = prof.nodes.map((n) => n.callFrame.url).join(' ');
  const role = ROLES.slice(0, 4).find(([, re]) => re.test(urls) && !/coordinator\/main\.js|worker\/main\.js/.test(argv.join(' ')))?.[0] ?? roleOf(argv);
  return { role, file, totalMs: total, busyMs: total - idle, self: sorted(self), inclusive: sorted(incl), areas: sorted(areas) };
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, role: { type: 'string' } } });
  const dir = positionals[0];
  if (!dir) {
    process.stderr.write('usage: profile-summary DIR [--top N] [--role coordinator]\n');
    process.exit(64);
  }
  const top = Number(values.top);
  const all = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => summarize(path.join(dir, f)))
    .filter((s) => !values.role || s.role === values.role)
    .sort((a, b) => b.busyMs - a.busyMs);
  const pct = (v: number, of: number) => `${((100 * v) / of).toFixed(1).padStart(5)} %`;
  const ms = (v: number) => `${v.toFixed(0).padStart(7)} ms`;
  for (const s of all) {
    if (s.busyMs < 20) continue;
    console.log(`\n== ${s.role}: busy ${s.busyMs.toFixed(0)} ms of ${s.totalMs.toFixed(0)} ms sampled (${path.basename(s.file)})`);
    console.log('-- by area (share of busy time)');
    for (const [k, v] of s.areas.slice(0, top)) console.log(`${ms(v)} ${pct(v, s.busyMs)}  ${k}`);
    console.log('-- self time');
    for (const [k, v] of s.self.slice(0, top)) console.log(`${ms(v)} ${pct(v, s.busyMs)}  ${k}`);
    console.log('-- inclusive time of skybatch functions (and what they call)');
    for (const [k, v] of s.inclusive.filter(([k]) => / (runtime|formats|bench)\//.test(k)).slice(0, top)) console.log(`${ms(v)} ${pct(v, s.busyMs)}  ${k}`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) main();
