/**
 * `handoff testgen`: derives fixtures and covering paths from a model and writes them as readable
 * vitest suites (one test per path, the path in the test's name, one line per step), plus the
 * fixtures and a coverage report. Same model, same options, same output folder: byte-identical files.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../contracts/errors.ts';
import { loadModel, probeModel, type LoadedModel } from '../models/loader.ts';
import { buildFixtures, type Fixtures } from './fixtures.ts';
import { generatePaths, type GeneratedPath, type MachineCoverage, type MachineSet, type ModelPaths, type PathMode } from './graph.ts';
import { describeAction, type Expectation } from './steps.ts';

export interface GenerateOptions {
  /** `shortest` (default): a small set of paths covering every reachable state and transition; `simple`: that set plus simple paths to final states, up to `maxPaths`. */
  paths?: PathMode;
  /** Cap on paths per machine in `simple` mode. @default 200 */
  maxPaths?: number;
  /** Generated suites close and reopen the runtime before every step. */
  crashEachStep?: boolean;
  /** Generate against modified machines (mutation testing, custom charts). */
  machines?: MachineSet;
  /**
   * How generated files import the harness. @default the relative path from the output folder to this
   * package's `src/testing/index.ts`; pass `handoff/testing` in a project that depends on handoff.
   */
  harnessImport?: string;
}

export interface CoverageSummary {
  model: string;
  version: string;
  paths: PathMode;
  crashEachStep: boolean;
  agent: MachineCoverage;
  case: MachineCoverage;
  /** Unreachable states and transitions, gate branches no plan reaches: model warnings. */
  warnings: string[];
}

export interface GeneratedSuite {
  model: LoadedModel;
  fixtures: Fixtures;
  paths: ModelPaths;
  coverage: CoverageSummary;
}

/** Fixtures, paths and coverage for a model folder (or a loaded model). */
export async function generateSuite(model: string | LoadedModel, opts: GenerateOptions = {}): Promise<GeneratedSuite> {
  const m = typeof model === 'string' ? await loadModel(model) : model;
  // A perceiver that always throws or a planner whose plans break their schema: say so, with the zod issues.
  const behaviour = await probeModel(m);
  if (behaviour.length > 0) throw new ModelError(m.name, behaviour);
  const fixtures = await buildFixtures(m);
  const paths = generatePaths(m, fixtures, { paths: opts.paths ?? 'shortest', maxPaths: opts.maxPaths ?? 200, ...(opts.machines ? { machines: opts.machines } : {}) });
  const coverage: CoverageSummary = {
    model: m.name,
    version: m.config.version,
    paths: opts.paths ?? 'shortest',
    crashEachStep: !!opts.crashEachStep,
    agent: paths.agent.coverage,
    case: paths.case.coverage,
    warnings: [...fixtures.warnings, ...paths.agent.warnings, ...paths.case.warnings],
  };
  return { model: m, fixtures, paths, coverage };
}

export interface WrittenSuite extends GeneratedSuite {
  dir: string;
  files: string[];
}

const HARNESS = fileURLToPath(new URL('./index.ts', import.meta.url));

function rel(from: string, to: string): string {
  let r = relative(from, to).split(sep).join('/');
  if (!r.startsWith('.')) r = `./${r}`;
  return r;
}

/** Writes `<model>.agent.test.ts`, `<model>.case.test.ts`, `<model>.fixtures.json` and `coverage.json` into `dir`. */
export async function writeSuite(model: string | LoadedModel, outDir: string, opts: GenerateOptions = {}): Promise<WrittenSuite> {
  const suite = await generateSuite(model, opts);
  const dir = resolve(outDir);
  await mkdir(dir, { recursive: true });
  const files = renderSuite(suite, dir, opts);
  for (const f of files) await writeFile(join(dir, f.name), f.content);
  // coverage.json keeps one entry per model generated into this folder.
  const covFile = join(dir, 'coverage.json');
  let existing: { models?: Record<string, CoverageSummary> } = {};
  try {
    existing = JSON.parse(await readFile(covFile, 'utf8')) as typeof existing;
  } catch {
    existing = {};
  }
  const models = { ...(existing.models ?? {}), [suite.model.name]: suite.coverage };
  const sorted = Object.fromEntries(Object.entries(models).sort(([a], [b]) => (a < b ? -1 : 1)));
  await writeFile(covFile, `${JSON.stringify({ models: sorted }, null, 2)}\n`);
  return { ...suite, dir, files: [...files.map((f) => join(dir, f.name)), covFile] };
}

/** The files of a suite, as they would be written into `dir`. */
export function renderSuite(suite: GeneratedSuite, dir: string, opts: GenerateOptions = {}): { name: string; content: string }[] {
  const name = suite.model.name;
  const fixturesName = `${name}.fixtures.json`;
  const common = {
    harness: opts.harnessImport ?? rel(dir, HARNESS),
    model: rel(dir, suite.model.dir),
    fixtures: `./${fixturesName}`,
    crash: !!opts.crashEachStep,
  };
  return [
    { name: fixturesName, content: `${JSON.stringify(suite.fixtures, null, 2)}\n` },
    { name: `${name}.agent.test.ts`, content: renderFile(suite, 'agent', suite.paths.agent.paths, suite.coverage.agent, common) },
    { name: `${name}.case.test.ts`, content: renderFile(suite, 'case', suite.paths.case.paths, suite.coverage.case, common) },
  ];
}

