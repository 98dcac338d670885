import { parse, type ParserPlugin } from '@babel/parser';
import type { File, Node, Statement } from '@babel/types';
import { SkybatchError } from '../../formats/common/errors.js';

/**
 * What the pruner needs from a user's script: its AST (TypeScript, JSX where the
 * extension says so, either decorator syntax) and scope-free facts about top-level
 * statements: which names each declares and which identifiers each mentions.
 */
export function parseScript(source: string, file: string): File {
  const jsx = /\.[jt]sx$/.test(file);
  const attempt = (decorators: ParserPlugin): File =>
    parse(source, {
      sourceType: 'module',
      sourceFilename: file,
      allowAwaitOutsideFunction: true,
      allowReturnOutsideFunction: false,
      plugins: ['typescript', decorators, 'decoratorAutoAccessors', 'explicitResourceManagement', 'importAttributes' as ParserPlugin, ...(jsx ? (['jsx'] as ParserPlugin[]) : [])],
    });
  try {
    return attempt(['decorators', {}] as ParserPlugin);
  } catch {
    // TypeScript's experimentalDecorators also allow parameter decorators, which only the legacy syntax parses.
    try {
      return attempt('decorators-legacy');
    } catch (err) {
      const loc = (err as { loc?: { line: number; column: number } }).loc;
      throw new SkybatchError('SKYBATCH_E_SCRIPT_LOAD', `cannot parse ${file}${loc ? `:${loc.line}:${loc.column + 1}` : ''}: ${(err as Error).message}`, {
        context: { path: file, line: loc?.line },
        cause: err,
      });
    }
  }
}

// Keys that hold only types (erased at compile time) or bookkeeping, never runtime references.
const SKIP_KEYS = new Set([
  'loc',
  'start',
  'end',
  'range',
  'extra',
  'leadingComments',
  'trailingComments',
  'innerComments',
  'typeAnnotation',
  'returnType',
  'typeParameters',
  'typeArguments',
  'superTypeParameters',
  'implements',
  'predicate',
]);
const TYPE_ONLY = new Set(['TSInterfaceDeclaration', 'TSTypeAliasDeclaration', 'TSDeclareFunction', 'TSDeclareMethod', 'TSTypeAnnotation', 'TSTypeParameterInstantiation', 'TSTypeParameterDeclaration']);

export function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}

/** The child nodes of `node` that can hold runtime code. */
export function children(node: Node): Node[] {
  const out: Node[] = [];
  for (const [k, v] of Object.entries(node)) {
    if (SKIP_KEYS.has(k)) continue;
    if (Array.isArray(v)) {
      for (const x of v) if (isNode(x)) out.push(x);
    } else if (isNode(v)) out.push(v);
  }
  return out;
}

/** Depth-first walk; `visit` returning false skips the node's children. */
export function walk(node: Node, visit: (n: Node, parent: Node | undefined) => boolean | void, parent?: Node): void {
  if (TYPE_ONLY.has(node.type)) return;
  if (visit(node, parent) === false) return;
  for (const c of children(node)) walk(c, visit, node);
}

export function isFunctionLike(n: Node): boolean {
  return /Function|Method|StaticBlock|ClassProperty|ClassAccessorProperty|ClassPrivateProperty/.test(n.type) && n.type !== 'TSDeclareFunction';
}

/**
 * Every identifier `node` mentions as a value (not property names, labels or types).
 * Local bindings are included too: the pruner only looks names up among top-level
 * declarations, so a shadowing local keeps a little more, never less.
 */
export function referencedNames(node: Node, skip?: Node): Set<string> {
  const names = new Set<string>();
  walk(node, (n, parent) => {
    if (n === skip) return false;
    if (n.type === 'Identifier' || n.type === 'JSXIdentifier') {
      if (parent && isPropertyName(n, parent)) return;
      names.add(n.name);
    }
  });
  return names;
}

