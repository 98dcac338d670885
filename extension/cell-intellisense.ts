import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type * as TS from 'typescript';
import * as vscode from 'vscode';
import { CellTypes, docText, type CellRange } from './core/cell-types.js';
import { scriptPathFor } from './job-launcher.js';
import { NOTEBOOK_TYPE, cellsOf } from './serializer.js';

/**
 * VS Code's own TypeScript (what its TypeScript extension runs), else the engine's dev
 * dependency in a checkout. The .vsix ships none: a second copy would add 20 MB.
 */
function loadTypeScript(engineRoot: string): typeof TS | undefined {
  const req = createRequire(__filename);
  for (const dir of [path.join(vscode.env.appRoot, 'extensions', 'node_modules', 'typescript'), path.join(engineRoot, 'node_modules', 'typescript')]) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return req(dir) as typeof TS;
  }
  return undefined;
}

const KINDS: Record<string, vscode.CompletionItemKind> = {
  method: vscode.CompletionItemKind.Method,
  function: vscode.CompletionItemKind.Function,
  'local function': vscode.CompletionItemKind.Function,
  property: vscode.CompletionItemKind.Property,
  getter: vscode.CompletionItemKind.Property,
  class: vscode.CompletionItemKind.Class,
  interface: vscode.CompletionItemKind.Interface,
  type: vscode.CompletionItemKind.TypeParameter,
  const: vscode.CompletionItemKind.Constant,
  let: vscode.CompletionItemKind.Variable,
  var: vscode.CompletionItemKind.Variable,
  'local var': vscode.CompletionItemKind.Variable,
  parameter: vscode.CompletionItemKind.Variable,
  module: vscode.CompletionItemKind.Module,
  alias: vscode.CompletionItemKind.Module,
  keyword: vscode.CompletionItemKind.Keyword,
  enum: vscode.CompletionItemKind.Enum,
};

class CellCompletion extends vscode.CompletionItem {
  constructor(
    readonly entry: TS.CompletionEntry,
    readonly details: (name: string, source?: string, data?: TS.CompletionEntryData) => TS.CompletionEntryDetails | undefined,
  ) {
    super(entry.name, KINDS[entry.kind] ?? vscode.CompletionItemKind.Text);
  }
}

/**
 * Completions, hovers and signature help in a Batch Job notebook's TypeScript cells, from
 * TypeScript's view of the script the notebook runs as (core/cell-types.ts): `sky` is the
 * skybatch package this extension runs, the mapper cell is the body of an async function
 * (so `batch` is `sky.Item[]`), and the definitions cells are seen from every other cell.
 * VS Code's TypeScript extension sees each cell alone, where `sky` is unknown.
 */
export class CellIntellisense implements vscode.CompletionItemProvider<CellCompletion>, vscode.HoverProvider, vscode.SignatureHelpProvider {
  private readonly byNotebook = new Map<string, CellTypes>();

  constructor(
    private readonly ts: typeof TS,
    private readonly engineRoot: string,
  ) {}

  /** The cell's notebook, brought up to date, and the cell's index in it. */
  private locate(doc: vscode.TextDocument): { types: CellTypes; cell: number } | undefined {
    for (const nb of vscode.workspace.notebookDocuments) {
      if (nb.notebookType !== NOTEBOOK_TYPE) continue;
      const cell = nb.getCells().findIndex((c) => c.document === doc);
      if (cell < 0) continue;
      const key = nb.uri.toString();
      let types = this.byNotebook.get(key);
      if (!types) {
        types = new CellTypes(this.ts, scriptPathFor(nb.uri.scheme === 'file' ? nb.uri.fsPath : path.join(this.engineRoot, path.basename(nb.uri.path))), this.engineRoot);
        this.byNotebook.set(key, types);
      }
      return types.update(cellsOf(nb)) ? { types, cell } : undefined;
    }
    return undefined;
  }

  private static range(r: CellRange | undefined): vscode.Range | undefined {
    return r && new vscode.Range(r.line, r.character, r.endLine, r.endCharacter);
  }

