/** A problem found in one cell, before anything runs. Lines and columns are 0-based, within the cell. */
export interface CellProblem {
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  message: string;
  severity: 'error' | 'warning';
}

/** A problem located in a notebook: which cell (by index) and where in it. */
export interface NotebookProblem extends CellProblem {
  cell: number;
}
