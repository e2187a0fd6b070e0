/**
 * Path generation over a model's agent and review-case machines with `xstate/graph`.
 *
 * Each machine is traversed purely, as configured by the model (its real gate, tiers, lease, retry
 * policy), with event generators that derive the possible next events from a snapshot: effect results
 * from `context.effect`, deadlines from `context.timers`, reviewer commands from the case and the
 * model's reviewers, case resolutions for an agent waiting on one. States are abstracted to what
 * matters for the chart (state, attempt, step, tier, claim, timer order, ...), so the graph is finite.
 *
 * From the traversal: the reachable states and declared transitions (coverage is measured against
 * the machine definition), and a small set of concrete paths that covers all of them, each extended
 * to a final state and replayed step by step to compute what the runtime must show after each step.
 */
import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';
import { getSimplePaths } from 'xstate/graph';
import type { CaseResolution } from '../contracts/review-case.ts';
import { reviewCaseMachine, type CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import {
  agentAdapter,
  caseAdapter,
  labelOf,
  REDELIVERABLE,
  type Adapter,
  type Labeled,
  type MachineKind,
  type MachineSet,
  type Refusal,
} from './adapters.ts';
import type { Fixtures, PlanClass } from './fixtures.ts';
import { declaredStates, declaredTransitions, stateName, TransitionRecorder } from './machine-walk.ts';
import type { Action, Expectation } from './steps.ts';
import { annotate, choose, explore, fnv, percent, replay, type Explored, type Replayed } from './traversal.ts';

export type PathMode = 'shortest' | 'simple';
export type { MachineKind, MachineSet } from './adapters.ts';
export interface PathStep {
  action: Action;
  /** Full expectation after the step (the code generator writes only what changed). */
  expect: Expectation;
}

export interface GeneratedPath {
  id: string;
  machine: MachineKind;
  /** For case paths: the gate branch of the plan whose review opens the case. */
  start?: PlanClass;
  initial: Expectation;
  steps: PathStep[];
  /** States visited (including transient ones such as `gating`), in order, deduplicated runs. */
  states: string[];
  /** For a boundary path: the threshold probed and the branch model.json gives. */
  boundary?: { label: string; expect: PlanClass };
}

export interface MachineCoverage {
  machine: MachineKind;
  states: { declared: number; reachable: number; covered: number; percent: number };
  transitions: { declared: number; reachable: number; covered: number; percent: number };
  refusals?: { reachable: number; covered: number };
  /** Data-dependent branches (gate branch taken, tier escalated out of and how, outcome per tier, ...). */
  branches: { reachable: number; covered: number; names: string[] };
  /** Declared but not reachable with this model: listed as warnings. */
  unreachableStates: string[];
  unreachableTransitions: string[];
  /** Reachable but not covered by the generated paths (empty when coverage is complete). */
  uncoveredStates: string[];
  uncoveredTransitions: string[];
  coveredTransitions: string[];
  /** Each transition, state, branch, refusal, redelivery and gate threshold → the ids of the tests that cover it. */
  tests: Record<string, string[]>;
  paths: number;
  steps: number;
  abstractStates: number;
}

export interface MachinePaths {
  paths: GeneratedPath[];
  coverage: MachineCoverage;
  warnings: string[];
}

function generateFor(
  adapter: Adapter,
  model: LoadedModel,
  fx: Fixtures,
  mode: PathMode,
  maxPaths: number,
  react?: (start: PlanClass, resolution: CaseResolution) => string | null,
): MachinePaths {
  const recorder = new TransitionRecorder();
  /** Where the machines disagree with the oracle (model.json): reported, never baked into a path. */
  const oracle: string[] = [];
  const reachable = { states: new Set<string>(), transitions: new Set<string>() };
  const explored = adapter.roots.map((root) => explore(adapter, root, recorder, reachable));

  // Candidates: a shortest path to every abstract state, and to every edge, each run on to a final state.
  const candidates: Replayed[] = [];
  const seen = new Set<string>();
  const add = (x: Explored, labels: Action[]) => {
    const id = `${x.root.start ?? ''}:${JSON.stringify(labels)}`;
    if (seen.has(id)) return;
    seen.add(id);
    const r = replay(adapter, x.root, labels, recorder);
    if (r) candidates.push(r);
  };
  const finish = (x: Explored, labels: Action[], end: string) => [...labels, ...(x.toFinal.get(end) ?? [])];
  for (const x of explored)
    for (const [k, labels] of [...x.shortest].sort(([a], [b]) => (a < b ? -1 : 1))) add(x, finish(x, labels, k));
  const items = new Set<string>();
  for (const c of candidates) for (const i of c.items) items.add(i);
  // Transitions and branches only some edge takes (not on any shortest path): a path through that edge.
  for (const x of explored)
    for (const e of x.edges) {
      if (e.items.every((i) => items.has(i))) continue;
      const head = x.shortest.get(e.from);
      if (!head) continue;
      const before = candidates.length;
      add(x, finish(x, [...head, e.label], e.to));
      for (const c of candidates.slice(before)) for (const i of c.items) items.add(i);
    }
  // Branch goals (every gate branch, escalation out of every tier, ...) count as reachable when some
  // candidate reaches them.
  const goal = new Set<string>([
    ...[...reachable.states].map((s) => `S:${s}`),
    ...[...reachable.transitions].map((t) => `T:${t}`),
    ...[...items].filter((i) => i.startsWith('B:')),
  ]);
  let selected = choose(candidates, goal);

  if (mode === 'simple') {
    // Every simple path (no abstract state visited twice) to a final state, on a coarser abstraction,
    // added after the covering set up to `maxPaths`.
    const extra: Replayed[] = [];
    for (const x of explored) {
      const options = {
        fromState: x.initial,
        serializeState: (s: AnyMachineSnapshot) => adapter.key(s, true),
        serializeEvent: (e: Labeled) => labelOf(e.qa),
        events: (s: AnyMachineSnapshot) => adapter.events(s),
        toState: (s: AnyMachineSnapshot) => s.status === 'done',
      };
      for (const p of getSimplePaths(adapter.machine, options as never)) {
        const labels = p.steps.slice(1).map((s) => (s.event as Labeled).qa);
        const r = replay(adapter, x.root, labels, recorder);
        if (r && r.final) extra.push(r);
      }
    }
    extra.sort(
      (a, b) => a.labels.length - b.labels.length || (JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : 1),
    );
    const have = new Set(selected.map((s) => `${s.start ?? ''}:${JSON.stringify(s.labels)}`));
    for (const r of extra) {
      if (selected.length >= maxPaths) break;
      const id = `${r.start ?? ''}:${JSON.stringify(r.labels)}`;
      if (!have.has(id)) {
        have.add(id);
        selected.push(r);
      }
    }
  }

  const covered = new Set<string>();
  for (const r of selected) for (const i of r.items) covered.add(i);

  // Refused commands woven into the selected paths: each rule a reviewer can run into, once per state.
  const refusalGoals = new Map<string, { x: Explored; key: string }>();
  for (const x of explored)
    for (const [k, rep] of x.reps)
      for (const f of adapter.refusals(rep)) {
        const g = `${stateName(rep)}|${f.action.do}|${f.who ?? ''}|${f.rule ?? f.code}`;
        if (!refusalGoals.has(g)) refusalGoals.set(g, { x, key: k });
      }
  const insertions = new Map<Replayed, Map<number, Refusal[]>>();
  const refusalsCovered = new Set<string>();
  const placeRefusals = (r: Replayed) => {
    r.snapshots.forEach((snap, i) => {
      for (const f of adapter.refusals(snap)) {
        const g = `${stateName(snap)}|${f.action.do}|${f.who ?? ''}|${f.rule ?? f.code}`;
        if (refusalsCovered.has(g)) continue;
        refusalsCovered.add(g);
        const at = insertions.get(r) ?? new Map<number, Refusal[]>();
        at.set(i, [...(at.get(i) ?? []), f]);
        insertions.set(r, at);
      }
    });
  };
  for (const r of selected) placeRefusals(r);
  for (const [g, { x, key }] of [...refusalGoals].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (refusalsCovered.has(g)) continue;
    const head = x.shortest.get(key);
    if (!head) continue;
    const r = replay(adapter, x.root, finish(x, head, key), recorder);
    if (!r) continue;
    selected.push(r);
    placeRefusals(r);
  }

  // Results, deadlines and resolutions delivered twice, late or out of order: each ignored, once per
  // state and event type, woven where the path has already seen that event.
  const redelivered = new Set<string>();
  for (const r of selected)
    r.snapshots.forEach((snap, i) => {
      for (const type of REDELIVERABLE[adapter.kind]) {
        const j = r.events.map((e) => e.type).lastIndexOf(type, i - 1);
        if (j < 0 || j >= i) continue;
        const g = `${stateName(snap)}|redeliver ${type}`;
        if (redelivered.has(g)) continue;
        if (snap.status === 'active' && snap.can(r.events[j]!)) {
          if (!type.startsWith('timer.'))
            oracle.push(
              `oracle: the ${adapter.kind} machine accepts a second '${type}' in state ${stateName(snap)}; ` +
                'it must be ignored',
            );
          continue;
        }
        redelivered.add(g);
        const at = insertions.get(r) ?? new Map<number, Refusal[]>();
        at.set(i, [
          ...(at.get(i) ?? []),
          { action: { do: 'redeliver', event: type }, event: null, code: 'event.rejected' },
        ]);
        insertions.set(r, at);
      }
    });

  // Stable order: by start, then length, then labels.
  selected = [...selected].sort(
    (a, b) =>
      (a.start ?? '').localeCompare(b.start ?? '') ||
      a.labels.length - b.labels.length ||
      (JSON.stringify(a.labels) < JSON.stringify(b.labels)
        ? -1
        : JSON.stringify(a.labels) > JSON.stringify(b.labels)
          ? 1
          : 0),
  );

  const prefix = adapter.kind === 'agent' ? 'A' : 'C';
  // Stable ids: a hash of the path's own steps, so a model change renumbers nothing it leaves alone.
  const ids = new Map<Replayed, string>();
  for (const r of selected) {
    let id = `${prefix}-${fnv(`${r.start ?? ''}:${JSON.stringify(r.labels)}`).slice(0, 6)}`;
    for (let k = 2; [...ids.values()].includes(id); k++) id = `${id.slice(0, 8)}.${k}`;
    ids.set(r, id);
  }
  /** What each test covers: transitions, states, branches, refusals and redeliveries → test ids. */
  const coveredBy: Record<string, string[]> = {};
  const cover = (item: string, id: string) => (coveredBy[item] ??= []).includes(id) || coveredBy[item]!.push(id);
  const paths: GeneratedPath[] = selected.map((r) => {
    const { initial, steps, states } = annotate(adapter, r, model, fx, oracle);
    const woven: PathStep[] = [];
    const at = insertions.get(r);
    const refusedAt = (i: number) => {
      const snap = r.snapshots[i]!;
      for (const f of at?.get(i) ?? [])
        woven.push({
          action: f.action,
          expect: { state: stateName(snap), refused: { code: f.code, ...(f.rule ? { rule: f.rule } : {}) }, audit: [] },
        });
    };
    steps.forEach((s, i) => {
      refusedAt(i);
      woven.push(s);
    });
    refusedAt(steps.length);
    const last = r.snapshots.at(-1)!;
    const resolution =
      adapter.kind === 'case' && last.status === 'done' ? (last.context as CaseContext).resolution : null;
    const agent = resolution && react && r.start ? react(r.start, resolution) : null;
    if (agent) {
      const lastReal = [...woven].reverse().find((w) => !w.expect.refused);
      if (lastReal) lastReal.expect = { ...lastReal.expect, agent };
    }
    const id = ids.get(r)!;
    for (const i of r.items)
      cover(
        i.startsWith('T:')
          ? `transition ${i.slice(2)}`
          : i.startsWith('S:')
            ? `state ${i.slice(2)}`
            : `branch ${i.slice(2)}`,
        id,
      );
    for (const w of woven)
      if (w.expect.refused)
        cover(
          w.action.do === 'redeliver'
            ? `redelivery ${w.action.event} in ${w.expect.state}`
            : `refusal ${w.action.do} ${w.expect.refused.rule ?? w.expect.refused.code} in ${w.expect.state}`,
          id,
        );
    return { id, machine: adapter.kind, ...(r.start ? { start: r.start } : {}), initial, steps: woven, states };
  });

  const declaredS = declaredStates(adapter.machine);
  const declaredT = declaredTransitions(adapter.machine);
  const coveredStates = [...reachable.states].filter((s) => covered.has(`S:${s}`));
  const coveredTransitions = [...reachable.transitions].filter((t) => covered.has(`T:${t}`)).sort();
  const unreachableStates = declaredS.filter((s) => !reachable.states.has(s));
  const unreachableTransitions = declaredT.filter((t) => !reachable.transitions.has(t));
  const name = adapter.kind === 'agent' ? 'agent' : 'review case';
  const warnings = [
    ...[...new Set(oracle)],
    ...unreachableStates.map((s) => `${name}: state '${s}' is unreachable with model ${model.name}`),
    ...unreachableTransitions.map((t) => `${name}: transition '${t}' is unreachable with model ${model.name}`),
  ];
  const coverage: MachineCoverage = {
    machine: adapter.kind,
    states: {
      declared: declaredS.length,
      reachable: reachable.states.size,
      covered: coveredStates.length,
      percent: percent(coveredStates.length, reachable.states.size),
    },
    transitions: {
      declared: declaredT.length,
      reachable: reachable.transitions.size,
      covered: coveredTransitions.length,
      percent: percent(coveredTransitions.length, reachable.transitions.size),
    },
    ...(adapter.kind === 'case' ? { refusals: { reachable: refusalGoals.size, covered: refusalsCovered.size } } : {}),
    branches: {
      reachable: [...goal].filter((g) => g.startsWith('B:')).length,
      covered: [...goal].filter((g) => g.startsWith('B:') && covered.has(g)).length,
      names: [...goal]
        .filter((g) => g.startsWith('B:') && covered.has(g))
        .map((g) => g.slice(2))
        .sort(),
    },
    unreachableStates,
    unreachableTransitions,
    uncoveredStates: [...reachable.states].filter((s) => !covered.has(`S:${s}`)).sort(),
    uncoveredTransitions: [...reachable.transitions].filter((t) => !covered.has(`T:${t}`)).sort(),
    coveredTransitions,
    tests: Object.fromEntries(
      Object.entries(coveredBy)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, v.sort()]),
    ),
    paths: paths.length,
    steps: paths.reduce((n, p) => n + p.steps.length, 0),
    abstractStates: explored.reduce((n, x) => n + x.reps.size, 0),
  };
  return { paths, coverage, warnings };
}

