import { parentPort, workerData } from 'node:worker_threads';
import type { BundleHeader } from '../bundle-header.js';
import { buildPackagesPack } from './package-pack.js';

// The thread of `packPackagesOffThread` (package-pack.ts): packs, answers once, ends.
try {
  parentPort!.postMessage({ ok: true, pack: buildPackagesPack(workerData as BundleHeader) });
} catch (err) {
  parentPort!.postMessage({ ok: false, message: (err as Error)?.message ?? String(err) });
}
