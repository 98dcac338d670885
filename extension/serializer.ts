import * as vscode from 'vscode';
import { defaultRole, parse, serialize, type CellRole, type NotebookCellData } from './core/notebook-format.js';

export const NOTEBOOK_TYPE = 'skybatch-job';

/** The role of a VS Code cell: its metadata, else what its language implies. */
export function roleOf(cell: { kind: vscode.NotebookCellKind; metadata?: { [k: string]: unknown }; document?: { languageId: string }; languageId?: string }): CellRole | undefined {
  if (cell.kind !== vscode.NotebookCellKind.Code) return undefined;
  const r = cell.metadata?.role;
  return typeof r === 'string' ? (r as CellRole) : defaultRole(cell.document?.languageId ?? cell.languageId ?? 'typescript');
}

export function toCellData(cells: readonly NotebookCellData[]): vscode.NotebookCellData[] {
  return cells.map((c) => {
    if (c.kind === 'markdown') return new vscode.NotebookCellData(vscode.NotebookCellKind.Markup, c.source, 'markdown');
    const d = new vscode.NotebookCellData(vscode.NotebookCellKind.Code, c.source, c.language);
    d.metadata = { role: c.role };
    return d;
  });
}

export function fromCellData(cells: readonly vscode.NotebookCellData[]): NotebookCellData[] {
  return cells.map((c) =>
    c.kind === vscode.NotebookCellKind.Markup
      ? { kind: 'markdown', source: c.value }
      : { kind: 'code', role: roleOf({ kind: c.kind, metadata: c.metadata, languageId: c.languageId })!, language: c.languageId, source: c.value },
  );
}

/** The cells of an open notebook document, in the format module's terms. */
export function cellsOf(doc: vscode.NotebookDocument): NotebookCellData[] {
  return doc.getCells().map((c) =>
    c.kind === vscode.NotebookCellKind.Markup
      ? { kind: 'markdown', source: c.document.getText() }
      : { kind: 'code', role: roleOf(c)!, language: c.document.languageId, source: c.document.getText() },
  );
}

/**
 * Reads and writes `.skybatch` files. Outputs are transient: they describe a run, not the
 * job, and live in the extension's workspace state instead (see job-records.ts), so a run
 * never dirties the file and diffs show only the job.
 */
export class BatchJobSerializer implements vscode.NotebookSerializer {
  static readonly options: vscode.NotebookDocumentContentOptions = { transientOutputs: true, transientCellMetadata: { inputCollapsed: true, outputCollapsed: true } };

  deserializeNotebook(content: Uint8Array): vscode.NotebookData {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    } catch {
      throw new Error('invalid .skybatch file: it is not UTF-8 text');
    }
    // A NotebookFormatError names the line; VS Code shows it in place of the editor.
    return new vscode.NotebookData(toCellData(parse(text)));
  }

  serializeNotebook(data: vscode.NotebookData): Uint8Array {
    return new TextEncoder().encode(serialize(fromCellData(data.cells)));
  }
}

export function registerSerializer(): vscode.Disposable {
  return vscode.workspace.registerNotebookSerializer(NOTEBOOK_TYPE, new BatchJobSerializer(), BatchJobSerializer.options);
}
