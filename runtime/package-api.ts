/**
 * The package's public API (index.ts, what `import 'skybatch'` gives a user), as the runtime
 * hands it to the code it hosts: a job's bundle gets it as its `skybatch` (bundle-loader.ts,
 * host-packages.ts), the client lists its export names for the bundle's shim
 * (client/bundle.ts), and `skybatch run` resolves `skybatch` to its file. index.ts re-exports
 * the runtime, so the runtime must not import it as a module of its own: this is the one
 * place that names it, and it loads it only when a host asks, at run time.
 */
export type PackageApi = Readonly<Record<string, unknown>>;

/** The file `import 'skybatch'` means in a process this installation runs. */
export const PACKAGE_API_URL = new URL('../index.js', import.meta.url).href;

export async function loadPackageApi(): Promise<PackageApi> {
  return (await import(PACKAGE_API_URL)) as PackageApi;
}
