import * as path from 'node:path';
import { toWireError } from '../../formats/common/errors.js';
import { packPackagesOffThread } from '../backends/package-pack.js';
import type { RuntimePack } from '../backends/runtime-pack.js';
import { readBundleHeader } from '../bundle-header.js';
import type { JobSpec } from '../protocol.js';
import { bundleFile } from '../store/job-store.js';
import type { WorkerEntry } from './worker-table.js';

/** What copies a packages pack to the host of a worker (the ssh backend). */
export interface PackageShipper {
  shipPackages(worker: string, pack: RuntimePack): Promise<void>;
}

/**
 * The packages of jobs whose workers run on other machines: packed from the job's project
 * once per bundle (and content hash), named in the spec the workers get, and copied to a
 * worker's host when it asks (`getPackages`), once per host. A project under
 * `pool.shared_fs` is seen by the hosts as it is, so nothing is packed for it. Packing runs
 * in a thread (`packPackagesOffThread`); a job's batches go out once its packages are packed
 * (`ready`), and the job waits PENDING meanwhile.
 */
export class JobPackages {
  private readonly byBundle = new Map<string, RuntimePack | undefined>();
  private readonly packing = new Set<string>();
  private readonly byHash = new Map<string, RuntimePack>();

  constructor(
    private readonly shipper: PackageShipper,
    private readonly sharedFs: () => string | undefined,
    private readonly log: (line: string) => void,
    /** A job's packages are packed now (or it has none to pack): its batches may go out. */
    private readonly onReady: () => void = () => {},
  ) {}

  /** Whether the job's packages are packed, or need not be; the first time, starts packing them. */
  ready(spec: JobSpec): boolean {
    if (this.byBundle.has(spec.bundleHash)) return true;
    if (this.packing.has(spec.bundleHash)) return false;
    this.packing.add(spec.bundleHash);
    void this.pack(spec).then((pack) => {
      this.packing.delete(spec.bundleHash);
      this.byBundle.set(spec.bundleHash, pack);
      this.onReady();
    });
    return false;
  }

  /** The spec to send workers: with `packages` when the job's project has packages to ship (once `ready`). */
  specFor(spec: JobSpec): JobSpec {
    const pack = this.byBundle.get(spec.bundleHash);
    return pack ? { ...spec, packages: { hash: pack.hash } } : spec;
  }

  /** Never rejects: a job whose packages cannot be packed still runs, and a package it imports is then reported missing on the worker, with what to do. */
  private async pack(spec: JobSpec): Promise<RuntimePack | undefined> {
    try {
      const header = readBundleHeader(bundleFile(spec.bundleHash));
      if (!header) return undefined;
      const root = header.projectRoot ?? path.dirname(header.entry);
      const shared = this.sharedFs();
      if (shared && (root === shared || root.startsWith(shared.endsWith('/') ? shared : `${shared}/`))) return undefined;
      const t0 = Date.now();
      this.log(`packing the packages of ${root} for the hosts (job ${spec.jobId} waits for them)`);
      const pack = await packPackagesOffThread(header);
      if (pack) {
        this.byHash.set(pack.hash, pack);
        this.log(`packed the packages of ${root} for the hosts: ${pack.files} files, ${(pack.bytes / 2 ** 20).toFixed(1)} MB, ${pack.hash.slice(0, 12)} (${Date.now() - t0} ms)`);
      }
      return pack;
    } catch (err) {
      this.log(`cannot pack the packages of job ${spec.jobId} for the hosts: ${(err as Error)?.message ?? String(err)}`);
      return undefined;
    }
  }

  /** Answers a worker's `getPackages`. */
  send(w: WorkerEntry, hash: string): void {
    const pack = this.byHash.get(hash);
    if (!pack) {
      w.link.send({ type: 'packages', hash, error: { code: 'SKYBATCH_E_NOT_FOUND', message: `the coordinator has no packages ${hash.slice(0, 12)} (it restarted since the job's packages were packed?)`, retryable: false } });
      return;
    }
    this.shipper.shipPackages(w.name, pack).then(
      () => w.link.send({ type: 'packages', hash }),
      (err: unknown) => w.link.send({ type: 'packages', hash, error: toWireError(err, { worker: w.name }) }),
    );
  }
}
