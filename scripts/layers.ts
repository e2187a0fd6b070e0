/**
 * The layer check: every import between `src/` files, measured against the floors of the house
 * (docs/architecture.md, "Layers as they are"), with a baseline of known violations that can only
 * shrink.
 *
 *   npx tsx scripts/layers.ts            check; exit 1 naming each new violation (file:line) and
 *                                        each baseline entry that no longer occurs
 *   npx tsx scripts/layers.ts --report   the numbers for docs/architecture.md (folder and unit graph)
 *
 * `test/unit/layers.test.ts` runs the same check inside `npm test`.
 *
 * Why a script on the TypeScript parser rather than dependency-cruiser or madge: it needs no new
 * dependency (typescript is already here), parses the 170 files in well under a second without a
 * type-check, sees `import type`, `export … from`, `import()` and `import('…').T` alike, and lets the
 * baseline be exact: a stale entry fails, which neither tool's known-violations file does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

import { FLOORS, GROUND, PLACEMENT, folderOf, layerViolation, unitOf } from './floors.mjs';

export { FLOORS, GROUND, PLACEMENT, folderOf, layerViolation, unitOf };

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const BASELINE_FILE = join(ROOT, 'scripts', 'layers-baseline.json');

export interface Edge {
  from: string;
  to: string;
  line: number;
  typeOnly: boolean;
  dynamic: boolean;
}

export interface Baseline {
  /** `from -> to`, one per importing file and imported file, with why it is still there. */
  imports: { import: string; reason: string }[];
  /** File-level cycles (their files, sorted, joined by ` | `), with why. */
  cycles: { cycle: string; reason: string }[];
}

function listFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) return listFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every relative import of every file under `src/`, resolved to a file. */
export function collectEdges(): { files: string[]; edges: Edge[] } {
  const files = listFiles('src').sort();
  const known = new Set(files);
  const edges: Edge[] = [];
  for (const file of files) {
    const sf = ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, true);
    const add = (node: ts.Node, spec: string, typeOnly: boolean, dynamic: boolean) => {
      if (!spec.startsWith('.')) return;
      let to = relative(ROOT, resolve(join(ROOT, dirname(file)), spec))
        .split('\\')
        .join('/');
      if (!known.has(to) && to.endsWith('.js')) to = `${to.slice(0, -3)}.ts`;
      if (!known.has(to) && known.has(`${to}/index.ts`)) to = `${to}/index.ts`;
      if (!known.has(to)) return;
      edges.push({
        from: file,
        to,
        line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1,
        typeOnly,
        dynamic,
      });
    };
    const visit = (n: ts.Node): void => {
      if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
        const c = n.importClause;
        const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
        const typeOnly =
          !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
        add(n, n.moduleSpecifier.text, typeOnly, false);
      } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
        add(n, n.moduleSpecifier.text, n.isTypeOnly, false);
      } else if (
        ts.isCallExpression(n) &&
        n.expression.kind === ts.SyntaxKind.ImportKeyword &&
        n.arguments[0] &&
        ts.isStringLiteral(n.arguments[0])
      ) {
        add(n, n.arguments[0].text, false, true);
      } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
        add(n, n.argument.literal.text, true, false);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return { files, edges };
}

/** Strongly connected components with more than one node (or a self-loop), Tarjan's algorithm. */
export function cycles(nodes: readonly string[], edges: readonly { from: string; to: string }[]): string[][] {
  const out = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const e of edges) out.get(e.from)?.push(e.to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const strong = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of out.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (out.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const n of nodes) if (!index.has(n)) strong(n);
  return found.sort((x, y) => x.join().localeCompare(y.join()));
}

export interface CheckResult {
  problems: string[];
  violations: (Edge & { why: string })[];
  fileCycles: string[][];
  edges: Edge[];
  files: string[];
}

export function readBaseline(): Baseline {
  return JSON.parse(readFileSync(BASELINE_FILE, 'utf8')) as Baseline;
}

