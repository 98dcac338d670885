/**
 * The `.skybatch` file format: Markdown with fenced code cells whose info string names the
 * cell's language and role ("```ts mapper"). Readable in any Markdown viewer, diffable
 * line by line, and exact: `parse(serialize(cells))` gives the same cells and
 * `serialize(parse(text))` the same text for every file this module writes.
 *
 * Layout rules (what makes it exact):
 * - cells are separated by one blank line; two markdown cells in a row also get a
 *   `<!-- cell -->` line between them so their boundary survives;
 * - a code cell's fence is one backtick longer than any backtick run that starts a line
 *   of its content (at least three), so content never closes it early;
 * - a markdown line that looks like a cell fence or the cell marker gets one extra
 *   leading backslash when written and loses one when read.
 *
 * Pure: no `vscode` import, so it is tested in plain Node.
 */

export const ROLES = ['definitions', 'reader', 'mapper', 'writers', 'run'] as const;
export type CellRole = (typeof ROLES)[number];

export interface CodeCell {
  kind: 'code';
  role: CellRole;
  /** VS Code language id: `typescript`, `yaml`, ... */
  language: string;
  source: string;
}

export interface MarkdownCell {
  kind: 'markdown';
  source: string;
}

export type NotebookCellData = CodeCell | MarkdownCell;

/** A file that cannot be read as a Batch Job notebook; `line` is 1-based. */
export class NotebookFormatError extends Error {
  override readonly name = 'NotebookFormatError';
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`invalid .skybatch file, line ${line}: ${message}`);
  }
}

const MARK = '<!-- cell -->';
const OPENER = new RegExp(`^(\`{3,})([A-Za-z0-9_+#.-]+) (${ROLES.join('|')})$`);
const ESCAPED = new RegExp(`^(\\\\*)(\`{3,}[A-Za-z0-9_+#.-]+ (?:${ROLES.join('|')})|${MARK})$`);

const FENCE_LANG: Record<string, string> = { typescript: 'ts', javascript: 'js', yaml: 'yaml', python: 'py' };
const LANG_OF_FENCE: Record<string, string> = { ts: 'typescript', js: 'javascript', yaml: 'yaml', yml: 'yaml', py: 'python' };

/** The role a code cell gets when it has none: YAML holds run settings, Python can only be a mapper, other code is definitions. */
export function defaultRole(language: string): CellRole {
  return language === 'yaml' ? 'run' : language === 'python' ? 'mapper' : 'definitions';
}

export function defaultLanguage(role: CellRole): string {
  return role === 'run' ? 'yaml' : 'typescript';
}

function lines(text: string): string[] {
  return text === '' ? [] : text.split('\n');
}

function fenceFor(source: string): string {
  let longest = 0;
  for (const l of lines(source)) longest = Math.max(longest, /^`*/.exec(l)![0].length);
  return '`'.repeat(Math.max(3, longest + 1));
}

function escapeMarkdown(l: string): string {
  const m = ESCAPED.exec(l);
  return m ? `\\${l}` : l;
}

function unescapeMarkdown(l: string): string {
  const m = ESCAPED.exec(l);
  return m && m[1].length > 0 ? l.slice(1) : l;
}

export function serialize(cells: readonly NotebookCellData[]): string {
  const out: string[] = [];
  cells.forEach((cell, i) => {
    if (i > 0) {
      out.push('');
      if (cell.kind === 'markdown' && cells[i - 1].kind === 'markdown') out.push(MARK, '');
    }
    if (cell.kind === 'markdown') {
      out.push(...lines(cell.source).map(escapeMarkdown));
    } else {
      const fence = fenceFor(cell.source);
      out.push(`${fence}${FENCE_LANG[cell.language] ?? cell.language} ${cell.role}`, ...lines(cell.source), fence);
    }
  });
  // One empty markdown cell has no lines; a lone newline (never written otherwise) stands for it.
  return out.length ? out.join('\n') + '\n' : cells.length ? '\n' : '';
}

export function parse(text: string): NotebookCellData[] {
  if (text.includes('\0')) throw new NotebookFormatError('the file contains NUL bytes; it is not a text notebook', text.slice(0, text.indexOf('\0')).split('\n').length);
  if (text === '\n') return [{ kind: 'markdown', source: '' }];
  const ls = text.replace(/\r\n/g, '\n').split('\n');
  if (ls[ls.length - 1] === '') ls.pop();
  const cells: NotebookCellData[] = [];
  let i = 0;
  let afterMark = false;
  while (i < ls.length) {
    if (cells.length > 0) {
      // the blank line between cells
      if (ls[i] !== '') throw new NotebookFormatError(`expected a blank line between cells, found ${JSON.stringify(ls[i].slice(0, 40))}`, i + 1);
      i++;
      if (i === ls.length) {
        cells.push({ kind: 'markdown', source: '' });
        break;
      }
    }
    const open = afterMark ? null : OPENER.exec(ls[i]);
    afterMark = false;
    if (open) {
      const [, fence, lang, role] = open;
      const start = i;
      const body: string[] = [];
      i++;
      while (i < ls.length && ls[i] !== fence) body.push(ls[i++]);
      if (i === ls.length) throw new NotebookFormatError(`the ${role} cell opened here is never closed with ${fence}; the file may be truncated`, start + 1);
      i++;
      cells.push({ kind: 'code', role: role as CellRole, language: LANG_OF_FENCE[lang] ?? lang, source: body.join('\n') });
      continue;
    }
    let j = i;
    for (; j < ls.length; j++) {
      if (ls[j] !== '') continue;
      if (j + 1 < ls.length && OPENER.test(ls[j + 1])) break;
      if (ls[j + 1] === MARK && ls[j + 2] === '') break;
    }
    cells.push({ kind: 'markdown', source: ls.slice(i, j).map(unescapeMarkdown).join('\n') });
    if (j < ls.length && ls[j + 1] === MARK) {
      i = j + 2;
      afterMark = true;
    } else {
      i = j;
    }
  }
  return cells;
}
