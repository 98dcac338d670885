import * as fs from 'node:fs';
import type { Node, Statement } from '@babel/types';
import { SkybatchError } from '../../formats/common/errors.js';
import { parseFrame, type Frame } from '../mapper-site.js';
import { children, declaredNames, isFunctionLike, isTypeOnly, parseScript, patternNames, rangeOf, referencedNames, unwrapExport, walk } from './script-ast.js';

/** The job's mapper as the client saw it: its name and where `remoteFunction` was called. */
export interface MapperRoot {
  name: string;
  /** Stack frames `file:line:col` in the user's files, innermost first. */
  site: string[];
}

/** A reader or writer type the job uses; `builtin` ones (JsonReader...) need nothing from the script. */
export interface FormatRoot {
  kind: 'reader' | 'writer';
  type: string;
  builtin: boolean;
}

export interface PruneResult {
  code: string;
  /** 1-based lines of the statements that run on workers (whole or in part). */
  keptLines: number[];
  /** Things the user should know (printed at submission), e.g. a mapper created inside main(). */
  notes: string[];
}

/**
 * What workers run of the user's entry script: the statement that creates the job's
 * mapper, the registrations of the job's custom formats, and, transitively, every
 * top-level declaration they mention (with the imports those use). Every other top-level
 * statement is replaced by whitespace of the same shape, so each kept token keeps its line
 * and column: source maps, stack traces and the mapper's call site stay exact.
 */
