/**
 * Which cell printed a line of a submitted job's console output. The generated script
 * (core/job-script.ts) enters each cell before its top-level code runs (`n`, and `-` for
 * the submission) in an AsyncLocalStorage, and wraps `process.stdout.write` and
 * `process.stderr.write`: a write made in another cell's context than the stream's last one
 * is preceded by the line `SKYBATCH_CONSOLE_CELL <n>` (on a line of its own: after a newline
 * if the last write left a line open), so each line belongs to the cell marked last on its
 * stream. The context is the cell whose code made the timer, promise or callback that
 * writes: a timer a definitions cell left prints under that cell even while a later cell or
 * the submission runs. The calls are lines of their own in the script (never in a cell's
 * span), so line mapping stays exact; workers never run them (they are not the mapper's).
 */
export const CONSOLE_CELL_PREFIX = 'SKYBATCH_CONSOLE_CELL ';

/** The marker function the script defines, and the call that opens cell `cell` (undefined: the submission). */
export const CONSOLE_MARKER_FN = '__skybatchConsoleCell';

/**
 * The script's lines (each a line of its own, outside every cell's span) that define the
 * marker function and wrap both streams' writes. The
 * marker is also written at each cell's start, as it was before the wrapping: what Node
 * writes to the fd itself (an uncaught error) goes through no wrapper and belongs to the
 * cell (or submission) that ran last.
 */
export function consoleMarkerDefinition(): string[] {
  return [
    `import { AsyncLocalStorage as __SkybatchCellContext } from 'node:async_hooks';`,
    `const __skybatchCells = new __SkybatchCellContext<number | '-'>();`,
    `const __skybatchStreams = [process.stdout, process.stderr].map((stream) => {`,
    `  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;`,
    `  const s = { marked: undefined as number | '-' | undefined, open: false, mark: (cell: number | '-') => {`,
    `    write(\`\${s.open ? '\\n' : ''}${CONSOLE_CELL_PREFIX}\${cell}\\n\`);`,
    `    s.marked = cell;`,
    `    s.open = false;`,
    `  } };`,
    `  stream.write = ((chunk: unknown, ...rest: unknown[]) => {`,
    `    const cell = __skybatchCells.getStore() ?? '-';`,
    `    if (cell !== s.marked) s.mark(cell);`,
    `    const text = typeof chunk === 'string' ? chunk : (chunk as Uint8Array);`,
    `    if (text.length > 0) s.open = typeof text === 'string' ? !text.endsWith('\\n') : text[text.length - 1] !== 10;`,
    `    return write(chunk, ...rest);`,
    `  }) as typeof stream.write;`,
    `  return s;`,
    `});`,
    `const ${CONSOLE_MARKER_FN} = (cell: number | '-'): void => { __skybatchCells.enterWith(cell); for (const s of __skybatchStreams) s.mark(cell); };`,
  ];
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
