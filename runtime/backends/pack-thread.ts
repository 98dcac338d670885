import { parentPort, workerData } from 'node:worker_threads';
import type { BundleHeader } from '../bundle-header.js';
import { buildPackagesPack } from './package-pack.js';
import { buildRuntimePack } from './runtime-pack.js';

// The thread of `packOffThread` (package-pack.ts): packs the skybatch runtime or a job's packages, answers once, ends.
try {
  const job = workerData as { runtime: true } | { packages: BundleHeader };
  parentPort!.postMessage({ ok: true, pack: 'runtime' in job ? buildRuntimePack() : buildPackagesPack(job.packages) });
} catch (err) {
  parentPort!.postMessage({ ok: false, message: (err as Error)?.message ?? String(err) });
}
