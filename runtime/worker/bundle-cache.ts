import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertBundleHash } from '../store/pool-store.js';
import type { WorkerMessage } from '../protocol.js';

/**
 * The job bundles on this worker (`<workdir>/.skybatch-bundles/<hash>.mjs`), each asked of
 * the coordinator through `send` the first time a job needs it.
 */
export class BundleCache {
  private readonly waiters = new Map<string, { resolve: (code: string) => void; reject: (err: Error) => void }>();
  private readonly dir: string;

  constructor(
    workdir: string,
    private readonly send: (msg: WorkerMessage) => void,
  ) {
    this.dir = path.join(workdir, '.skybatch-bundles');
  }

  /** The file of bundle `hash`, fetched first when it is not here. */
  async path(hash: string): Promise<string> {
    assertBundleHash(hash);
    const file = path.join(this.dir, `${hash}.mjs`);
    if (fs.existsSync(file)) return file;
    const code = await new Promise<string>((resolve, reject) => {
      this.waiters.set(hash, { resolve, reject });
      this.send({ type: 'getBundle', hash });
    }).finally(() => this.waiters.delete(hash));
    fs.mkdirSync(this.dir, { recursive: true });
    fs.writeFileSync(`${file}.tmp`, code);
    fs.renameSync(`${file}.tmp`, file);
    return file;
  }

  /** The coordinator's `bundle` answer. */
  received(hash: string, code: string): void {
    this.waiters.get(hash)?.resolve(code);
  }

  /** The coordinator's `bundleUnavailable` answer. */
  unavailable(hash: string, err: Error): void {
    this.waiters.get(hash)?.reject(err);
  }
}