/** The state an agent waiting on a case of branch `start` goes to when the case resolves. */
function agentReaction(
  model: LoadedModel,
  fx: Fixtures,
  machines: MachineSet,
): (start: PlanClass, resolution: CaseResolution) => string | null {
  const adapter = agentAdapter(model, fx, machines);
  const recorder = new TransitionRecorder();
  return (start, resolution) => {
    const r = replay(
      adapter,
      adapter.roots[0]!,
      [{ do: 'perceive', result: 'done' }, { do: 'plan', result: 'done', plan: start }, { do: 'caseOpened' }],
      recorder,
    );
    if (!r) return null;
    const snap = r.snapshots.at(-1)!;
    const event = { type: 'case.resolved', resolution, at: resolution.at };
    if (!snap.can(event)) return null;
    return stateName(recorder.step(adapter.machine, snap, event).next);
  };
}

/** The gate at every threshold and limit: perceive, then the boundary plan; the branch from the oracle. */
function boundaryPaths(
  model: LoadedModel,
  fx: Fixtures,
  machines: MachineSet,
): { paths: GeneratedPath[]; problems: string[] } {
  const list = fx.boundaries ?? [];
  const adapter = agentAdapter(model, fx, machines, Object.fromEntries(list.map((b) => [`boundary:${b.id}`, b.plan])));
  const recorder = new TransitionRecorder();
  const problems: string[] = [];
  const paths: GeneratedPath[] = [];
  const stateOf = (cls: string) => (cls === 'auto' ? 'acting' : cls === 'deny' ? 'denied' : 'awaitingReview');
  for (const b of list) {
    const head: Action[] = [
      { do: 'perceive', result: 'done' },
      { do: 'plan', result: 'done', plan: `boundary:${b.id}` },
    ];
    // A review decision is only visible once the runtime has opened the case (the step after).
    const r =
      replay(adapter, adapter.roots[0]!, [...head, { do: 'caseOpened' }], recorder) ??
      replay(adapter, adapter.roots[0]!, head, recorder);
    if (!r) continue;
    const { initial, steps, states } = annotate(adapter, r, model, fx, problems);
    const decided = steps.find((s) => s.action.do === 'plan')!;
    if (decided.expect.decision !== b.expect) {
      problems.push(
        `oracle: the gate sends '${b.label}' to ${decided.expect.decision}; model.json's policy says ${b.expect}`,
      );
      for (const s of steps.slice(steps.indexOf(decided)))
        s.expect = { ...s.expect, decision: b.expect, state: s === decided ? stateOf(b.expect) : s.expect.state };
    }
    paths.push({
      id: `B-${b.id}`,
      machine: 'agent',
      initial,
      steps,
      states,
      boundary: { label: b.label, expect: b.expect },
    });
  }
  return { paths, problems };
}

