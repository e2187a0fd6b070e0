/**
 * `handoff testgen`: derives fixtures and covering paths from a model and writes them as readable
 * vitest suites (one test per path, the path in the test's name, one line per step), plus the
 * fixtures and a coverage report. Same model, same options, same output folder: byte-identical files.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HandoffError, ModelError } from '../contracts/errors.ts';
import { probeModel } from '../actors/probe.ts';
import { loadModel, type LoadedModel } from '../models/loader.ts';
import { buildFixtures, type Fixtures } from './fixtures.ts';
import { httpActionNames, simulateHttpActions } from './simulated-http.ts';
import {
  generatePaths,
  type GeneratedPath,
  type MachineCoverage,
  type MachineSet,
  type ModelPaths,
  type PathMode,
} from './graph.ts';
import { describeAction, type Expectation } from './steps.ts';

export interface GenerateOptions {
  /**
   * `shortest` (default): a small set of paths covering every reachable state and transition;
   * `simple`: that set plus simple paths to final states, up to `maxPaths`.
   */
  paths?: PathMode;
  /** Cap on paths per machine in `simple` mode. @default 200 */
  maxPaths?: number;
  /** Generated suites close and reopen the runtime before every step. */
  crashEachStep?: boolean;
  /**
   * `mid-step`: also write `<model>.crash.test.ts`, which runs the model in a child process SIGKILLed
   * in the middle of steps at points drawn from `seed` and checks exactly-once effects (crash.ts).
   */
  crash?: 'mid-step';
  /** Seed of the crash test's kill points. @default 1 */
  seed?: number;
  /** Kills in the crash test. @default 3 */
  crashes?: number;
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
  /** The model as the suite runs it: its HTTP actions replaced by simulated effects. */
  model: LoadedModel;
  /** The HTTP actions of model.json that the suite simulates (empty for a model of TypeScript actions). */
  simulatedHttp: string[];
  fixtures: Fixtures;
  paths: ModelPaths;
  coverage: CoverageSummary;
}

/** Fixtures, paths and coverage for a model folder (or a loaded model). */
export async function generateSuite(model: string | LoadedModel, opts: GenerateOptions = {}): Promise<GeneratedSuite> {
  // HTTP actions become simulated effects: a generated suite never calls the network (simulated-http.ts).
  const loaded = typeof model === 'string' ? await loadModel(model) : model;
  const simulatedHttp = httpActionNames(loaded);
  // The crash test runs the model in `handoff demo`, where an HTTP action calls its service for real.
  if (opts.crash === 'mid-step' && simulatedHttp.length > 0)
    throw new HandoffError(
      'testgen.http_crash',
      `--crash mid-step runs model ${loaded.name} in a child process (handoff demo), where its HTTP actions ` +
        `(${simulatedHttp.join(', ')}) would call their service; it is not generated for a model with HTTP ` +
        'actions. runCrashAnywhere({ model, liveHttp: true, env }) runs it against a test instance of the service.',
      { model: loaded.name, httpActions: simulatedHttp },
    );
  const m = simulateHttpActions(loaded);
  // A perceiver that always throws or a planner whose plans break their schema: say so, with the zod issues.
  const behaviour = await probeModel(m);
  if (behaviour.length > 0) throw new ModelError(m.name, behaviour);
  const fixtures = await buildFixtures(m);
  const paths = generatePaths(m, fixtures, {
    paths: opts.paths ?? 'shortest',
    maxPaths: opts.maxPaths ?? 200,
    ...(opts.machines ? { machines: opts.machines } : {}),
  });
  const coverage: CoverageSummary = {
    model: m.name,
    version: m.config.version,
    paths: opts.paths ?? 'shortest',
    crashEachStep: !!opts.crashEachStep,
    agent: paths.agent.coverage,
    case: paths.case.coverage,
    warnings: [...fixtures.warnings, ...paths.agent.warnings, ...paths.case.warnings],
  };
  return { model: m, fixtures, paths, coverage, simulatedHttp };
}

export interface WrittenSuite extends GeneratedSuite {
  dir: string;
  files: string[];
}

const HARNESS = fileURLToPath(new URL('./index.ts', import.meta.url));

/**
 * The command that runs the suites in `dir`, from any working folder: vitest's own script, resolved
 * from this package, with `--root` (the folder's files only, not the config of the folder it is run
 * from). `npx vitest` would look for vitest in the working folder and offer to download it. When this
 * package cannot resolve vitest (installed without it), `npx vitest` from a project that has it.
 */