function isPropertyName(n: Node, parent: Node): boolean {
  const p = parent as unknown as Record<string, unknown>;
  switch (parent.type) {
    case 'MemberExpression':
    case 'OptionalMemberExpression':
    case 'JSXMemberExpression':
      return p.property === n && !p.computed;
    case 'ObjectProperty':
    case 'ObjectMethod':
    case 'ClassProperty':
    case 'ClassMethod':
    case 'ClassAccessorProperty':
    case 'ClassPrivateProperty':
    case 'TSPropertySignature':
      // `{ a }` uses `a`: babel gives the shorthand's key and value as separate nodes, but be sure
      return p.key === n && !p.computed && !p.shorthand;
    case 'TSEnumMember':
      return p.id === n;
    case 'ExportSpecifier':
      return p.exported === n;
    case 'ImportSpecifier':
      return p.imported === n;
    case 'LabeledStatement':
    case 'BreakStatement':
    case 'ContinueStatement':
      return p.label === n;
    case 'MetaProperty':
    case 'JSXAttribute':
    case 'JSXNamespacedName':
      return true;
    default:
      return false;
  }
}

/** Names a pattern (`a`, `{ a, b: [c] }`, `...rest`, `x = 1`) binds. */
export function patternNames(p: Node | null | undefined, out: string[] = []): string[] {
  if (!p) return out;
  switch (p.type) {
    case 'Identifier':
      out.push(p.name);
      break;
    case 'ObjectPattern':
      for (const prop of p.properties) patternNames(prop.type === 'RestElement' ? prop.argument : (prop.value as Node), out);
      break;
    case 'ArrayPattern':
      for (const el of p.elements) patternNames(el, out);
      break;
    case 'RestElement':
      patternNames(p.argument, out);
      break;
    case 'AssignmentPattern':
      patternNames(p.left, out);
      break;
    case 'TSParameterProperty':
      patternNames(p.parameter, out);
      break;
    default:
      break;
  }
  return out;
}

/** The statement inside `export ...` / `export default ...`, or the statement itself. */
export function unwrapExport(s: Statement): Node {
  if ((s.type === 'ExportNamedDeclaration' || s.type === 'ExportDefaultDeclaration') && s.declaration) return s.declaration;
  return s;
}

/**
 * Top-level names a statement declares: its own declarations, and `var`s anywhere in its
 * blocks outside functions (they belong to the module scope too).
 */
export function declaredNames(s: Statement): string[] {
  const out: string[] = [];
  const d = unwrapExport(s);
  switch (d.type) {
    case 'ImportDeclaration':
      if (d.importKind !== 'type') for (const sp of d.specifiers) if ((sp as { importKind?: string }).importKind !== 'type') out.push(sp.local.name);
      return out;
    case 'TSImportEqualsDeclaration':
      out.push(d.id.name);
      return out;
    case 'FunctionDeclaration':
    case 'ClassDeclaration':
      if (d.id) out.push(d.id.name);
      return out;
    case 'TSEnumDeclaration':
      out.push(d.id.name);
      return out;
    case 'TSModuleDeclaration':
      if (d.id.type === 'Identifier') out.push(d.id.name);
      return out;
    case 'VariableDeclaration':
      for (const decl of d.declarations) patternNames(decl.id, out);
      break;
    default:
      break;
  }
  walk(d, (n) => {
    if (n !== d && isFunctionLike(n)) return false;
    if (n.type === 'VariableDeclaration' && n !== d && n.kind === 'var') for (const decl of n.declarations) patternNames(decl.id, out);
  });
  return out;
}

/** Statements that have no runtime code at all (types, `declare`, type-only imports). */
export function isTypeOnly(s: Statement): boolean {
  const d = unwrapExport(s) as Node & { declare?: boolean; importKind?: string; exportKind?: string };
  if (TYPE_ONLY.has(d.type) || d.declare) return true;
  if (d.type === 'ImportDeclaration') return d.importKind === 'type' || (d.specifiers.length > 0 && d.specifiers.every((sp) => (sp as { importKind?: string }).importKind === 'type'));
  if (s.type === 'ExportNamedDeclaration' && s.exportKind === 'type') return true;
  return false;
}

/** Source range of a statement including decorators written before it. */
export function rangeOf(n: Node): [number, number] {
  let start = n.start!;
  const decorators = (unwrapExport(n as Statement) as { decorators?: Node[] }).decorators ?? [];
  for (const d of decorators) start = Math.min(start, d.start!);
  return [start, n.end!];
}
