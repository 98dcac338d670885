import * as path from 'node:path';
import type * as TS from 'typescript';
import { generateJobScript, type CellSpan, type JobScript } from './job-script.js';
import type { NotebookCellData } from './notebook-format.js';
import type { RunSettings } from './run-settings.js';

/**
 * Compiler options for a notebook's generated script, as the engine bundles it (ESM, top-level
 * await, decorators in either form). `skybatch` is the engine's own declarations
 * (`<engineRoot>/out/index.d.ts`): the package that runs the job is the package that types
 * it, also in a workspace with no node_modules. Anything else the cells import resolves from
 * the notebook's folder, as at run time.
 */
export function scriptCompilerOptions(ts: typeof TS, engineRoot: string): TS.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2023.d.ts'],
    strict: true,
    skipLibCheck: true,
    esModuleInterop: true,
    allowImportingTsExtensions: true,
    noEmit: true,
    types: ['node'],
    typeRoots: [path.join(engineRoot, 'node_modules', '@types')],
    paths: { skybatch: [path.join(engineRoot, 'out', 'index.d.ts')] },
  };
}

/** Settings the script is typed with when the run cell is not valid yet: only its options literal depends on them. */
const PLACEHOLDER: RunSettings = { pool: 'pool', batchSize: 1 };

export interface CellRange {
  cell: number;
  line: number;
  character: number;
  endLine: number;
  endCharacter: number;
}

/**
 * TypeScript's view of a notebook's TypeScript cells, through the script the notebook runs
 * as (core/job-script.ts): each cell is where it will be when the job runs, so the mapper
 * cell is the body of an async function, `sky` is the real package, and definitions are
 * seen from every cell. Completions, hovers and signature help of a cell position are asked
 * of one TypeScript LanguageService over that script, and their ranges mapped back.
 * Pure (no `vscode`): `ts` is whichever TypeScript the caller has (VS Code's own, in the editor).
 */
export class CellTypes {
  private script?: JobScript;
  private lineStarts: number[] = [];
  private version = 0;
  private readonly service: TS.LanguageService;

  constructor(
    private readonly ts: typeof TS,
    readonly scriptPath: string,
    engineRoot: string,
  ) {
    const options = scriptCompilerOptions(ts, engineRoot);
    const host: TS.LanguageServiceHost = {
      getCompilationSettings: () => options,
      getScriptFileNames: () => [scriptPath],
      getScriptVersion: (f) => (f === scriptPath ? String(this.version) : '0'),
      getScriptSnapshot: (f) => {
        if (f === scriptPath) return this.script && ts.ScriptSnapshot.fromString(this.script.code);
        const text = ts.sys.readFile(f);
        return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
      },
      getCurrentDirectory: () => path.dirname(scriptPath),
      getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
      fileExists: (f) => f === scriptPath || ts.sys.fileExists(f),
      readFile: (f) => (f === scriptPath ? this.script?.code : ts.sys.readFile(f)),
      readDirectory: ts.sys.readDirectory,
      directoryExists: ts.sys.directoryExists,
      getDirectories: ts.sys.getDirectories,
      realpath: ts.sys.realpath,
    };
    this.service = ts.createLanguageService(host, ts.createDocumentRegistry());
  }

  /** Takes the notebook's cells as they are now. Returns false when they make no script yet (a role is missing). */
  update(cells: readonly NotebookCellData[], settings?: RunSettings): boolean {
    let script: JobScript;
    try {
      script = generateJobScript(cells, settings ?? PLACEHOLDER, path.basename(this.scriptPath).replace(/^\.|\.ts$/g, ''));
    } catch {
      this.script = undefined;
      return false;
    }
    if (script.code !== this.script?.code) this.version++;
    this.script = script;
    this.lineStarts = [0];
    for (let i = 0; i < script.code.length; i++) if (script.code.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
    return true;
  }

  private offset(cell: number, line: number, character: number): number | undefined {
    const span = this.script?.spans.find((s) => s.cell === cell && line >= 0 && line < s.lineCount);
    return span && this.lineStarts[span.startLine + line] + character;
  }

  /** A script text span back in the cell it came from; undefined when it is in the generated lines. */
  private cellRange(cell: number, start: number, length: number): CellRange | undefined {
    const span = this.script?.spans.find((s) => s.cell === cell);
    if (!span) return undefined;
    const pos = (o: number) => {
      let l = this.lineStarts.length - 1;
      while (l > 0 && this.lineStarts[l] > o) l--;
      return { line: l - span.startLine, character: o - this.lineStarts[l] };
    };
    const a = pos(start);
    const b = pos(start + length);
    if (a.line < 0 || b.line >= span.lineCount) return undefined;
    return { cell, line: a.line, character: a.character, endLine: b.line, endCharacter: b.character };
  }

  spanOf(cell: number): CellSpan | undefined {
    return this.script?.spans.find((s) => s.cell === cell);
  }

  completions(cell: number, line: number, character: number, trigger?: string): { entries: readonly TS.CompletionEntry[]; replace?: CellRange; details: (name: string, source?: string, data?: TS.CompletionEntryData) => TS.CompletionEntryDetails | undefined } | undefined {
    const at = this.offset(cell, line, character);
    if (at === undefined) return undefined;
    const r = this.service.getCompletionsAtPosition(this.scriptPath, at, {
      includeCompletionsWithInsertText: true,
      triggerCharacter: trigger as TS.CompletionsTriggerCharacter | undefined,
      includeCompletionsForModuleExports: false,
    });
    if (!r) return undefined;
    return {
      entries: r.entries,
      replace: r.optionalReplacementSpan && this.cellRange(cell, r.optionalReplacementSpan.start, r.optionalReplacementSpan.length),
      details: (name, source, data) => this.service.getCompletionEntryDetails(this.scriptPath, at, name, {}, source, {}, data),
    };
  }

  /** The hover text of a position: its declaration line and its documentation, as Markdown-ready parts. */
  hover(cell: number, line: number, character: number): { signature: string; documentation: string; range?: CellRange } | undefined {
    const at = this.offset(cell, line, character);
    if (at === undefined) return undefined;
    const info = this.service.getQuickInfoAtPosition(this.scriptPath, at);
    if (!info) return undefined;
    return {
      signature: this.ts.displayPartsToString(info.displayParts),
      documentation: docText(this.ts, info.documentation, info.tags),
      range: this.cellRange(cell, info.textSpan.start, info.textSpan.length),
    };
  }

  signatureHelp(cell: number, line: number, character: number): TS.SignatureHelpItems | undefined {
    const at = this.offset(cell, line, character);
    if (at === undefined) return undefined;
    return this.service.getSignatureHelpItems(this.scriptPath, at, undefined);
  }

  /** Type errors of the whole script (what `tsc` would say), for tests and the Show Generated Script view. */
  diagnostics(): readonly TS.Diagnostic[] {
    return [...this.service.getSyntacticDiagnostics(this.scriptPath), ...this.service.getSemanticDiagnostics(this.scriptPath)];
  }

  dispose(): void {
    this.service.dispose();
  }
}

export function docText(ts: typeof TS, doc: readonly TS.SymbolDisplayPart[] | undefined, tags?: readonly TS.JSDocTagInfo[]): string {
  const parts = [ts.displayPartsToString(doc as TS.SymbolDisplayPart[] | undefined)];
  for (const t of tags ?? []) parts.push(`*@${t.name}*${t.text ? ` — ${ts.displayPartsToString(t.text as TS.SymbolDisplayPart[])}` : ''}`);
  return parts.filter(Boolean).join('\n\n');
}
