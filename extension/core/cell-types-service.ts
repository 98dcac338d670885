import type * as TS from 'typescript';
import { CellTypes, docText, type CellRange } from './cell-types.js';
import type { NotebookCellData } from './notebook-format.js';

/** A question about a position in a notebook's cell, asked of the typed-cells worker. */
export interface CellTypesRequest {
  id: number;
  kind: 'completions' | 'details' | 'hover' | 'signature' | 'forget';
  /** The notebook (its URI) and the script path its types are computed for. */
  notebook: string;
  scriptPath: string;
  cells?: NotebookCellData[];
  cell?: number;
  line?: number;
  character?: number;
  trigger?: string;
  /** `details`: the completion entry. */
  entry?: { name: string; source?: string; data?: TS.CompletionEntryData };
}

export interface CompletionsAnswer {
  entries: { name: string; kind: string; sortText: string; insertText?: string }[];
  replace?: CellRange;
}
export interface DetailsAnswer {
  detail: string;
  documentation: string;
}
export interface HoverAnswer {
  signature: string;
  documentation: string;
  range?: CellRange;
}
export interface SignatureAnswer {
  signatures: { label: string; documentation: string; parameters: { label: string; documentation: string }[] }[];
  activeSignature: number;
  activeParameter: number;
}

export type CellTypesAnswer = CompletionsAnswer | DetailsAnswer | HoverAnswer | SignatureAnswer | undefined;

/**
 * The typed-cells worker's side: one `CellTypes` per notebook, answers as plain JSON (they
 * cross a thread boundary). Kept apart from the thread plumbing so it is tested in plain Node.
 */
export class CellTypesService {
  private readonly byNotebook = new Map<string, CellTypes>();

  constructor(
    private readonly ts: typeof TS,
    private readonly engineRoot: string,
  ) {}

  answer(r: CellTypesRequest): CellTypesAnswer {
    if (r.kind === 'forget') {
      this.byNotebook.get(r.notebook)?.dispose();
      this.byNotebook.delete(r.notebook);
      return undefined;
    }
    let types = this.byNotebook.get(r.notebook);
    if (!types || types.scriptPath !== r.scriptPath) {
      types?.dispose();
      types = new CellTypes(this.ts, r.scriptPath, this.engineRoot);
      this.byNotebook.set(r.notebook, types);
    }
    if (r.cells && !types.update(r.cells)) return undefined;
    const ts = this.ts;
    const [cell, line, character] = [r.cell ?? 0, r.line ?? 0, r.character ?? 0];
    switch (r.kind) {
      case 'completions': {
        const c = types.completions(cell, line, character, r.trigger);
        return c && { entries: c.entries.map((e) => ({ name: e.name, kind: e.kind, sortText: e.sortText, ...(e.insertText ? { insertText: e.insertText } : {}) })), replace: c.replace };
      }
      case 'details': {
        const c = r.entry && types.completions(cell, line, character);
        const d = c?.details(r.entry!.name, r.entry!.source, r.entry!.data);
        return d && { detail: ts.displayPartsToString(d.displayParts), documentation: docText(ts, d.documentation, d.tags) };
      }
      case 'hover':
        return types.hover(cell, line, character);
      case 'signature': {
        const items = types.signatureHelp(cell, line, character);
        if (!items) return undefined;
        return {
          signatures: items.items.map((it) => {
            const sep = ts.displayPartsToString(it.separatorDisplayParts);
            const params = it.parameters.map((p) => ({ label: ts.displayPartsToString(p.displayParts), documentation: docText(ts, p.documentation) }));
            return {
              label: ts.displayPartsToString(it.prefixDisplayParts) + params.map((p) => p.label).join(sep) + ts.displayPartsToString(it.suffixDisplayParts),
              documentation: docText(ts, it.documentation, it.tags),
              parameters: params,
            };
          }),
          activeSignature: items.selectedItemIndex,
          activeParameter: items.argumentIndex,
        };
      }
    }
  }

  dispose(): void {
    for (const t of this.byNotebook.values()) t.dispose();
    this.byNotebook.clear();
  }
}
