/**
 * Mutation testing of the generated suites: do they catch bugs?
 *
 * Paths are generated once from the ORIGINAL machines for both shipped models and first run against
 * them, recording which guards, actions, timers and gate calls each path exercises. Then the mutants
 * of `mutants.ts` (generated across every guard, action and timer of the agent and review-case
 * machines and every threshold, rule and outcome of the gate, plus a few hand-written named bugs) are
 * swapped in for the real ones through `vi.mock`, so the real runtime hosts them, and each mutant
 * runs the paths that exercised what it mutates, shortest first, until one kills it.
 *
 * A mutant is KILLED only when a behaviour assertion fails: an `AssertionError`, a harness check
 * (`HarnessError`: journaled event, state, context features, invariants, ledger, audit entries,
 * refusals, or a step the quiescent runtime never took), or a command the path expects to be
 * accepted that the runtime refuses (turned into an `AssertionError` here). A crash (a thrown
 * `TypeError`, a crashed actor) or a timeout does NOT kill: it is reported as such and counts as a
 * survivor. The score is reported against a threshold, with every survivor listed; every
 * hand-written mutant must be killed.
 *
 * Runtime stays bounded (about 35 s on 2 cores) because a mutant runs only the paths it INFECTS: the
 * original run records each guard's answers, each action's changes, each deadline set and each gate
 * call per path, and the harness is deterministic, so a path on which a mutant changes none of them
 * runs exactly as the original did and cannot kill it. A mutant that infects no path is reported as
 * "not infected" and counts as a survivor.
 */
import { AssertionError } from 'node:assert';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { agentMachineFor } from '../../src/machines/agent.ts';
import { reviewCaseMachine } from '../../src/machines/review-case.ts';
import { defineSuite, generateSuite, HarnessError, type GeneratedPath, type Suite } from '../../src/testing/index.ts';
import {
  activate,
  gateInfects,
  gateMutants,
  HAND_WRITTEN,
  machineMutants,
  timerMutants,
  type EvaluateGate,
  type GateCall,
  type Mutant,
} from './mutants.ts';
import { REPO, strictPath } from './support.ts';

vi.mock('../../src/machines/agent.ts', async (importOriginal) =>
  (await import('./mutants.ts')).hookAgentModule(await importOriginal()),
);
vi.mock('../../src/machines/review-case.ts', async (importOriginal) =>
  (await import('./mutants.ts')).hookCaseModule(await importOriginal()),
);
vi.mock('../../src/policy/gate.ts', async (importOriginal) =>
  (await import('./mutants.ts')).hookGateModule(await importOriginal()),
);

/** Share of generated mutants that must be killed (74.5 % measured on 2026-12-06; see docs/testing.md). */
/** Raised with the suites: 74.5 % when the generated mutants came in, 94.0 % since the oracle and boundary paths (2026-12-06). */
const THRESHOLD = 0.9;
/** Longest a path may take before it counts as a timeout (a correct path takes well under a second). */
const PATH_TIMEOUT_MS = 15_000;
/** Refusals a runtime answers a reviewer command with; anything else thrown by a step is a crash. */

/** `not infected`: on no path does the mutant change a guard's answer, an assigned value, a deadline or a gate decision. */
type Verdict = 'killed' | 'survived' | 'crashed' | 'timeout' | 'not infected';

interface Entry {
  key: string;
  model: string;
  suite: Suite;
  path: GeneratedPath;
  covers: Set<string>;
  /** Failed against the original machines: it cannot tell a mutant from the original. */
  broken: boolean;
  /** The gate's calls in the original run. */
  gateCalls: GateCall[];
}

interface Row {
  mutant: Mutant;
  verdict: Verdict;
  /** The path that killed it, or the last one that crashed / timed out. */
  by: string;
  detail: string;
  ran: number;
}

class PathTimeout extends Error {}

const entries: Entry[] = [];
const original: { key: string; error: string }[] = [];
const rows: Row[] = [];
const wall = { generate: 0, original: 0, mutants: 0 };

async function walk(e: Entry): Promise<void> {
  const body = strictPath(e.path);
  const run = e.path.machine === 'agent' ? e.suite.agent(body) : e.suite.case(e.path.start!, body);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, fail) =>
      (timer = setTimeout(() => fail(new PathTimeout(`path took over ${PATH_TIMEOUT_MS} ms`)), PATH_TIMEOUT_MS)),
  );
  try {
    await Promise.race([run, timeout]);
  } finally {
    clearTimeout(timer);
    // A path abandoned on timeout still finishes (and disposes its store) in the background.
    run.catch(() => undefined);
  }
}

function classify(err: unknown): 'assertion' | 'timeout' | 'crash' {
  if (err instanceof PathTimeout) return 'timeout';
  if (err instanceof AssertionError || (err as Error)?.name === 'AssertionError') return 'assertion';
  if (err instanceof HarnessError)
    return /did not settle|did not get there/.test(err.message) ? 'timeout' : 'assertion';
  return 'crash';
}

const message = (err: unknown) =>
  (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).replace(/\s+/g, ' ');