export function runHint(dir: string): string {
  const root = JSON.stringify(resolve(dir));
  try {
    const pkg = createRequire(import.meta.url).resolve('vitest/package.json');
    return `node ${JSON.stringify(join(dirname(pkg), 'vitest.mjs'))} run --root ${root}`;
  } catch {
    return `npx vitest run --root ${root}`;
  }
}

function rel(from: string, to: string): string {
  let r = relative(from, to).split(sep).join('/');
  if (!r.startsWith('.')) r = `./${r}`;
  return r;
}

/** Writes `<model>.agent.test.ts`, `<model>.case.test.ts`, `<model>.fixtures.json` and `coverage.json` into `dir`. */
export async function writeSuite(
  model: string | LoadedModel,
  outDir: string,
  opts: GenerateOptions = {},
): Promise<WrittenSuite> {
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
export function renderSuite(
  suite: GeneratedSuite,
  dir: string,
  opts: GenerateOptions = {},
): { name: string; content: string }[] {
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
    {
      name: `${name}.agent.test.ts`,
      content: renderFile(suite, 'agent', suite.paths.agent.paths, suite.coverage.agent, common),
    },
    {
      name: `${name}.case.test.ts`,
      content: renderFile(suite, 'case', suite.paths.case.paths, suite.coverage.case, common),
    },
    ...(opts.crashEachStep ? [] : [{ name: `${name}.property.test.ts`, content: renderProperty(suite, common) }]),
    ...(opts.crash === 'mid-step'
      ? [{ name: `${name}.crash.test.ts`, content: renderCrash(suite, common, opts.seed ?? 1, opts.crashes ?? 3) }]
      : []),
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
  for (let i = 0; i < labels.length;) {
    let j = i;
    while (j < labels.length && labels[j] === labels[i]) j++;
    out.push(j - i > 1 ? `${labels[i]} ×${j - i}` : labels[i]!);
    i = j;
  }
  return out;
}

/** The path step by step (`perceive.done, plan.done[review:1], …`), for the comment above a test. */
export function pathTitle(p: GeneratedPath): string {
  const events = compress(p.steps.map((s) => `${describeAction(s.action)}${s.expect.refused ? ' ✗' : ''}`));
  const last = [...p.steps].reverse().find((s) => !s.expect.refused);
  const end = last?.expect.agent
    ? ` ⇒ agent ${last.expect.agent}`
    : last?.expect.outcome
      ? ` ⇒ ${last.expect.outcome}`
      : '';
  return `${p.id}${p.start ? ` [${p.start}]` : ''} · ${p.states.join(' → ')} · ${events.join(', ')}${end}`;
}

const COUNT = ['none', 'one', 'two', 'three', 'four', 'five'];
const tierOf = (cls: string | undefined) => (cls?.startsWith('review:') ? Number(cls.slice(7)) : 0);

/**
 * The business path a test walks, in words: `tier 1 ack missed → tier 2 → approved by two`,
 * `review at tier 2 → approved → action #1 transient ×4, retries exhausted → compensated`.
 */
export function businessTitle(p: GeneratedPath): string {
  const parts: string[] = [];
  let refused = 0;
  let again = 0;
  if (p.boundary) {
    const [what, value] = p.boundary.label.split(' ');
    const x = p.boundary.expect;
    const branch = x === 'auto' ? 'runs on its own' : x === 'deny' ? 'denied' : `review at tier ${tierOf(x)}`;
    return `${p.id} · ${what} ${value} → ${branch}`;
  }
  const push = (x: string) => {
    const prev = parts.at(-1);
    const spent = /^(.*), retries exhausted$/.exec(x);
    const run = prev && /^(.*) ×(\d+)$/.exec(prev);
    if (spent && (prev === spent[1] || (run && run[1] === spent[1]))) {
      parts[parts.length - 1] = `${spent[1]} ×${run && run[1] === spent[1] ? Number(run[2]) + 1 : 2}, budget spent`;
      return;
    }
    if (spent) x = `${spent[1]}, budget spent`;
    const m = prev && /^(.*) ×(\d+)$/.exec(prev);
    if (prev === x) parts[parts.length - 1] = `${x} ×2`;
    else if (m && m[1] === x) parts[parts.length - 1] = `${x} ×${Number(m[2]) + 1}`;
    else parts.push(x);
  };
  if (p.machine === 'case') {
    let tier = p.initial.tier ?? tierOf(p.start);
    parts.push(`tier ${tier}`);
    for (const s of p.steps) {
      const a = s.action;
      const e = s.expect;
      if (e.refused) {
        if (a.do === 'redeliver') again++;
        else refused++;
        continue;
      }
      const next = e.tier ?? tier;
      if (a.do === 'timer') {
        const what = a.timer === 'ack' ? 'ack missed' : a.timer === 'resolve' ? 'resolve missed' : 'lease lapsed';
        if (e.state === 'expired') push(`tier ${tier} ${what} → expired`);
        else if (next > tier) push(`tier ${tier} ${what} → tier ${next}`);
        else push(what);
      } else if (a.do === 'escalate') push(`escalated → tier ${next}`);
      else if (a.do === 'approve')
        push(
          e.resolution
            ? `${e.state === 'modified' ? 'edit approved' : 'approved'} by ` +
                `${COUNT[e.approvals?.length ?? 1] ?? e.approvals?.length}`
            : `approval ${e.approvals?.length ?? 1}`,
        );
      else if (a.do === 'modify') push(e.resolution ? 'modified' : 'edited (approvals restart)');
      else if (a.do === 'reject') push('rejected');
      else if (a.do === 'claim') continue;
      else if (a.do === 'release') push('released');
      else if (a.do === 'renew') push(a.after ? 'renewed later' : 'renewed');
      tier = next;
    }
    const last = [...p.steps].reverse().find((s) => !s.expect.refused);
    if (last?.expect.agent) parts.push(`agent ${last.expect.agent}`);
    // 'tier 1 → tier 1 ack missed → tier 2' says 'tier 1' twice.
    if (parts[1]?.startsWith(`${parts[0]} `)) parts.shift();
  } else {
    for (const s of p.steps) {
      const a = s.action;
      const e = s.expect;
      if (e.refused) {
        again++;
        continue;
      }
      switch (a.do) {
        case 'perceive':
        case 'plan':
          if (a.result !== 'done')
            push(`${a.do} ${a.result}${e.state?.endsWith('Backoff') ? '' : ', retries exhausted'}`);
          else if (a.do === 'plan')
            push(
              e.decision === 'auto'
                ? 'runs on its own'
                : e.decision === 'deny'
                  ? 'denied'
                  : `review at tier ${tierOf(e.decision ?? undefined)}`,
            );
          break;
        case 'execute':
        case 'compensate': {
          const what = a.do === 'execute' ? `action #${a.step}` : `undo #${a.step}`;
          if (a.result === 'done') push(a.do === 'execute' ? 'action done' : 'undone');
          else
            push(
              `${what} ${a.result}` +
                (a.result === 'transient' && !e.state?.endsWith('Backoff') ? ', retries exhausted' : ''),
            );
          break;
        }
        case 'resolve':
          push(
            `${a.operator ? 'operator ' : ''}${a.outcome}` +
              (a.plan
                ? ` → ${a.plan === 'auto' ? 'runs' : a.plan === 'deny' ? 'denied' : `tier ${tierOf(a.plan)}`}`
                : ''),
          );
          break;
        case 'caseOpened':
          if (a.operator) push('operator case');
          break;
        default:
          break;
      }
    }
    const last = [...p.steps].reverse().find((s) => !s.expect.refused);
    if (last?.expect.outcome) parts.push(`⇒ ${last.expect.outcome}`);
  }
  const extra = [refused ? `${refused} refused` : '', again ? `${again} redelivered` : ''].filter(Boolean).join(', ');
  const text = (ps: string[]) => `${p.id} · ${ps.join(' → ').replace(' → ⇒', ' ⇒')}${extra ? ` (${extra})` : ''}`;
  // At most 100 characters: the middle of a long path gives way to '…', its start and end stay.
  let shown = parts;
  for (let keep = parts.length - 1; text(shown).length > 100 && keep >= 2; keep--)
    shown = [...parts.slice(0, 1), '…', ...parts.slice(parts.length - keep + 1)];
  const title = text(shown);
  return title.length > 100 ? `${title.slice(0, 99)}…` : title;
}

/** `text` as `//` comment lines of at most `width` characters. */
/** The header lines saying which HTTP actions the suite simulates (none for a model of TypeScript actions). */
function simulatedNote(suite: GeneratedSuite): string[] {
  if (suite.simulatedHttp.length === 0) return [];
  return comment(
    `HTTP actions are simulated: ${suite.simulatedHttp.join(', ')} never call their service. Each is a ` +
      'simulated effect with the same argument schema and idempotency key, recorded in the effects ledger; ' +
      'each step of a path decides whether it succeeds or fails transiently or for good.',
    '',
  );
}

function comment(text: string, indent: string, width = 118): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent.length + 3 + line.length + 1 + word.length > width) {
      out.push(`${indent}// ${line}`);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(`${indent}// ${line}`);
  return out;
}

