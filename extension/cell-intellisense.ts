import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as vscode from 'vscode';
import type { CellRange } from './core/cell-types.js';
import type { CellTypesAnswer, CellTypesRequest, CompletionsAnswer, DetailsAnswer, HoverAnswer, SignatureAnswer } from './core/cell-types-service.js';
import { scriptPathFor } from './job-launcher.js';
import { NOTEBOOK_TYPE, cellsOf } from './serializer.js';

/**
 * VS Code's own TypeScript (what its TypeScript extension runs), else the engine's dev
 * dependency in a checkout. The .vsix ships none: a second copy would add 20 MB.
 */
function typeScriptDir(engineRoot: string): string | undefined {
  return [path.join(vscode.env.appRoot, 'extensions', 'node_modules', 'typescript'), path.join(engineRoot, 'node_modules', 'typescript')].find((d) => fs.existsSync(path.join(d, 'package.json')));
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
  // re-exports (every name of `sky`): what they are shows in the resolved item's detail
  alias: vscode.CompletionItemKind.Reference,
  keyword: vscode.CompletionItemKind.Keyword,
  enum: vscode.CompletionItemKind.Enum,
};

class CellCompletion extends vscode.CompletionItem {
  constructor(
    label: string,
    kind: string,
    /** The request that found it: `details` asks again at the same place. */
    readonly at: CellTypesRequest,
  ) {
    super(label, KINDS[kind] ?? vscode.CompletionItemKind.Text);
  }
}

const range = (r: CellRange | undefined) => r && new vscode.Range(r.line, r.character, r.endLine, r.endCharacter);

/** The typed-cells worker thread (cell-types-worker.ts), started on the first question. */
class TypesWorker implements vscode.Disposable {
  private worker?: Worker;
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (a: CellTypesAnswer) => void }>();

  constructor(
    private readonly typescript: string,
    private readonly engineRoot: string,
    private readonly log: vscode.OutputChannel,
  ) {}

  get started(): boolean {
    return this.worker !== undefined;
  }

  ask(r: Omit<CellTypesRequest, 'id'>): Promise<CellTypesAnswer> {
    if (!this.worker) {
      this.worker = new Worker(path.join(__dirname, 'cell-types-worker.cjs'), { workerData: { typescript: this.typescript, engineRoot: this.engineRoot } });
      this.worker.unref();
      this.worker.on('message', (m: { id: number; answer?: CellTypesAnswer; error?: string }) => {
        if (m.error) this.log.appendLine(`typed cells: ${m.error}`);
        this.waiting.get(m.id)?.resolve(m.answer);
        this.waiting.delete(m.id);
      });
      // A worker that died answers nothing: the next question starts another.
      const gone = (why: string) => {
        this.log.appendLine(`typed cells: the worker stopped (${why})`);
        this.worker = undefined;
        for (const w of this.waiting.values()) w.resolve(undefined);
        this.waiting.clear();
      };
      this.worker.on('error', (e) => gone(e.message));
      this.worker.on('exit', (code) => this.worker && gone(`exit ${code}`));
    }
    const id = this.next++;
    const t0 = Date.now();
    const answer = new Promise<CellTypesAnswer>((resolve) => {
      this.waiting.set(id, { resolve });
      this.worker!.postMessage({ ...r, id });
    });
    // The first answer builds TypeScript's program (seconds): the log says when it is there.
    if (id === 1) void answer.then((a) => this.log.appendLine(`typed cells: first answer (${r.kind}${a ? '' : ', none'}) in ${Date.now() - t0} ms`));
    return answer;
  }

  dispose(): void {
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate();
  }
}

/**
 * Completions, hovers and signature help in a Batch Job notebook's TypeScript cells, from
 * TypeScript's view of the script the notebook runs as (core/cell-types.ts), computed in a
 * worker thread: `sky` is the skybatch package this extension runs, the mapper cell is the
 * body of an async function (so `batch` is `sky.Item[]`), and the definitions cells are seen
 * from every other cell. VS Code's TypeScript extension sees each cell alone, where `sky` is unknown.
 */
export class CellIntellisense implements vscode.CompletionItemProvider<CellCompletion>, vscode.HoverProvider, vscode.SignatureHelpProvider {
  constructor(private readonly worker: TypesWorker) {}