beforeAll(async () => {
  const originalGate = (await vi.importActual<{ evaluateGate: EvaluateGate }>('../../src/policy/gate.ts')).evaluateGate;
  let t0 = performance.now();
  for (const model of ['refunds', 'incidents']) {
    const g = await generateSuite(join(REPO, 'models', model));
    const suite = defineSuite({ model: g.model, fixtures: g.fixtures, timeoutMs: 5_000 });
    for (const path of [...g.paths.agent.paths, ...g.paths.case.paths])
      entries.push({ key: `${model} ${path.id}`, model, suite, path, covers: new Set(), broken: false, gateCalls: [] });
  }
  wall.generate = Math.round(performance.now() - t0);

  // The original machines, recording what each path exercises.
  t0 = performance.now();
  for (const e of entries) {
    activate(
      null,
      (key) => e.covers.add(key),
      (call) => e.gateCalls.push(call),
    );
    try {
      await walk(e);
    } catch (err) {
      e.broken = true;
      original.push({ key: e.key, error: message(err).slice(0, 400) });
    }
  }
  activate(null);
  wall.original = Math.round(performance.now() - t0);

  const refunds = entries.find((e) => e.model === 'refunds')!.suite;
  const { model } = await refunds.load();
  const models = await Promise.all([...new Set(entries.map((e) => e.suite))].map((s) => s.load()));
  const mutants: Mutant[] = [
    ...machineMutants(
      'agent',
      agentMachineFor({
        gate: model.gate,
        onExpiry: model.config.policy.onExpiry,
        freshness: model.config.freshness,
      }) as never,
    ),
    ...machineMutants('case', reviewCaseMachine as never),
    ...timerMutants(entries.flatMap((e) => [...e.covers])),
    ...gateMutants(
      Math.max(...models.map((m) => m.model.config.policy.limits.length)),
      Math.max(...models.map((m) => m.model.config.policy.tierRiskBounds.length)),
    ),
    ...HAND_WRITTEN,
  ];

  t0 = performance.now();
  for (const mutant of mutants) {
    // Only the paths the mutant infects can kill it (see `instrument` in mutants.ts); shortest first.
    const infects = (e: Entry) =>
      mutant.machine === 'gate'
        ? gateInfects(mutant, originalGate, e.gateCalls)
        : mutant.target === null || e.covers.has(mutant.target);
    const paths = entries
      .filter((e) => !e.broken && infects(e))
      .sort((a, b) => a.path.steps.length - b.path.steps.length);
    const row: Row = { mutant, verdict: paths.length ? 'survived' : 'not infected', by: '', detail: '', ran: 0 };
    rows.push(row);
    activate(mutant);
    try {
      for (const e of paths) {
        row.ran++;
        try {
          await walk(e);
        } catch (err) {
          const kind = classify(err);
          row.by = e.key;
          row.detail = message(err).slice(0, 200);
          if (kind === 'assertion') {
            row.verdict = 'killed';
            break;
          }
          row.verdict = kind === 'timeout' ? 'timeout' : 'crashed';
        }
      }
    } finally {
      activate(null);
    }
  }
  wall.mutants = Math.round(performance.now() - t0);
}, 240_000);

describe('mutation testing of the generated suites', () => {
  it('the generated paths pass against the original machines', () => {
    expect(entries.length).toBeGreaterThan(20);
    expect(original).toEqual([]);
  });

  it('mutants generated across every guard, action and timer of both machines and the gate: score above the threshold, survivors listed', () => {
    const generated = rows.filter((r) => r.mutant.kind !== 'hand-written');
    const killed = generated.filter((r) => r.verdict === 'killed').length;
    const score = killed / generated.length;
    const byKind = new Map<string, { killed: number; total: number }>();
    for (const r of generated) {
      const k = byKind.get(r.mutant.kind) ?? { killed: 0, total: 0 };
      k.total++;
      if (r.verdict === 'killed') k.killed++;
      byKind.set(r.mutant.kind, k);
    }
    const line = (r: Row) =>
      `  ${r.verdict.padEnd(11)} ${r.mutant.name.padEnd(52)} ${r.by ? `${r.by}: ` : ''}${r.detail.slice(0, 140)}`;
    console.log(
      [
        `[mutation] score ${killed}/${generated.length} = ${(score * 100).toFixed(1)}% (threshold ${THRESHOLD * 100}%); ` +
          `hand-written ${rows.filter((r) => r.mutant.kind === 'hand-written' && r.verdict === 'killed').length}/${HAND_WRITTEN.length}; ` +
          `${entries.length} paths; wall: generate ${wall.generate} ms, original ${wall.original} ms, mutants ${wall.mutants} ms (${rows.reduce((n, r) => n + r.ran, 0)} path runs)`,
        `  by kind: ${[...byKind].map(([k, v]) => `${k} ${v.killed}/${v.total}`).join(', ')}`,
        `  verdicts: ${['killed', 'survived', 'crashed', 'timeout', 'not infected'].map((v) => `${v} ${rows.filter((r) => r.verdict === v).length}`).join(', ')}`,
        'survivors (a crash or a timeout does not kill):',
        ...generated.filter((r) => r.verdict !== 'killed').map(line),
      ].join('\n'),
    );
    // Every guard, action and timer of both machines is mutated.
    expect(new Set(generated.map((r) => r.mutant.kind))).toEqual(
      new Set([
        'guard-negated',
        'guard-true',
        'guard-false',
        'action-noop',
        'timer-never-armed',
        'timer-never-cleared',
        'timer-late',
        'gate-threshold',
        'gate-rule-off',
        'gate-outcome',
      ]),
    );
    expect(
      score,
      `mutation score ${(score * 100).toFixed(1)}% below the threshold ${THRESHOLD * 100}%`,
    ).toBeGreaterThanOrEqual(THRESHOLD);
  });

  it('every hand-written mutant (a named bug) is killed by a behaviour assertion', () => {
    const hand = rows.filter((r) => r.mutant.kind === 'hand-written');
    expect(hand).toHaveLength(HAND_WRITTEN.length);
    expect(hand.filter((r) => r.verdict !== 'killed').map((r) => `${r.mutant.name}: ${r.verdict} ${r.detail}`)).toEqual(
      [],
    );
  });
});