/** A literal that fits in `width` from `indent` (after `lead` and before `tail`), else one entry per line. */
function fmt(value: unknown, indent: string, lead = 0, tail = 1, width = 118): string {
  const one = literal(value);
  if (indent.length + lead + one.length + tail <= width || value === null || typeof value !== 'object') return one;
  const inner = `${indent}  `;
  if (Array.isArray(value))
    return `[\n${value.map((v) => `${inner}${fmt(v, inner, 0, 1, width)},`).join('\n')}\n${indent}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return `{\n${entries
    .map(([k, v]) => {
      const key = `${IDENT.test(k) ? k : literal(k)}: `;
      return `${inner}${key}${fmt(v, inner, key.length, 1, width)},`;
    })
    .join('\n')}\n${indent}}`;
}

/** `await s.<fn>(args…);` in one line, or one argument per line. */
function call(fn: string, args: unknown[], indent: string): string[] {
  const one = `${indent}await s.${fn}(${args.map(literal).join(', ')});`;
  if (one.length <= 118) return [one];
  return [`${indent}await s.${fn}(`, ...args.map((a) => `${indent}  ${fmt(a, `${indent}  `)},`), `${indent});`];
}

/** Random reviewer command sequences against the reference model, with a fixed seed (see property.ts). */
function renderProperty(suite: GeneratedSuite, c: { harness: string; model: string; fixtures: string }): string {
  const m = suite.model;
  return [
    `// Generated by \`handoff testgen\` from model ${m.name}@${m.config.version}. Do not edit: regenerate.`,
    '// Random sequences of reviewer commands and deadlines on the real runtime, checked step by step against a',
    '// reference model of the review process (model.json and the review rules); a failure is shrunk to a minimal',
    '// sequence. Fixed seed: the same sequences every run. `handoff testgen --property --seed N` explores others.',
    ...simulatedNote(suite),
    `import { fileURLToPath } from 'node:url';`,
    `import { expect, it } from 'vitest';`,
    `import { defineSuite, runProperty } from ${literal(c.harness)};`,
    '',
    'const suite = defineSuite({',
    `  model: fileURLToPath(new URL(${literal(`${c.model}/`)}, import.meta.url)),`,
    `  fixtures: fileURLToPath(new URL(${literal(c.fixtures)}, import.meta.url)),`,
    '});',
    '',
    `it(${literal(`${m.name} · review cases agree with the reference model on random command sequences (seed 1)`)}, ` +
      'async () => {',
    '  const { model, fixtures } = await suite.load();',
    '  const r = await runProperty(model, fixtures, { seed: 1, runs: 25 });',
    "  expect(r.ok, `${r.counterexample?.join(' → ')}: ${r.error}`).toBe(true);",
    '  expect(r.exercised.taken).toBeGreaterThan(0);',
    '}, 120_000);',
    '',
  ].join('\n');
}