/** The check `npm test` runs: new violations and stale baseline entries are both problems. */
export function checkLayers(baseline: Baseline = readBaseline()): CheckResult {
  const { files, edges } = collectEdges();
  const violations = edges.flatMap((e) => {
    const why = layerViolation(e.from, e.to);
    return why ? [{ ...e, why }] : [];
  });
  const fileCycles = cycles(files, edges);
  const problems: string[] = [];

  const allowed = new Set(baseline.imports.map((b) => b.import));
  const seen = new Set<string>();
  for (const v of violations) {
    const key = `${v.from} -> ${v.to}`;
    seen.add(key);
    if (!allowed.has(key))
      problems.push(
        `${v.from}:${v.line} imports ${v.to}${v.typeOnly ? ' (type)' : ''}${v.dynamic ? ' (dynamic)' : ''}: ${v.why}`,
      );
  }
  for (const b of baseline.imports)
    if (!seen.has(b.import))
      problems.push(`baseline entry no longer occurs, remove it from scripts/layers-baseline.json: ${b.import}`);

  const allowedCycles = new Set(baseline.cycles.map((c) => c.cycle));
  const seenCycles = new Set<string>();
  for (const c of fileCycles) {
    const key = c.join(' | ');
    seenCycles.add(key);
    if (allowedCycles.has(key)) continue;
    const links = edges
      .filter((e) => c.includes(e.from) && c.includes(e.to))
      .map((e) => `  ${e.from}:${e.line} imports ${e.to}${e.typeOnly ? ' (type)' : ''}`);
    problems.push(`import cycle between ${c.length} files:\n${links.join('\n')}`);
  }
  for (const c of baseline.cycles)
    if (!seenCycles.has(c.cycle))
      problems.push(`baseline cycle no longer occurs, remove it from scripts/layers-baseline.json: ${c.cycle}`);

  return { problems, violations, fileCycles, edges, files };
}

/** Numbers for docs/architecture.md: the folder graph as the folders are, and the unit graph. */
export function report(): string {
  const { files, edges, violations, fileCycles } = checkLayers({ imports: [], cycles: [] });
  const pairs = (of: (f: string) => string) => {
    const m = new Map<string, number>();
    for (const e of edges) {
      const a = of(e.from);
      const b = of(e.to);
      if (a !== b) m.set(`${a} -> ${b}`, (m.get(`${a} -> ${b}`) ?? 0) + 1);
    }
    return m;
  };
  const graphCycles = (of: (f: string) => string) => {
    const m = pairs(of);
    const nodes = [...new Set(files.map(of))];
    return cycles(
      nodes,
      [...m.keys()].map((k) => ({ from: k.split(' -> ')[0]!, to: k.split(' -> ')[1]! })),
    );
  };
  const runtimeEdges = edges.filter((e) => !e.typeOnly);
  const fileImports = new Set(violations.map((v) => `${v.from} -> ${v.to}`));
  const ground = violations.filter((v) => GROUND.has(unitOf(v.from)));
  const lines = [
    `files: ${files.length}, imports between src/ files: ${edges.length}`,
    `imports crossing a folder: ${edges.filter((e) => folderOf(e.from) !== folderOf(e.to)).length}`,
    `layer violations: ${violations.length} import statements, ${fileImports.size} file -> file pairs, ${ground.length} from the ground floor`,
    `file-level cycles (SCCs): ${fileCycles.length} (${fileCycles.map((c) => c.length).join(', ')} files); without type-only imports: ${cycles(files, runtimeEdges).length}`,
    `folder-level cycles (SCCs, folders as they are): ${
      graphCycles(folderOf)
        .map((c) => `{${c.join(', ')}}`)
        .join(' ') || 'none'
    }`,
    `unit-level cycles (SCCs, placed units): ${
      graphCycles(unitOf)
        .map((c) => `{${c.join(', ')}}`)
        .join(' ') || 'none'
    }`,
    '',
    'violations:',
    ...violations.map(
      (v) =>
        `  ${v.from}:${v.line} -> ${v.to}${v.typeOnly ? ' (type)' : ''}${v.dynamic ? ' (dynamic)' : ''}  [${v.why}]`,
    ),
    '',
    'unit graph:',
    ...[...pairs(unitOf)].sort().map(([k, n]) => `  ${k} (${n})`),
  ];
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--report')) {
    console.log(report());
  } else {
    const started = performance.now();
    const { problems, edges } = checkLayers();
    const ms = Math.round(performance.now() - started);
    if (problems.length) {
      console.error(`layers: ${problems.length} problem(s)\n${problems.join('\n')}`);
      process.exitCode = 1;
    } else console.log(`layers: ${edges.length} imports checked, no new violation, no stale baseline entry (${ms} ms)`);
  }
}
