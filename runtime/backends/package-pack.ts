import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BundleHeader } from '../bundle-header.js';
import { skybatchHome } from '../store/pool-store.js';
import { dependencyEntries, RuntimePack, writePack } from './runtime-pack.js';

/** How many other packages packs stay in $SKYBATCH_HOME/packages when one is made. */
const PACKS_KEPT = 32;

/** In a packages pack: what it was built on, so a host of another kind refuses native addons built for this one. */
export const PACKAGES_MANIFEST = '.skybatch-packages.json';

export interface PackagesManifest {
  platform: string;
  arch: string;
  /** Node's module ABI (`process.versions.modules`): native addons load only under the same one. */
  abi: string;
  /** Whether it holds native addons (`.node` files): only then does the platform matter. */
  native: boolean;
  /** The project it was packed from, for messages. */
  project: string;
}

/**
 * Packs the installed packages of a job's project for hosts that cannot see it: the
 * production dependencies in its package.json and the packages its script imports, with
 * theirs, from the project's node_modules (resolved as Node resolves them there: symlinks
 * followed, nested versions kept). Built once per content hash under
 * $SKYBATCH_HOME/packages; undefined when the script imports nothing installed.
 */
export function buildPackagesPack(header: BundleHeader): RuntimePack | undefined {
  const root = header.projectRoot ?? path.dirname(header.entry);
  if (!fs.existsSync(root)) return undefined;
  const entries = dependencyEntries(root, { extra: header.packages ?? [], skipMissing: true });
  if (!entries.length) return undefined;
  const manifest: PackagesManifest = {
    platform: process.platform,
    arch: process.arch,
    abi: process.versions.modules,
    native: entries.some((e) => e.to.endsWith('.node')),
    project: root,
  };
  entries.push({ to: PACKAGES_MANIFEST, from: '', exec: false, data: Buffer.from(JSON.stringify(manifest)) });
  // a pool's coordinator holds on to the packs of the jobs it runs: keep enough for many projects at once
  return writePack(entries.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0)), path.join(skybatchHome(), 'packages'), PACKS_KEPT);
}

const PACK_THREAD = new URL('./pack-thread.js', import.meta.url);

/**
 * `buildPackagesPack` or `buildRuntimePack` in a thread of its own: reading and gzipping a
 * large node_modules (an inference runtime's is hundreds of MB) takes seconds, and the
 * runtime's 2,700 files over a second, which the coordinator's event loop must not spend
 * (workers' heartbeats and frames wait on it: they were dropped).
 */
function packOffThread(job: { runtime: true } | { packages: BundleHeader }): Promise<RuntimePack | undefined> {
  return new Promise((resolve, reject) => {
    const thread = new Worker(PACK_THREAD, { workerData: job });
    thread.once('message', (m: { ok: true; pack?: RuntimePack } | { ok: false; message: string }) => (m.ok ? resolve(m.pack) : reject(new Error(m.message))));
    thread.once('error', reject);
    thread.once('exit', (code) => reject(new Error(`the packing thread ended with code ${code} before it answered`))); // a no-op once it answered
  });
}

/** A job's packages for hosts that cannot see its project (`buildPackagesPack`), packed off the event loop. */
export function packPackagesOffThread(header: BundleHeader): Promise<RuntimePack | undefined> {
  return packOffThread({ packages: header });
}

/** The skybatch runtime for other hosts (`buildRuntimePack`), packed off the event loop. */
export async function packRuntimeOffThread(): Promise<RuntimePack> {
  return (await packOffThread({ runtime: true }))!;
}

/** Why a packages pack built as `m` cannot load in this process (native addons of another platform or Node ABI), if so. */
export function platformMismatch(m: PackagesManifest): string | undefined {
  if (!m.native) return undefined;
  const here = `${process.platform}-${process.arch}, Node ABI ${process.versions.modules}`;
  const there = `${m.platform}-${m.arch}, Node ABI ${m.abi}`;
  return here === there ? undefined : `the packages of ${m.project} include native addons built for ${there}, and this host is ${here}`;
}