/** The model in a child process SIGKILLed in the middle of steps, at points drawn from a fixed seed (crash.ts). */
function renderCrash(
  suite: GeneratedSuite,
  c: { harness: string; model: string },
  seed: number,
  crashes: number,
): string {
  const m = suite.model;
  return [
    `// Generated by \`handoff testgen --crash mid-step\` from model ${m.name}@${m.config.version}. ` +
      'Do not edit: regenerate.',
    '// The model runs in a child process (handoff demo on a data folder) that is SIGKILLed in the middle of steps:',
    '// before or after a store batch, after an action is requested but before it runs, after it ran but before its',
    '// result is journaled. Each kill is resumed on the same folder; then every effect must be in the ledger once.',
    `import { fileURLToPath } from 'node:url';`,
    `import { expect, it } from 'vitest';`,
    `import { runCrashAnywhere } from ${literal(c.harness)};`,
    '',
    `it(${literal(`${m.name} · SIGKILL in the middle of steps, resumed: every effect once (seed ${seed})`)}, ` +
      'async () => {',
    `  const model = fileURLToPath(new URL(${literal(`${c.model}/`)}, import.meta.url));`,
    `  const r = await runCrashAnywhere({ model, seed: ${seed}, crashes: ${crashes}, cases: 30 });`,
    '  expect(r.ok, r.report).toBe(true);',
    '  expect(r.kills.some((k) => k.killed), r.report).toBe(true);',
    '}, 300_000);',
    '',
  ].join('\n');
}

