import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { SkybatchError } from '../../formats/common/errors.js';
import type { BundleHeader } from '../bundle-header.js';
import { importSite } from '../import-site.js';
import { isInstalledFor } from '../package-hooks.js';
import type { Bundle } from './bundle.js';
import { packageName } from './bundle.js';

const HEADER = '// skybatch-bundle ';

function headerOf(code: string): BundleHeader | undefined {
  const first = code.slice(0, code.indexOf('\n'));
  return first.startsWith(HEADER) ? (JSON.parse(first.slice(HEADER.length)) as BundleHeader) : undefined;
}

/**
 * Packages are never bundled: hosts import them from the script's project (host-packages.ts).
 * On this machine that means each package the bundle imports must be installed in the
 * script's folder or above, unless the run lists it in `external` (the pool's setup
 * installs it on the workers). A missing one is `SKYBATCH_E_PACKAGE_MISSING` naming the
 * package, the line that imports it (as a stack frame, so tools map it to their source) and
 * the `npm install` that fixes it, before any pool is asked to run the job.
 */
export function assertPackagesFound(bundle: Bundle, script: string, external: readonly string[] = []): void {
  const header = headerOf(bundle.code);
  const from = pathToFileURL(script).href;
  const missing = (header?.packages ?? []).map(packageName).filter((p, i, all) => all.indexOf(p) === i && !external.includes(p) && !isInstalledFor(p, from));
  if (!missing.length) return;
  const source = fs.readFileSync(script, 'utf8');
  const dir = path.dirname(script);
  const name = missing[0];
  const at = importSite(source, name);
  const where = at ? `${script}:${at.line + 1}:${at.column + 1}` : script;
  const more = missing.length > 1 ? ` (also missing: ${missing.slice(1).join(', ')})` : '';
  const err = new SkybatchError(
    'SKYBATCH_E_PACKAGE_MISSING',
    `package '${name}', imported at ${where}, is not installed in ${dir} or the folders above it${more}. Install it there: cd ${JSON.stringify(dir)} && npm install ${missing.join(' ')}. If the pool's setup installs it on the workers instead, list it under 'external:' in the run settings.`,
    { context: { path: script, ...(at ? { line: at.line + 1 } : {}) } },
  );
  // A frame at the import, so the notebook puts the error on the cell and line that import it.
  err.stack = `${err.name} [${err.code}]: ${err.message}\n    at ${where}`;
  throw err;
}
