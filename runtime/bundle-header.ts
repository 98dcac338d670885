import * as fs from 'node:fs';

/**
 * The first line of every bundle: what a host process needs before importing it, i.e.
 * where the user's packages resolve from and which `remoteFunction` is the job's mapper.
 */
export interface BundleHeader {
  v: 1;
  /** The user's entry script on the submitting machine; its packages resolve from here. */
  entry: string;
  /** Nearest folder above the script with a package.json (or node_modules). */
  projectRoot?: string;
  /** The project's lockfile and its sha256, so a remote pool can install the same tree (issue 12). */
  lockfile?: { path: string; sha256: string };
  /** Packages the bundle imports (bare specifiers left external), for messages and remote installs. */
  packages?: string[];
  /** Whether hosts need resolve hooks: the bundle imports packages as ES modules (a `require` needs none). */
  esmImports?: boolean;
  /** Where the job's mapper was created on the client: the same frames it has on a worker. */
  mapper?: { name: string; site: string[]; ordinal: number };
}

const PREFIX = '// skybatch-bundle ';

export function headerLine(h: BundleHeader): string {
  return PREFIX + JSON.stringify(h);
}

/** The header of a bundle file, or undefined for a bundle made before headers existed. */
export function readBundleHeader(file: string): BundleHeader | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const first = buf.subarray(0, n).toString('utf8').split('\n', 1)[0];
    if (!first.startsWith(PREFIX)) return undefined;
    return JSON.parse(first.slice(PREFIX.length)) as BundleHeader;
  } finally {
    fs.closeSync(fd);
  }
}