  provideCompletionItems(doc: vscode.TextDocument, pos: vscode.Position, _t: vscode.CancellationToken, ctx: vscode.CompletionContext): vscode.CompletionList<CellCompletion> | undefined {
    const at = this.locate(doc);
    const r = at?.types.completions(at.cell, pos.line, pos.character, ctx.triggerCharacter);
    if (!r) return undefined;
    const replace = CellIntellisense.range(r.replace);
    return new vscode.CompletionList(
      r.entries.map((e) => {
        const item = new CellCompletion(e, r.details);
        item.sortText = e.sortText;
        if (e.insertText) item.insertText = e.insertText;
        if (replace) item.range = replace;
        return item;
      }),
    );
  }

  resolveCompletionItem(item: CellCompletion): CellCompletion {
    const d = item.details(item.entry.name, item.entry.source, item.entry.data);
    if (d) {
      item.detail = this.ts.displayPartsToString(d.displayParts);
      const doc = docText(this.ts, d.documentation, d.tags);
      if (doc) item.documentation = new vscode.MarkdownString(doc);
    }
    return item;
  }

  provideHover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const at = this.locate(doc);
    const h = at?.types.hover(at.cell, pos.line, pos.character);
    if (!h) return undefined;
    const md = new vscode.MarkdownString().appendCodeblock(h.signature, 'typescript');
    if (h.documentation) md.appendMarkdown('\n\n' + h.documentation);
    return new vscode.Hover(md, CellIntellisense.range(h.range));
  }

  provideSignatureHelp(doc: vscode.TextDocument, pos: vscode.Position): vscode.SignatureHelp | undefined {
    const at = this.locate(doc);
    const items = at?.types.signatureHelp(at.cell, pos.line, pos.character);
    if (!items) return undefined;
    const ts = this.ts;
    const help = new vscode.SignatureHelp();
    help.signatures = items.items.map((it) => {
      const sep = ts.displayPartsToString(it.separatorDisplayParts);
      const params = it.parameters.map((p) => ts.displayPartsToString(p.displayParts));
      const sig = new vscode.SignatureInformation(ts.displayPartsToString(it.prefixDisplayParts) + params.join(sep) + ts.displayPartsToString(it.suffixDisplayParts), new vscode.MarkdownString(docText(ts, it.documentation, it.tags)));
      sig.parameters = it.parameters.map((p, i) => new vscode.ParameterInformation(params[i], new vscode.MarkdownString(docText(ts, p.documentation))));
      return sig;
    });
    help.activeSignature = items.selectedItemIndex;
    help.activeParameter = items.argumentIndex;
    return help;
  }

  forget(nb: vscode.NotebookDocument): void {
    this.byNotebook.get(nb.uri.toString())?.dispose();
    this.byNotebook.delete(nb.uri.toString());
  }

  dispose(): void {
    for (const t of this.byNotebook.values()) t.dispose();
    this.byNotebook.clear();
  }
}

export function registerCellIntellisense(engineRoot: string, log: vscode.OutputChannel): vscode.Disposable {
  const ts = loadTypeScript(engineRoot);
  if (!ts) {
    log.appendLine('typed cells: no TypeScript found (VS Code ships one with its TypeScript extension); cells get no completions from skybatch');
    return new vscode.Disposable(() => {});
  }
  const provider = new CellIntellisense(ts, engineRoot);
  const selector: vscode.DocumentSelector = ['typescript', 'javascript'].map((language) => ({ scheme: 'vscode-notebook-cell', notebookType: NOTEBOOK_TYPE, language }));
  return vscode.Disposable.from(
    provider,
    vscode.languages.registerCompletionItemProvider(selector, provider, '.', '"', "'", '/', '@', '<'),
    vscode.languages.registerHoverProvider(selector, provider),
    vscode.languages.registerSignatureHelpProvider(selector, provider, '(', ','),
    vscode.workspace.onDidCloseNotebookDocument((nb) => provider.forget(nb)),
  );
}