function renderFile(
  suite: GeneratedSuite,
  machine: 'agent' | 'case',
  paths: GeneratedPath[],
  cov: MachineCoverage,
  c: { harness: string; model: string; fixtures: string; crash: boolean },
): string {
  const m = suite.model;
  const what = machine === 'agent' ? 'agent episode' : 'review case';
  const lines: string[] = [];
  lines.push(`// Generated by \`handoff testgen\` from model ${m.name}@${m.config.version}. Do not edit: regenerate.`);
  lines.push(
    '// Each step: s.step(what happens, what the runtime must show after it: only what changed). See docs/testing.md.',
  );
  lines.push(...simulatedNote(suite));
  lines.push(
    ...comment(
      `${what}: ${paths.length} paths (${suite.coverage.paths}` +
        (c.crash ? ', runtime restarted before every step' : '') +
        '); ' +
        `states ${cov.states.covered}/${cov.states.reachable} reachable covered (${cov.states.declared} declared), ` +
        `transitions ${cov.transitions.covered}/${cov.transitions.reachable} (${cov.transitions.declared} declared), ` +
        `branches ${cov.branches.covered}/${cov.branches.reachable}` +
        (cov.refusals ? `, refused commands ${cov.refusals.covered}/${cov.refusals.reachable}` : '') +
        '. Deadlines (ms after the start), priorities and gate branches at thresholds come from model.json, ' +
        'not from the machines. coverage.json maps every transition, branch and refusal to these test ids.',
      '',
    ),
  );
  for (const s of cov.unreachableStates) lines.push(...comment(`Unreachable with this model: state ${s}`, ''));
  for (const t of cov.unreachableTransitions) lines.push(...comment(`Unreachable with this model: ${t}`, ''));
  lines.push(`import { fileURLToPath } from 'node:url';`);
  lines.push(`import { describe, it } from 'vitest';`);
  lines.push(`import { defineSuite } from ${literal(c.harness)};`);
  lines.push('');
  lines.push('const suite = defineSuite({');
  lines.push(`  model: fileURLToPath(new URL(${literal(`${c.model}/`)}, import.meta.url)),`);
  lines.push(`  fixtures: fileURLToPath(new URL(${literal(c.fixtures)}, import.meta.url)),`);
  if (lines.at(-2)!.length > 118)
    lines.splice(
      lines.length - 2,
      1,
      '  model: fileURLToPath(',
      `    new URL(${literal(`${c.model}/`)}, import.meta.url),`,
      '  ),',
    );
  lines.push(`  crashEachStep: ${c.crash},`);
  lines.push('});');
  lines.push('');
  lines.push(`describe(${literal(`${m.name} · ${what}${c.crash ? ' · restart before every step' : ''}`)}, () => {`);
  if (paths.length === 0)
    lines.push(`  it.skip(${literal(`no ${what} is reachable with model ${m.name}`)}, () => {});`);
  for (const p of paths) {
    lines.push(...comment(pathTitle(p).slice(p.id.length + 3), '  '));
    lines.push(`  it(${literal(businessTitle(p))}, () =>`);
    lines.push(`    suite.${machine === 'agent' ? 'agent(' : `case(${literal(p.start)}, `}async (s) => {`);
    lines.push(...call('start', [p.initial], '      '));
    let prev = p.initial;
    for (const step of p.steps) {
      lines.push(...call('step', [step.action, delta(prev, step.expect)], '      '));
      prev = step.expect;
    }
    lines.push('      await s.end();');
    lines.push(`    }), ${c.crash ? 120_000 : 60_000});`);
  }
  lines.push('});');
  lines.push('');
  return lines.join('\n');
}
