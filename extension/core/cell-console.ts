/**
 * Which cell printed a line of a submitted job's console output. The generated script
 * (core/job-script.ts) calls a marker between cells: it prints `SKYBATCH_CONSOLE_CELL <n>`
 * on stdout and on stderr before cell n's top-level code runs, and `SKYBATCH_CONSOLE_CELL -`
 * before the submission, so each line that follows on either stream belongs to the cell
 * marked last on that stream. The marker is a line of its own in the script (never in a
 * cell's span), so line mapping stays exact.
 */
export const CONSOLE_CELL_PREFIX = 'SKYBATCH_CONSOLE_CELL ';

/** The marker function the script defines, and the call that opens cell `cell` (undefined: the submission). */
export const CONSOLE_MARKER_FN = '__skybatchConsoleCell';

export function consoleMarkerDefinition(): string {
  return `const ${CONSOLE_MARKER_FN} = (cell: number | '-'): void => { const m = \`${CONSOLE_CELL_PREFIX}\${cell}\\n\`; process.stdout.write(m); process.stderr.write(m); };`;
}

export function consoleMarkerCall(cell: number | undefined): string {
  return `${CONSOLE_MARKER_FN}(${cell === undefined ? "'-'" : cell});`;
}

/** `text` without the markers' lines (a script's stderr as an error message). */
export function withoutMarkers(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith(CONSOLE_CELL_PREFIX))
    .join('\n');
}

/**
 * Follows one stream of a run: `line()` says whether a line was a marker (to drop), a cell's
 * console output, or the script's own (the submission's, or printed before any cell).
 */
export class CellConsoleRouter {
  private current: number | undefined;

  line(text: string): { marker: true } | { cell: number } | { cell: undefined } {
    if (text.startsWith(CONSOLE_CELL_PREFIX)) {
      const v = text.slice(CONSOLE_CELL_PREFIX.length).trim();
      this.current = /^\d+$/.test(v) ? Number(v) : undefined;
      return { marker: true };
    }
    return { cell: this.current };
  }
}
