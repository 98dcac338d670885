import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Connection from '../runtime/client/connection.js';
import type * as ErrorChannel from '../runtime/control/error-channel.js';
import type * as Jobs from '../runtime/control/jobs.js';
import type * as Pools from '../runtime/control/pools.js';

/**
 * The skybatch engine, loaded from the built ESM files next to this extension. The
 * extension is CommonJS (the extension host's loader); the engine is ESM and finds its
 * child-process entry points through `import.meta.url`, so it is imported, not bundled.
 * The extension reaches it only through its control API (runtime/control/: the same calls
 * the CLI makes) and the client connection. Only reads and light requests run in the
 * extension host; anything that spawns or stops long-lived processes goes through the CLI
 * (see cli-process.ts), whose failures arrive on its error channel.
 */
export interface Engine {
  root: string;
  cli: string;
  pools: Pick<typeof Pools, 'poolStatus' | 'poolRunning' | 'listPools'>;
  jobs: Pick<typeof Jobs, 'listJobs' | 'jobView' | 'jobFromDisk' | 'jobsOnDisk' | 'cancelJob' | 'resumeJob' | 'batchOfItem' | 'recoverSummary'>;
  errors: Pick<typeof ErrorChannel, 'ERROR_FD_ENV' | 'readReportedError'>;
  connection: typeof Connection;
}

let loading: Promise<Engine> | undefined;
let root = path.resolve(__dirname, '..', '..');

/** Where package.json of the engine lives; set once from the extension's path. */
export function setEngineRoot(dir: string): void {
  root = dir;
  loading = undefined;
}

// A real dynamic import: esbuild leaves `import()` alone in CommonJS output for Node targets.
const load = <T>(rel: string): Promise<T> => import(pathToFileURL(path.join(root, 'out', rel)).href) as Promise<T>;

export function engine(): Promise<Engine> {
  loading ??= (async () => {
    const [pools, jobs, errors, connection] = await Promise.all([
      load<typeof Pools>('runtime/control/pools.js'),
      load<typeof Jobs>('runtime/control/jobs.js'),
      load<typeof ErrorChannel>('runtime/control/error-channel.js'),
      load<typeof Connection>('runtime/client/connection.js'),
    ]);
    return { root, cli: path.join(root, 'bin', 'skybatch.js'), pools, jobs, errors, connection };
  })();
  loading.catch(() => (loading = undefined));
  return loading;
}
