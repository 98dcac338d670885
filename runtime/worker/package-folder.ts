import * as fs from 'node:fs';
import * as path from 'node:path';
import { SkybatchError, fromWireError } from '../../formats/common/errors.js';
import { PACKAGES_MANIFEST, PackagesManifest, platformMismatch } from '../backends/package-pack.js';
import type { WireError } from '../../formats/common/errors.js';
import type { WorkerMessage } from '../protocol.js';

/** How long a folder the coordinator says it made may take to be seen here (NFS caches a listing up to 30-60 s). */
const SHOWS_UP_MS = 60_000;

/**
 * The job packages on this worker's host (`<root>/<hash>/node_modules`), shared by the
 * host's workers. One the host lacks is asked of the coordinator (`getPackages`), whose
 * backend copies it there once per host; a worker only waits for the answer.
 */
export class PackageFolder {
  private readonly waiters = new Map<string, { resolve: () => void; reject: (err: Error) => void }[]>();

  constructor(
    private readonly root: string,
    private readonly send: (msg: WorkerMessage) => void,
  ) {}

  /** The folder of packages `hash` on this host, asked for first when it is not here. */
  async dir(hash: string): Promise<string> {
    const dir = path.join(this.root, hash);
    if (!fs.existsSync(path.join(dir, '.complete'))) {
      await new Promise<void>((resolve, reject) => {
        const list = this.waiters.get(hash) ?? [];
        list.push({ resolve, reject });
        this.waiters.set(hash, list);
        if (list.length === 1) this.send({ type: 'getPackages', hash });
      });
      if (!(await this.showsUp(path.join(dir, '.complete')))) {
        throw new SkybatchError('SKYBATCH_E_PACKAGE_MISSING', `the coordinator said the job's packages ${hash.slice(0, 12)} were copied to this host, but ${dir} is not there`);
      }
    }
    try {
      const now = new Date();
      fs.utimesSync(path.join(dir, '.complete'), now, now); // in use: not among the old folders an unpack removes
    } catch {
      // read-only: it is kept while this worker's mapper names it
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, PACKAGES_MANIFEST), 'utf8')) as PackagesManifest;
    const mismatch = platformMismatch(manifest);
    if (mismatch) {
      throw new SkybatchError('SKYBATCH_E_PACKAGE_PLATFORM', `${mismatch}: install the packages on this host in the pool's setup (npm ci --omit=dev in the worker's folder), or run the pool on hosts like the one that submits`);
    }
    return dir;
  }

  /**
   * Whether `file` is there, or shows up within `SHOWS_UP_MS`: on a shared file system
   * (Slurm's `pool.shared_fs`, often NFS) a folder another machine just made can stay
   * unseen while this one's cached listing of its parent lasts. Listing the parent again
   * asks the server.
   */
  private async showsUp(file: string): Promise<boolean> {
    for (const deadline = Date.now() + SHOWS_UP_MS; ; await new Promise((r) => setTimeout(r, 250))) {
      try {
        fs.readdirSync(this.root);
      } catch {
        // not there yet either
      }
      if (fs.existsSync(file)) return true;
      if (Date.now() > deadline) return false;
    }
  }

  /** The coordinator's `packages` answer. */
  received(hash: string, error?: WireError): void {
    const list = this.waiters.get(hash) ?? [];
    this.waiters.delete(hash);
    for (const w of list) {
      if (error) w.reject(fromWireError(error));
      else w.resolve();
    }
  }
}