// ------------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------------

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A JavaScript literal for plain data, in one line. */
export function literal(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return '{}';
    return `{ ${entries.map(([k, v]) => `${IDENT.test(k) ? k : literal(k)}: ${literal(v)}`).join(', ')} }`;
  }
  return 'undefined';
}

const PER_STEP = new Set(['event', 'refused', 'audit', 'agent']);
const ORDER = ['state', 'event', 'refused', 'agent'];

/** What changed since the previous expectation (the harness carries the rest forward). */
function delta(prev: Expectation, next: Expectation): Expectation {
  const out: Record<string, unknown> = {};
  const keys = [...ORDER, ...Object.keys(next).filter((k) => !ORDER.includes(k))];
  for (const k of keys) {
    const v = (next as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (k === 'state') out[k] = v;
    else if (k === 'audit') {
      if ((v as string[]).length > 0) out[k] = v;
    } else if (PER_STEP.has(k)) out[k] = v;
    else if (JSON.stringify((prev as Record<string, unknown>)[k]) !== JSON.stringify(v)) out[k] = v;
  }
  return out as Expectation;
}

function compress(labels: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < labels.length; ) {
    let j = i;
    while (j < labels.length && labels[j] === labels[i]) j++;
    out.push(j - i > 1 ? `${labels[i]} ×${j - i}` : labels[i]!);
    i = j;
  }
  return out;
}

export function pathTitle(p: GeneratedPath): string {
  const events = compress(p.steps.map((s) => `${describeAction(s.action)}${s.expect.refused ? ' ✗' : ''}`));
  const last = [...p.steps].reverse().find((s) => !s.expect.refused);
  const end = last?.expect.agent ? ` ⇒ agent ${last.expect.agent}` : last?.expect.outcome ? ` ⇒ ${last.expect.outcome}` : '';
  return `${p.id}${p.start ? ` [${p.start}]` : ''} · ${p.states.join(' → ')} · ${events.join(', ')}${end}`;
}

function renderFile(suite: GeneratedSuite, machine: 'agent' | 'case', paths: GeneratedPath[], cov: MachineCoverage, c: { harness: string; model: string; fixtures: string; crash: boolean }): string {
  const m = suite.model;
  const what = machine === 'agent' ? 'agent episode' : 'review case';
  const lines: string[] = [];
  lines.push(`// Generated by \`handoff testgen\` from model ${m.name}@${m.config.version}. Do not edit: regenerate.`);
  lines.push('// Each step: s.step(what happens, what the runtime must show after it: only what changed). See docs/testing.md.');
  lines.push(
    `// ${what}: ${paths.length} paths (${suite.coverage.paths}${c.crash ? ', runtime restarted before every step' : ''}); states ${cov.states.covered}/${cov.states.reachable} reachable covered (${cov.states.declared} declared), transitions ${cov.transitions.covered}/${cov.transitions.reachable} (${cov.transitions.declared} declared), branches ${cov.branches.covered}/${cov.branches.reachable}${cov.refusals ? `, refused commands ${cov.refusals.covered}/${cov.refusals.reachable}` : ''}.`,
  );
  for (const s of cov.unreachableStates) lines.push(`// Unreachable with this model: state ${s}`);
  for (const t of cov.unreachableTransitions) lines.push(`// Unreachable with this model: ${t}`);
  lines.push(`import { fileURLToPath } from 'node:url';`);
  lines.push(`import { describe, it } from 'vitest';`);
  lines.push(`import { defineSuite } from ${literal(c.harness)};`);
  lines.push('');
  lines.push('const suite = defineSuite({');
  lines.push(`  model: fileURLToPath(new URL(${literal(`${c.model}/`)}, import.meta.url)),`);
  lines.push(`  fixtures: fileURLToPath(new URL(${literal(c.fixtures)}, import.meta.url)),`);
  lines.push(`  crashEachStep: ${c.crash},`);
  lines.push('});');
  lines.push('');
  lines.push(`describe(${literal(`${m.name} · ${what}${c.crash ? ' · restart before every step' : ''}`)}, () => {`);
  if (paths.length === 0) lines.push(`  it.skip(${literal(`no ${what} is reachable with model ${m.name}`)}, () => {});`);
  for (const p of paths) {
    lines.push(`  it(${literal(pathTitle(p))}, () =>`);
    lines.push(`    suite.${machine === 'agent' ? 'agent(' : `case(${literal(p.start)}, `}async (s) => {`);
    lines.push(`      await s.start(${literal(p.initial)});`);
    let prev = p.initial;
    for (const step of p.steps) {
      lines.push(`      await s.step(${literal(step.action)}, ${literal(delta(prev, step.expect))});`);
      prev = step.expect;
    }
    lines.push('      await s.end();');
    lines.push(`    }), ${c.crash ? 120_000 : 60_000});`);
  }
  lines.push('});');
  lines.push('');
  return lines.join('\n');
}

