'use strict';
/**
 * Type conformance with genai-electron 0.26: for every export of its `index.d.ts`, a TypeScript
 * check that ours can stand where theirs is used, compiled in one program:
 * - a function: ours is assignable to theirs with strict parameter variance (so ours accepts
 *   every argument theirs does and returns what theirs promises);
 * - a constant or singleton: every public member, each method checked as a function;
 * - a class: every public static and instance member, and the constructor's parameters;
 * - a type: a value of ours is a value of theirs (results, events); for the types callers build
 *   and pass in (`INPUT_TYPES`) the other way round; `BOTH_WAYS` both.
 * Which export failed is read from the diagnostics' lines. See conformance.test.js.
 */

const path = require('node:path');
const ts = require('typescript');

const ROOT = path.join(__dirname, '..', '..');
const THEIRS = path.join(ROOT, 'node_modules', 'genai-electron', 'dist', 'index.d.ts');
const OURS = path.join(ROOT, 'index.d.ts');
const VIRTUAL = path.join(__dirname, '__conformance__.ts');

/** Types callers create and hand to the library: theirs must be accepted where ours is expected. */
const INPUT_TYPES = new Set([
  'DownloadConfig',
  'DiffusionComponentDownload',
  'DownloadProgressCallback',
  'MetadataFetchStrategy',
  'TelemetryCommandOptions',
  'KVCacheType',
  'ImageSampler',
  'ImageGenerationConfig',
  'DiffusionServerConfig',
  'DiffusionCalibrationConfig',
  'DiffusionCalibrationGeneration',
  'DiffusionOffloadCombo',
  'CalibrationSize',
  'OptimalConfigHints',
  'LogRotationOptions',
  'SpawnOptions',
]);
/** Types that flow both ways (records read from the library and handed back to it). */
const BOTH_WAYS = new Set(['ModelInfo', 'GGUFMetadata', 'ModelType', 'DiffusionUsageMode', 'ContextConstraintDetails']);

const OPTIONS = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  types: ['node'],
};

/** `{ name, kind: 'value'|'class'|'type', typeParams, publicCtor }` for each export of a declaration file. */
function exportsOf(program, file) {
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  return checker.getExportsOfModule(moduleSymbol).map((sym) => {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    const f = target.flags;
    const decl = (target.declarations || [])[0];
    let kind = 'type';
    if (f & ts.SymbolFlags.Class) kind = 'class';
    else if (f & (ts.SymbolFlags.Function | ts.SymbolFlags.Variable)) kind = 'value';
    const typeParams = decl && decl.typeParameters ? decl.typeParameters.length : 0;
    let publicCtor = true;
    if (kind === 'class' && decl) {
      const ctor = decl.members.find((m) => ts.isConstructorDeclaration(m));
      publicCtor = !ctor || !(ts.getCombinedModifierFlags(ctor) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected));
    }
    return { name: sym.name, kind, typeParams, publicCtor };
  });
}

const PRELUDE = `import type * as T from 'genai-electron';
import type * as O from '../../index';
// M: members left out of the comparison (documented exceptions), at the top level and in what
// methods return (a singleton's getInstance()).
// A method becomes a function type, so its parameters are compared strictly (methods are bivariant).
type Strict<F, M extends PropertyKey = never> = F extends (...a: infer A) => infer R ? (...a: A) => Pub<R, M> : F;
// Public members only (a class with private members is otherwise assignable from itself alone).
type Pub<X, M extends PropertyKey = never> = X extends (...a: any) => any ? X : X extends object ? { [K in Exclude<keyof X, M>]: X[K] } : X;
type Shape<X, M extends PropertyKey = never> = X extends (...a: any) => any ? Strict<X> : X extends object ? { [K in Exclude<keyof X, M>]: Strict<X[K], M> } : X;
type Statics<C, M extends PropertyKey = never> = { [K in Exclude<keyof C, 'prototype'>]: Strict<C[K], M> };
declare function to<X>(value: X): void;
declare function of<X>(): X;
type Sample = { a: number; b?: string };
`;

/** The check lines for export `e`, leaving out `members` (a string union, or 'never'). */
function checksFor(e, members = 'never') {
  const n = e.name;
  const m = members === 'never' ? '' : `, ${members}`;
  const args = e.typeParams ? `<${Array(e.typeParams).fill('Sample').join(', ')}>` : '';
  if (e.kind === 'value') return [`to<Shape<typeof T.${n}${m}>>(of<Shape<typeof O.${n}${m}>>());`];
  if (e.kind === 'class') {
    const lines = [
      `to<Statics<typeof T.${n}${m}>>(of<Statics<typeof O.${n}${m}>>());`,
      `to<Shape<T.${n}${m}>>(of<Shape<O.${n}${m}>>());`,
    ];
    if (e.publicCtor) lines.push(`to<ConstructorParameters<typeof O.${n}>>(of<ConstructorParameters<typeof T.${n}>>());`);
    return lines;
  }
  const out = `to<T.${n}${args}>(of<O.${n}${args}>());`;
  const inp = `to<O.${n}${args}>(of<T.${n}${args}>());`;
  if (BOTH_WAYS.has(n)) return [out, inp];
  return [INPUT_TYPES.has(n) ? inp : out];
}

/**
 * Runs the checks. `omitted` maps an export name to members left out of its check; such a name
 * is also checked in full under `<name>#full`. Returns `{ theirs, missing, failed, unowned }`:
 * every export name of 0.26, those absent here, and the failing checks' messages by owner.
 */
function runConformance(omitted = new Map()) {
  const base = ts.createProgram([THEIRS, OURS], OPTIONS);
  const theirs = exportsOf(base, THEIRS);
  const ourNames = new Set(exportsOf(base, OURS).map((e) => e.name));
  const missing = theirs.filter((e) => !ourNames.has(e.name)).map((e) => e.name);
  const lines = PRELUDE.split('\n');
  const lineOwner = new Map();
  const add = (owner, checks) => {
    for (const check of checks) {
      lineOwner.set(lines.length, owner);
      lines.push(check);
    }
  };
  for (const e of theirs.filter((x) => ourNames.has(x.name))) {
    const members = omitted.get(e.name);
    if (members) {
      add(e.name, checksFor(e, members.map((x) => JSON.stringify(x)).join(' | ')));
      add(`${e.name}#full`, checksFor(e));
    } else {
      add(e.name, checksFor(e));
    }
  }
  const text = lines.join('\n');
  const host = ts.createCompilerHost(OPTIONS);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, lang, ...rest) =>
    path.resolve(file) === VIRTUAL ? ts.createSourceFile(file, text, lang) : getSourceFile(file, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (file) => path.resolve(file) === VIRTUAL || fileExists(file);
  const program = ts.createProgram([VIRTUAL], OPTIONS, host, base);
  const failed = new Map();
  const unowned = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const owner = d.file && path.resolve(d.file.fileName) === VIRTUAL ? lineOwner.get(d.file.getLineAndCharacterOfPosition(d.start).line) : undefined;
    if (!owner) {
      unowned.push(message);
      continue;
    }
    if (!failed.has(owner)) failed.set(owner, []);
    failed.get(owner).push(message);
  }
  return { theirs: theirs.map((e) => e.name), missing, failed, unowned, source: text };
}

module.exports = { runConformance };
