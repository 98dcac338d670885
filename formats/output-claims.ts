import { jobTmpDir } from './batch-files.js';
import { SkybatchError } from './common/errors.js';
import { IMAGE_FILE_RE, IMAGE_INDEX_NAME } from './image-writer.js';
import { joinPath, parentPath } from './common/paths.js';

/**
 * What a writer of a job may write: exact files, whole folders (a path ending in '/'), or
 * the files of one folder whose names match a pattern. Two writers of one job must not
 * claim a common path, or one would silently replace the other's output or temp files.
 */
type NamesClaim = { kind: 'names'; folder: string; re: RegExp; what: string };
type Claim = { kind: 'file'; path: string; what: string } | { kind: 'folder'; path: string; what: string } | NamesClaim;

/** A writer as a job names it: its registered type and path, and how to call it in a message. */
export interface WriterRef {
  type: string;
  path: string;
  label?: string;
}

/** Any id does: the temp folders of one job's writers differ exactly when their names do. */
const SOME_JOB = '{jobId}';

function claimsOf(w: WriterRef): Claim[] {
  const temp: Claim = { kind: 'folder', path: jobTmpDir(w.path, SOME_JOB) + '/', what: `stage temp files under ${jobTmpDir(w.path, SOME_JOB)}/` };
  // Built-in writers say exactly what they write; any other writer owns its whole path.
  if (w.type === 'image') {
    const dir = w.path.endsWith('/') ? w.path : w.path + '/';
    const index = joinPath(w.path, IMAGE_INDEX_NAME);
    return [{ kind: 'file', path: index, what: `write ${index}` }, { kind: 'names', folder: dir, re: IMAGE_FILE_RE, what: `write ${dir}NNNNNNNN.png` }, temp];
  }
  const own: Claim = w.path.endsWith('/') ? { kind: 'folder', path: w.path, what: `write under ${w.path}` } : { kind: 'file', path: w.path, what: `write ${w.path}` };
  return [own, temp];
}

function under(path: string, folder: string): boolean {
  return path.startsWith(folder);
}

function overlap(a: Claim, b: Claim): boolean {
  if (a.kind === 'names') return namesOverlap(a, b);
  if (b.kind === 'names') return namesOverlap(b, a);
  if (a.kind === 'file' && b.kind === 'file') return a.path === b.path;
  if (a.kind === 'folder' && b.kind === 'folder') return under(a.path, b.path) || under(b.path, a.path);
  const [file, folder] = a.kind === 'file' ? [a, b] : [b, a];
  return under(file.path, folder.path) || file.path + '/' === folder.path;
}

function namesOverlap(n: NamesClaim, o: Claim): boolean {
  if (o.kind === 'names') return n.folder === o.folder;
  if (o.kind === 'file') return parentPath(o.path) + '/' === n.folder && n.re.test(o.path.slice(n.folder.length));
  return under(n.folder, o.path); // the names are files directly in their folder, never in a subfolder
}

/**
 * Refuses a job whose writers share an output or temp path (or write the job's own
 * `errors.jsonl`), naming both. Runs where a job is submitted: in `Dataset.map` and again
 * in the coordinator, for clients that do not go through `Dataset.map`.
 */
export function assertSeparateOutputs(writers: WriterRef[], opts: { errorsFile?: string } = {}): void {
  const owners: { name: string; path: string; claims: Claim[] }[] = writers.map((w, i) => ({ name: w.label ?? `writer ${i + 1} ('${w.type}', ${w.path})`, path: w.path, claims: claimsOf(w) }));
  if (opts.errorsFile) {
    owners.unshift({ name: "the job's list of skipped items (onItemError: 'skip')", path: opts.errorsFile, claims: [{ kind: 'file', path: opts.errorsFile, what: `write ${opts.errorsFile}` }] });
  }
  for (let i = 0; i < owners.length; i++) {
    for (let j = i + 1; j < owners.length; j++) {
      for (const a of owners[i].claims) {
        const b = owners[j].claims.find((c) => overlap(a, c));
        if (!b) continue;
        throw new SkybatchError(
          'SKYBATCH_E_OUTPUT_CONFLICT',
          `two outputs of one job would write the same files: ${owners[i].name} would ${a.what}, and ${owners[j].name} would ${b.what}; give each writer a path of its own`,
          { context: { path: owners[j].path, field: 'output' } },
        );
      }
    }
  }
}
