import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Connection from '../runtime/client/connection.js';
import type * as JobCommands from '../runtime/cli/job-commands.js';
import type * as PoolCommands from '../runtime/cli/pool-commands.js';
import type * as JobStore from '../runtime/store/job-store.js';
import type * as PoolStore from '../runtime/store/pool-store.js';

/**
 * The skybatch engine, loaded from the built ESM files next to this extension. The
 * extension is CommonJS (the extension host's loader); the engine is ESM and finds its
 * child-process entry points through `import.meta.url`, so it is imported, not bundled.
 * Only reads and light requests run in the extension host; anything that spawns
 * long-lived processes goes through the CLI (see cli-process.ts).
 */
export interface Engine {
  root: string;
  cli: string;
  poolStore: typeof PoolStore;
  pools: Pick<typeof PoolCommands, 'poolStatus'>;
  jobs: Pick<typeof JobCommands, 'listJobs' | 'jobFromDisk' | 'cancelJob'>;
  journal: Pick<typeof JobStore, 'readJournal' | 'readSpec' | 'listJobIds'>;
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
    const [poolStore, pools, jobs, journal, connection] = await Promise.all([
      load<typeof PoolStore>('runtime/store/pool-store.js'),
      load<typeof PoolCommands>('runtime/cli/pool-commands.js'),
      load<typeof JobCommands>('runtime/cli/job-commands.js'),
      load<typeof JobStore>('runtime/store/job-store.js'),
      load<typeof Connection>('runtime/client/connection.js'),
    ]);
    return { root, cli: path.join(root, 'bin', 'skybatch.js'), poolStore, pools, jobs, journal, connection };
  })();
  loading.catch(() => (loading = undefined));
  return loading;
}