  /** The question's place: the cell's notebook as it is now, and the cell's index in it. */
  private place(doc: vscode.TextDocument, pos: vscode.Position): Omit<CellTypesRequest, 'id' | 'kind'> | undefined {
    for (const nb of vscode.workspace.notebookDocuments) {
      if (nb.notebookType !== NOTEBOOK_TYPE) continue;
      const uri = doc.uri.toString();
      const cell = nb.getCells().findIndex((c) => c.document.uri.toString() === uri);
      if (cell < 0) continue;
      const file = nb.uri.scheme === 'file' ? nb.uri.fsPath : path.join(vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '/', path.basename(nb.uri.path));
      return { notebook: nb.uri.toString(), scriptPath: scriptPathFor(file), cells: cellsOf(nb), cell, line: pos.line, character: pos.character };
    }
    return undefined;
  }

  async provideCompletionItems(doc: vscode.TextDocument, pos: vscode.Position, _t: vscode.CancellationToken, ctx: vscode.CompletionContext): Promise<vscode.CompletionList<CellCompletion> | undefined> {
    const at = this.place(doc, pos);
    const r = at && ((await this.worker.ask({ ...at, kind: 'completions', trigger: ctx.triggerCharacter })) as CompletionsAnswer | undefined);
    if (!at || !r) return undefined;
    const replace = range(r.replace);
    return new vscode.CompletionList(
      r.entries.map((e) => {
        const item = new CellCompletion(e.name, e.kind, { ...at, id: 0, kind: 'details', entry: { name: e.name } });
        item.sortText = e.sortText;
        if (e.insertText) item.insertText = e.insertText;
        if (replace) item.range = replace;
        return item;
      }),
    );
  }

  async resolveCompletionItem(item: CellCompletion): Promise<CellCompletion> {
    const d = (await this.worker.ask(item.at)) as DetailsAnswer | undefined;
    if (d) {
      item.detail = d.detail;
      if (d.documentation) item.documentation = new vscode.MarkdownString(d.documentation);
    }
    return item;
  }

  async provideHover(doc: vscode.TextDocument, pos: vscode.Position): Promise<vscode.Hover | undefined> {
    const at = this.place(doc, pos);
    const h = at && ((await this.worker.ask({ ...at, kind: 'hover' })) as HoverAnswer | undefined);
    if (!h) return undefined;
    const md = new vscode.MarkdownString().appendCodeblock(h.signature, 'typescript');
    if (h.documentation) md.appendMarkdown('\n\n' + h.documentation);
    return new vscode.Hover(md, range(h.range));
  }

  async provideSignatureHelp(doc: vscode.TextDocument, pos: vscode.Position): Promise<vscode.SignatureHelp | undefined> {
    const at = this.place(doc, pos);
    const s = at && ((await this.worker.ask({ ...at, kind: 'signature' })) as SignatureAnswer | undefined);
    if (!s) return undefined;
    const help = new vscode.SignatureHelp();
    help.signatures = s.signatures.map((x) => {
      const sig = new vscode.SignatureInformation(x.label, new vscode.MarkdownString(x.documentation));
      sig.parameters = x.parameters.map((p) => new vscode.ParameterInformation(p.label, new vscode.MarkdownString(p.documentation)));
      return sig;
    });
    help.activeSignature = s.activeSignature;
    help.activeParameter = s.activeParameter;
    return help;
  }
}

export function registerCellIntellisense(engineRoot: string, log: vscode.OutputChannel): vscode.Disposable {
  const typescript = typeScriptDir(engineRoot);
  if (!typescript) {
    log.appendLine('typed cells: no TypeScript found (VS Code ships one with its TypeScript extension); cells get no completions from skybatch');
    return new vscode.Disposable(() => {});
  }
  const worker = new TypesWorker(typescript, engineRoot, log);
  const provider = new CellIntellisense(worker);
  // Every notebook's TypeScript cells: place() answers only for Batch Job notebooks.
  const selector: vscode.DocumentSelector = ['typescript', 'javascript'].map((language) => ({ scheme: 'vscode-notebook-cell', language }));
  return vscode.Disposable.from(
    worker,
    vscode.languages.registerCompletionItemProvider(selector, provider, '.', '"', "'", '/', '@', '<'),
    vscode.languages.registerHoverProvider(selector, provider),
    vscode.languages.registerSignatureHelpProvider(selector, provider, '(', ','),
    vscode.workspace.onDidCloseNotebookDocument((nb) => worker.started && void worker.ask({ kind: 'forget', notebook: nb.uri.toString(), scriptPath: '' })),
  );
}