export interface ModelPaths {
  agent: MachinePaths;
  case: MachinePaths;
}

/** Generates covering paths for both machines of a model. */
export function generatePaths(
  model: LoadedModel,
  fx: Fixtures,
  opts: { paths?: PathMode; maxPaths?: number; machines?: MachineSet } = {},
): ModelPaths {
  const mode = opts.paths ?? 'shortest';
  const maxPaths = opts.maxPaths ?? 200;
  const machines = opts.machines ?? {};
  const agent = generateFor(agentAdapter(model, fx, machines), model, fx, mode, maxPaths);
  const boundary = boundaryPaths(model, fx, machines);
  agent.paths.push(...boundary.paths);
  agent.warnings.unshift(...boundary.problems);
  agent.coverage.paths += boundary.paths.length;
  for (const p of boundary.paths) agent.coverage.tests[`gate ${p.boundary!.label} → ${p.boundary!.expect}`] = [p.id];
  agent.coverage.steps += boundary.paths.reduce((n, p) => n + p.steps.length, 0);
  const starts = Object.keys(fx.plans)
    .filter((c) => c.startsWith('review:'))
    .sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)));
  const kase =
    starts.length > 0
      ? generateFor(
          caseAdapter(model, fx, machines, starts),
          model,
          fx,
          mode,
          maxPaths,
          agentReaction(model, fx, machines),
        )
      : emptyCase(machines.case ?? reviewCaseMachine, model);
  return { agent, case: kase };
}

function emptyCase(machine: AnyStateMachine, model: LoadedModel): MachinePaths {
  const s = declaredStates(machine);
  const t = declaredTransitions(machine);
  return {
    paths: [],
    coverage: {
      machine: 'case',
      states: { declared: s.length, reachable: 0, covered: 0, percent: 100 },
      transitions: { declared: t.length, reachable: 0, covered: 0, percent: 100 },
      refusals: { reachable: 0, covered: 0 },
      branches: { reachable: 0, covered: 0, names: [] },
      unreachableStates: s,
      unreachableTransitions: t,
      uncoveredStates: [],
      uncoveredTransitions: [],
      coveredTransitions: [],
      tests: {},
      paths: 0,
      steps: 0,
      abstractStates: 0,
    },
    warnings: [
      `review case: no plan of model ${model.name} goes to review, so no review case is ever opened ` +
        '(every state of the review-case machine is unreachable)',
    ],
  };
}