export function pruneEntry(file: string, source: string, mapper: MapperRoot | undefined, formats: FormatRoot[]): PruneResult {
  const ast = parseScript(source, file);
  const body = ast.program.body;
  const lineStarts = [0];
  for (let i = 0; i < source.length; i++) if (source.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const lineOf = (offset: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const byName = new Map<string, number[]>();
  body.forEach((s, i) => {
    for (const n of declaredNames(s)) byName.set(n, [...(byName.get(n) ?? []), i]);
  });

  const keep = new Set<number>();
  const extract = new Map<number, Node>();
  const queue: Node[] = [];
  const keepStatement = (i: number) => {
    if (keep.has(i)) return;
    keep.add(i);
    extract.delete(i);
    queue.push(body[i]);
  };
  const notes: string[] = [];
  const elsewhere: string[] = [];

  body.forEach((s, i) => {
    if (isTypeOnly(s)) keep.add(i); // emits nothing
    else if (s.type === 'ImportDeclaration' && s.specifiers.length === 0) keepStatement(i); // `import './formats.js'` exists for its effect
  });

  // No mapper: a Python mapper's job (`pythonFunction`), which needs only its custom formats.
  const root = mapper && findMapperRoot(file, source, body, lineStarts, mapper);
  if (root?.kind === 'elsewhere') elsewhere.push(`mapper ${mapper!.name} (${root.where})`);
  else if (root?.kind === 'statement') keepStatement(root.index);
  else if (root) {
    extract.set(root.index, root.node);
    queue.push(root.node);
  }
  if (root && root.kind !== 'elsewhere' && root.note) notes.push(root.note);

  for (const f of formats) {
    if (f.builtin) continue;
    const hits = body.flatMap((s, i) => (registers(s, f.type) ? [i] : []));
    if (hits.length) hits.forEach(keepStatement);
    else elsewhere.push(`${f.kind} '${f.type}'`);
  }
  if (elsewhere.length) {
    // Defined in another of the user's modules: keep the imports of the user's own modules, which load whole.
    body.forEach((s, i) => {
      const from = (s.type === 'ImportDeclaration' || s.type === 'ExportAllDeclaration' || s.type === 'ExportNamedDeclaration') && s.source ? s.source.value : undefined;
      if (from && !isTypeOnly(s) && /^(\.|\/|file:)/.test(from)) keepStatement(i);
    });
  }

  while (queue.length) {
    for (const name of referencedNames(queue.pop()!)) for (const i of byName.get(name) ?? []) keepStatement(i);
  }

  const keptNames = new Set([...keep].flatMap((i) => declaredNames(body[i])));
  const problems: string[] = [];
  body.forEach((s, i) => {
    if (keep.has(i)) return;
    for (const hit of assignmentsTo(s, keptNames, extract.get(i))) {
      const decl = byName.get(hit.name)!.map((j) => lineOf(body[j].start!));
      problems.push(
        `${file}:${lineOf(hit.at)}: this statement does not run on workers, but it ${hit.how} '${hit.name}' (declared at line ${decl.join(', ')}), which the job's mapper or formats use`,
      );
    }
  });
  if (problems.length) {
    throw new SkybatchError(
      'SKYBATCH_E_CANNOT_TRAVEL',
      `${problems.join('\n')}\nWorkers run only the mapper, the job's custom formats and the declarations they use; a value that top-level code builds up afterwards cannot reach them. ` +
        `Compute it in its declaration (const x = ...), or inside the mapper's one-time setup.`,
      { context: { path: file, line: lineOf(body.find((s, i) => !keep.has(i) && assignmentsTo(s, keptNames, extract.get(i)).length)!.start!) } },
    );
  }

  let code = '';
  let at = 0;
  const keptLines = new Set<number>();
  body.forEach((s, i) => {
    const [start, end] = rangeOf(s);
    code += source.slice(at, start);
    const part = extract.get(i);
    if (keep.has(i)) {
      code += source.slice(start, end);
      for (let l = lineOf(start); l <= lineOf(end - 1); l++) keptLines.add(l);
    } else if (part) {
      // `await ds.map(sky.remoteFunction(...), opts)` → `;            sky.remoteFunction(...)          ;`
      const before = blank(source.slice(start, part.start!));
      const after = blank(source.slice(part.end!, end));
      code += (before ? ';' + before.slice(1) : '') + source.slice(part.start!, part.end!) + (after ? after.slice(0, -1) + ';' : ';');
      for (let l = lineOf(part.start!); l <= lineOf(part.end! - 1); l++) keptLines.add(l);
    } else {
      const text = source.slice(start, end);
      // a lone `;` stays, so the statements around never merge across the gap
      code += text.endsWith(';') ? blank(text.slice(0, -1)) + ';' : blank(text);
    }
    at = end;
  });
  code += source.slice(at);
  return { code, keptLines: [...keptLines].sort((a, b) => a - b), notes };
}

/** Same length, same line breaks, nothing else. */
function blank(text: string): string {
  return text.replace(/[^\n\r\u2028\u2029]/g, ' ');
}

type Root = { kind: 'statement'; index: number; note?: string } | { kind: 'expression'; index: number; node: Node; note?: string } | { kind: 'elsewhere'; where: string };

function findMapperRoot(file: string, source: string, body: Statement[], lineStarts: number[], mapper: MapperRoot): Root {
  const frames = mapper.site.map(parseFrame).filter((f): f is Frame => !!f);
  const here = frames.filter((f) => samePath(f.file, file));
  let outer = here[here.length - 1];
  if (!outer) {
    if (frames.length) return { kind: 'elsewhere', where: `created in ${frames[0].file}:${frames[0].line}` };
    outer = staticSite(body, mapper.name, file);
  }
  const pos = lineStarts[outer.line - 1] + outer.column - 1;
  const index = body.findIndex((s) => s.start! <= pos && pos < s.end!);
  if (index < 0) {
    throw new SkybatchError('SKYBATCH_E_MAPPER_NOT_FOUND', `${file}:${outer.line}: cannot find the statement that creates mapper ${mapper.name} (was the script changed after it started?)`, {
      context: { path: file, line: outer.line },
    });
  }
  const s = body[index];
  const parents = new Map<Node, Node>();
  let fn: Node | undefined;
  const calls: Node[] = [];
  walk(s, (n, parent) => {
    if (parent) parents.set(n, parent);
    if (!(n.start! <= pos && pos < n.end!)) return false;
    if (isFunctionLike(n)) fn = n;
    else if (!fn && /^(Call|OptionalCall|New|Await)Expression$/.test(n.type)) calls.push(n);
  });
  if (fn) {
    const name = (fn as { id?: { name?: string } }).id?.name ?? (fn as { key?: { name?: string } }).key?.name;
    throw new SkybatchError(
      'SKYBATCH_E_CANNOT_TRAVEL',
      `${file}:${here[0]?.line ?? outer.line}: mapper ${mapper.name} is created inside ${name ? `function ${name}()` : 'a function'}, after it was called from outside the script's top level (a callback or an await), which workers cannot replay. ` +
        `Create the mapper at the top level of the script: const ${mapper.name} = sky.remoteFunction(async function ${mapper.name}() { ... });`,
      { context: { path: file, line: outer.line } },
    );
  }
  const anchored = calls.filter((c) => anchorOf(c) === pos);
  let node = anchored[anchored.length - 1] ?? calls[calls.length - 1];
  if (!node) return { kind: 'statement', index };
  for (let p = parents.get(node); p && isWrapper(p, node); p = parents.get(node)) node = p;
  const parent = parents.get(node);
  const d = unwrapExport(s);
  const note = here.length > 1 ? submitsFromFunction(body, here[0], lineStarts, file, mapper.name) : undefined;
  if (parent?.type === 'VariableDeclarator' && (parent as { init?: Node }).init === node && parents.get(parent) === d) return { kind: 'statement', index, note };
  if (parent === s && s.type === 'ExpressionStatement') return { kind: 'statement', index, note };
  // The mapper is made inside a larger statement (`await ds.map(sky.remoteFunction(...), ...)`):
  // run just that expression, unless it needs a binding the statement itself makes (a loop variable).
  const locals = new Set<string>();
  walk(s, (n) => {
    if (n === node) return false;
    if (n.type === 'VariableDeclarator') patternNames(n.id).forEach((x) => locals.add(x));
    if (isFunctionLike(n)) for (const p of (n as { params?: Node[] }).params ?? []) patternNames(p).forEach((x) => locals.add(x));
    if (n.type === 'CatchClause' && n.param) patternNames(n.param).forEach((x) => locals.add(x));
  });
  for (const name of referencedNames(node)) if (locals.has(name)) return { kind: 'statement', index, note };
  return { kind: 'expression', index, node, note };
}

function samePath(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
}

/** Where V8 reports a call in a stack frame: the called property or identifier, or the `new`/`await`. */
function anchorOf(n: Node): number {
  if (n.type === 'CallExpression' || n.type === 'OptionalCallExpression') {
    const c = n.callee as Node & { property?: Node };
    if ((c.type === 'MemberExpression' || c.type === 'OptionalMemberExpression') && c.property) return c.property.start!;
    return c.start!;
  }
  return n.start!;
}

function isWrapper(p: Node, child: Node): boolean {
  const x = p as { expression?: Node; argument?: Node };
  switch (p.type) {
    case 'AwaitExpression':
      return x.argument === child;
    case 'ParenthesizedExpression':
    case 'TSAsExpression':
    case 'TSSatisfiesExpression':
    case 'TSNonNullExpression':
    case 'TSTypeAssertion':
      return x.expression === child;
    default:
      return false;
  }
}

/** Without a stack (e.g. a script run without source maps): the one `remoteFunction(...)` whose function has the mapper's name. */
function staticSite(body: Statement[], name: string, file: string): Frame {
  const hits: Frame[] = [];
  for (const s of body) {
    walk(s, (n) => {
      if (n.type !== 'CallExpression') return;
      const c = n.callee as Node & { property?: { name?: string }; name?: string };
      const callee = c.type === 'MemberExpression' ? c.property?.name : c.name;
      if (callee !== 'remoteFunction') return;
      const arg = n.arguments[0] as (Node & { id?: { name: string } | null }) | undefined;
      const argName = arg?.id?.name ?? (arg?.type === 'Identifier' ? arg.name : 'anonymous');
      if (argName === name) {
        const at = c.type === 'MemberExpression' ? (c.property as unknown as Node) : c;
        hits.push({ file, line: at.loc!.start.line, column: at.loc!.start.column + 1 });
      }
    });
  }
  if (hits.length === 1) return hits[0];
  throw new SkybatchError(
    'SKYBATCH_E_MAPPER_NOT_FOUND',
    `${file}: cannot tell which remoteFunction(...) creates mapper ${name} (${hits.length} candidates); give each mapper its own function name`,
    { context: { path: file } },
  );
}

/** A note when the mapper comes from a function that also submits the job (a `main()`): workers run that call too. */
function submitsFromFunction(body: Statement[], inner: Frame, lineStarts: number[], file: string, name: string): string | undefined {
  const pos = lineStarts[inner.line - 1] + inner.column - 1;
  let fn: Node | undefined;
  for (const s of body) walk(s, (n) => (n.start! <= pos && pos < n.end! ? ((fn = isFunctionLike(n) ? n : fn), true) : false));
  if (!fn) return undefined;
  let submits = false;
  walk(fn, (n) => {
    if (n.type !== 'CallExpression' || n.callee.type !== 'MemberExpression' || (n.callee.property as { name?: string }).name !== 'map') return;
    const opts = n.arguments[1];
    if (opts?.type === 'ObjectExpression' && opts.properties.some((p) => p.type === 'ObjectProperty' && (p.key as { name?: string }).name === 'poolName')) submits = true;
  });
  if (!submits) return undefined;
  const fname = (fn as { id?: { name?: string } }).id?.name ?? 'the function';
  return `${file}:${inner.line}: mapper ${name} is created inside ${fname}(), which also submits the job, so each worker runs ${fname}() up to its map() call. Define the mapper at the top level of the script so workers run only the mapper.`;
}

/** Whether a statement registers a format under `type`: `@R.typeRegister('type')` or `R.register('type', Cls)`. */
function registers(s: Statement, type: string): boolean {
  let found = false;
  walk(s, (n) => {
    if (found) return false;
    if (n.type !== 'CallExpression' || (n.callee.type !== 'MemberExpression' && n.callee.type !== 'OptionalMemberExpression')) return;
    const method = (n.callee.property as { name?: string }).name;
    if (method !== 'typeRegister' && method !== 'register') return;
    const a = n.arguments[0];
    if (a?.type === 'StringLiteral' && a.value === type) found = true;
    if (a?.type === 'ObjectExpression' && a.properties.some((p) => p.type === 'ObjectProperty' && (p.key as { name?: string }).name === 'name' && p.value.type === 'StringLiteral' && p.value.value === type)) found = true;
  });
  return found;
}

/**
 * Assignments in `s` (outside `skip`) to one of `names` as top-level bindings: `x = ...`,
 * `x++`, `x.y = ...`, `delete x.y`, `for (x of ...)`. Locals of the same name shadow.
 */
function assignmentsTo(s: Statement, names: Set<string>, skip?: Node): { name: string; at: number; how: string }[] {
  const hits: { name: string; at: number; how: string }[] = [];
  if (!names.size) return hits;
  const visit = (n: Node, shadow: ReadonlySet<string>) => {
    if (n === skip) return;
    const local = scopeNames(n);
    const inner = local.length ? new Set([...shadow, ...local]) : shadow;
    const target = (t: Node | null | undefined, how: string) => {
      if (!t) return;
      let root: Node = t;
      let member = false;
      while (root.type === 'MemberExpression' || root.type === 'OptionalMemberExpression' || root.type === 'TSNonNullExpression' || root.type === 'TSAsExpression') {
        root = (root as { object?: Node; expression?: Node }).object ?? (root as { expression: Node }).expression;
        member = true;
      }
      const ids = root.type === 'Identifier' ? [root.name] : patternNames(root);
      for (const id of ids) if (names.has(id) && !inner.has(id)) hits.push({ name: id, at: t.start!, how: member ? 'changes' : 'assigns' });
    };
    if (n.type === 'AssignmentExpression') target(n.left, '');
    else if (n.type === 'UpdateExpression') target(n.argument, '');
    else if (n.type === 'UnaryExpression' && n.operator === 'delete') target(n.argument, '');
    else if ((n.type === 'ForOfStatement' || n.type === 'ForInStatement') && n.left.type !== 'VariableDeclaration') target(n.left, '');
    for (const c of children(n)) visit(c, inner);
  };
  visit(s, new Set());
  return hits;
}

/** Names a scope node binds for its inside (over-approximated: a whole function's declarations). */
function scopeNames(n: Node): string[] {
  const out: string[] = [];
  if (isFunctionLike(n)) {
    const f = n as { params?: Node[]; id?: Node | null; body?: Node };
    for (const p of f.params ?? []) patternNames(p, out);
    if (f.id && n.type !== 'FunctionDeclaration') patternNames(f.id, out);
    if (f.body)
      walk(f.body, (m) => {
        if (m !== f.body && isFunctionLike(m)) {
          if (m.type === 'FunctionDeclaration' && m.id) out.push(m.id.name);
          return false;
        }
        if (m.type === 'VariableDeclaration') for (const d of m.declarations) patternNames(d.id, out);
        if (m.type === 'ClassDeclaration' && m.id) out.push(m.id.name);
        if (m.type === 'CatchClause' && m.param) patternNames(m.param, out);
      });
    return out;
  }
  const direct = (list: Node[]) => {
    for (const st of list) {
      if (st.type === 'VariableDeclaration' && st.kind !== 'var') for (const d of st.declarations) patternNames(d.id, out);
      if ((st.type === 'FunctionDeclaration' || st.type === 'ClassDeclaration') && st.id) out.push(st.id.name);
    }
  };
  if (n.type === 'BlockStatement' || n.type === 'StaticBlock') direct(n.body);
  else if (n.type === 'SwitchStatement') direct(n.cases.flatMap((c) => c.consequent));
  else if ((n.type === 'ForStatement' && n.init?.type === 'VariableDeclaration') || ((n.type === 'ForOfStatement' || n.type === 'ForInStatement') && n.left.type === 'VariableDeclaration')) {
    const decl = (n.type === 'ForStatement' ? n.init : n.left) as Node & { kind: string; declarations: { id: Node }[] };
    if (decl.kind !== 'var') for (const d of decl.declarations) patternNames(d.id, out);
  } else if (n.type === 'CatchClause' && n.param) patternNames(n.param, out);
  return out;
}
