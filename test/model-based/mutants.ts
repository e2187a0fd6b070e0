/**
 * Mutants for mutation testing of the generated suites (test/model-based/mutation.test.ts).
 *
 * Most are GENERATED, not hand-picked: for the agent and review-case machines, every named guard is
 * negated and replaced by `true` and by `false`, every named action is replaced by a no-op, and every
 * timer the paths arm is never armed, never cleared and armed twice as late; for the gate, every
 * threshold of the policy is moved across its boundary, every rule is switched off, and the
 * decision's outcome and tier are changed. A few HAND-WRITTEN mutants (a dropped transition, a
 * separation-of-duties check forgotten, an escalation that keeps old deadlines, ...) stay beside them
 * as regressions of named bugs.
 *
 * Mutants are applied with `machine.provide` (or a rebuilt config) to the machines the runtime
 * builds, through module hooks (`hookAgentModule`, `hookCaseModule`, `hookGateModule`) that the test
 * installs with `vi.mock`, so the real runtime hosts them. This module must not import the machine or
 * gate modules: during a mutant run they are mocked, and the mocks call into it.
 */
import { isDeepStrictEqual } from 'node:util';
import { assign, createMachine, type AnyStateMachine } from 'xstate';

export type MutantKind =
  | 'guard-negated'
  | 'guard-true'
  | 'guard-false'
  | 'action-noop'
  | 'timer-never-armed'
  | 'timer-never-cleared'
  | 'timer-late'
  | 'gate-threshold'
  | 'gate-rule-off'
  | 'gate-outcome'
  | 'hand-written';

export type MachineKind = 'agent' | 'case' | 'gate';

export interface Mutant {
  name: string;
  machine: MachineKind;
  kind: MutantKind;
  /**
   * The coverage key of what is mutated (`agent.guard.effectIsCurrent`, `case.timer.lease`, `gate`):
   * only the paths that exercised it in the original run can kill the mutant. Null: every path.
   */
  target: string | null;
  description: string;
  /** Machine mutants: the mutated machine. */
  mutate?(m: AnyStateMachine, lib: Record<string, unknown>): AnyStateMachine;
  /** Gate mutants: the mutated gate function. */
  gate?(evaluate: EvaluateGate): EvaluateGate;
}

// ------------------------------------------------------------------------------------------------
// The module hooks and the active mutant
// ------------------------------------------------------------------------------------------------

export type EvaluateGate = (plan: any, observation: any, model: any) => any;

interface MutationState {
  mutant: Mutant | null;
  /** While set, every guard, action, timer and gate call records its coverage key here. */
  record: ((key: string) => void) | null;
  /** While set, every gate call's arguments are handed here. */
  gateCall?: ((call: GateCall) => void) | null;
}

const STATE: MutationState = ((globalThis as Record<string, unknown>).__handoffMutation ??= {
  mutant: null,
  record: null,
}) as MutationState;

/** Makes `mutant` (null: the original machines) the one the runtime builds from now on. */
export function activate(
  mutant: Mutant | null,
  record: ((key: string) => void) | null = null,
  gateCall: ((call: GateCall) => void) | null = null,
): void {
  STATE.mutant = mutant;
  STATE.record = record;
  STATE.gateCall = gateCall;
}

/** Whether a gate mutant decides any of `calls` differently from the original gate. */
export function gateInfects(mutant: Mutant, original: EvaluateGate, calls: GateCall[]): boolean {
  if (!mutant.gate) return false;
  const mutated = mutant.gate(original);
  return calls.some(
    ([plan, observation, model]) =>
      !isDeepStrictEqual(mutated(plan, observation, model), original(plan, observation, model)),
  );
}

function build(kind: 'agent' | 'case', m: AnyStateMachine, lib: Record<string, unknown>): AnyStateMachine {
  if (STATE.record) return instrument(m, kind, STATE.record);
  const mutant = STATE.mutant;
  return mutant && mutant.machine === kind && mutant.mutate ? mutant.mutate(m, lib) : m;
}

/** The agent machine module with `agentMachineFor` building the active mutant. */
export function hookAgentModule(lib: Record<string, any>): Record<string, unknown> {
  return { ...lib, agentMachineFor: (bindings: unknown) => build('agent', lib.agentMachineFor(bindings), lib) };
}

/** The review-case module with `reviewCaseMachine` read as the active mutant (the runtime reads it per actor). */
export function hookCaseModule(lib: Record<string, any>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...lib };
  const cache = new Map<string, AnyStateMachine>();
  Object.defineProperty(out, 'reviewCaseMachine', {
    enumerable: true,
    get: () => {
      const key = STATE.record ? '#record' : STATE.mutant?.machine === 'case' ? STATE.mutant.name : '';
      if (!key) return lib.reviewCaseMachine;
      if (key === '#record') return build('case', lib.reviewCaseMachine, lib);
      let m = cache.get(key);
      if (!m) cache.set(key, (m = build('case', lib.reviewCaseMachine, lib)));
      return m;
    },
  });
  return out;
}

/** The gate module with `evaluateGate` as the active gate mutant. */
export function hookGateModule(lib: Record<string, any>): Record<string, unknown> {
  const original = lib.evaluateGate as EvaluateGate;
  return {
    ...lib,
    evaluateGate: (plan: unknown, observation: unknown, model: unknown) => {
      STATE.record?.('gate');
      STATE.gateCall?.([structuredClone(plan), structuredClone(observation), model]);
      const mutant = STATE.mutant;
      return mutant?.machine === 'gate' && mutant.gate
        ? mutant.gate(original)(plan, observation, model)
        : original(plan, observation, model);
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Machine surgery
// ------------------------------------------------------------------------------------------------

type GuardFn = (args: { context: any; event: any }, params?: unknown) => boolean;
type ActionImpl = ((args: any, params?: unknown) => unknown) & { type?: string; assignment?: unknown };
type Timers = Record<string, number | undefined>;

function guardsOf(m: AnyStateMachine): Record<string, GuardFn> {
  return (m.implementations.guards ?? {}) as Record<string, GuardFn>;
}

function actionsOf(m: AnyStateMachine): Record<string, ActionImpl> {
  return (m.implementations.actions ?? {}) as Record<string, ActionImpl>;
}

function withGuard(m: AnyStateMachine, name: string, fn: GuardFn): AnyStateMachine {
  return m.provide({ guards: { [name]: fn } } as never) as AnyStateMachine;
}

function guardOf(m: AnyStateMachine, name: string): GuardFn {
  const g = guardsOf(m)[name];
  if (!g) throw new Error(`no guard ${name}`);
  return g;
}

/** What an `assign` computes, as XState would (a function, or an object of values and functions). */
function evaluateAssignment(assignment: unknown, args: any, params: unknown): Record<string, unknown> {
  if (typeof assignment === 'function')
    return (assignment as (a: unknown, p: unknown) => Record<string, unknown>)(args, params) ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((assignment ?? {}) as Record<string, unknown>))
    out[k] = typeof v === 'function' ? (v as (a: unknown, p: unknown) => unknown)(args, params) : v;
  return out;
}

/**
 * The action with `post` run on what it assigns (and may change it); a non-assign action runs as it
 * is, after `post` saw it called.
 */
function wrapAction(
  a: ActionImpl,
  post: (args: any, result: Record<string, unknown> | undefined) => Record<string, unknown> | undefined,
): unknown {
  if (typeof a === 'function' && a.type === 'xstate.assign') {
    return assign(
      ((args: any, params: unknown) => post(args, evaluateAssignment(a.assignment, args, params)) ?? {}) as never,
    );
  }
  if (typeof a === 'function') {
    return (args: any, params: unknown) => {
      post(args, undefined);
      return a(args, params);
    };
  }
  return a;
}

function mapActions(
  m: AnyStateMachine,
  post: (name: string, args: any, result: Record<string, unknown> | undefined) => Record<string, unknown> | undefined,
): AnyStateMachine {
  const actions = Object.fromEntries(
    Object.entries(actionsOf(m)).map(([name, a]) => [name, wrapAction(a, (args, result) => post(name, args, result))]),
  );
  return m.provide({ actions } as never) as AnyStateMachine;
}

/**
 * The machine with every guard, action and timer recording, when it runs, the coverage keys of the
 * mutants it could INFECT: `<m>.guard.<g>` (evaluated: negation changes it), `<m>.guard.<g>=true` /
 * `=false` (its answer; "always false" only changes runs where it answered true), `<m>.action.<a>`
 * (ran; a no-op changes the run only where it changed the context, `<m>.action.<a>~changes`) and
 * `<m>.timer.<t>` (an action set or cleared it). The harness is deterministic, so a mutant that
 * changes no guard answer, no assigned value and no deadline along a path runs that path exactly as
 * the original did: only the paths it infects can kill it.
 */
function instrument(m: AnyStateMachine, kind: 'agent' | 'case', record: (key: string) => void): AnyStateMachine {
  const guards = Object.fromEntries(
    Object.entries(guardsOf(m)).map(([name, g]) => [
      name,
      (args: { context: any; event: any }, params?: unknown) => {
        const answer = g(args, params);
        record(`${kind}.guard.${name}`);
        record(`${kind}.guard.${name}=${!!answer}`);
        return answer;
      },
    ]),
  );
  const withGuards = m.provide({ guards } as never) as AnyStateMachine;
  return mapActions(withGuards, (name, args, result) => {
    record(`${kind}.action.${name}`);
    const context = (args.context ?? {}) as Record<string, unknown>;
    if (!result || Object.entries(result).some(([k, v]) => !isDeepStrictEqual(context[k], v)))
      record(`${kind}.action.${name}~changes`);
    const before = (context.timers ?? {}) as Timers;
    const after = result?.timers as Timers | undefined;
    if (after)
      for (const t of new Set([...Object.keys(before), ...Object.keys(after)]))
        if (before[t] !== after[t]) record(`${kind}.timer.${t}`);
    return result;
  });
}

/** Records a gate call's arguments (gate mutants are checked against them before any path runs). */
export type GateCall = [plan: unknown, observation: unknown, model: unknown];

/** Every action's `timers` passed through `change` (given the context's timers before the action). */
function mutateTimers(
  m: AnyStateMachine,
  change: (before: Timers, after: Timers, at: number) => Timers,
): AnyStateMachine {
  return mapActions(m, (_name, args, result) => {
    if (!result?.timers) return result;
    return {
      ...result,
      timers: change((args.context?.timers ?? {}) as Timers, result.timers as Timers, Number(args.event?.at ?? 0)),
    };
  });
}

/** Rebuilds the machine without one transition (`state` null: the root's handlers). */
function drop(m: AnyStateMachine, state: string | null, event: string, index: number): AnyStateMachine {
  const cfg = m.config as { on?: Record<string, unknown>; states: Record<string, { on?: Record<string, unknown> }> };
  const strip = (on: Record<string, unknown> | undefined) => {
    const copy = { ...(on ?? {}) };
    const t = copy[event];
    if (Array.isArray(t)) {
      const rest = t.filter((_, i) => i !== index);
      if (rest.length) copy[event] = rest;
      else delete copy[event];
    } else if (index === 0) delete copy[event];
    else throw new Error(`${state}.${event} has no candidate ${index}`);
    return copy;
  };
  const next =
    state === null
      ? { ...cfg, on: strip(cfg.on) }
      : { ...cfg, states: { ...cfg.states, [state]: { ...cfg.states[state], on: strip(cfg.states[state]?.on) } } };
  return createMachine(next as never, m.implementations as never) as unknown as AnyStateMachine;
}

// ------------------------------------------------------------------------------------------------
// Generated mutants
// ------------------------------------------------------------------------------------------------

/**
 * Guard and action mutants of one machine, from the names its implementations declare (`m` built as
 * the runtime builds it: for the agent, with a model's bindings provided).
 */
export function machineMutants(kind: 'agent' | 'case', m: AnyStateMachine): Mutant[] {
  const out: Mutant[] = [];
  for (const name of Object.keys(guardsOf(m)).sort()) {
    const target = `${kind}.guard.${name}`;
    out.push(
      {
        name: `${kind} guard ${name} negated`,
        machine: kind,
        kind: 'guard-negated',
        target,
        description: `guard ${name} answers the opposite`,
        mutate: (x) => withGuard(x, name, (args, params) => !guardOf(x, name)(args, params)),
      },
      {
        name: `${kind} guard ${name} always true`,
        machine: kind,
        kind: 'guard-true',
        target: `${target}=false`,
        description: `guard ${name} always holds`,
        mutate: (x) => withGuard(x, name, () => true),
      },
      {
        name: `${kind} guard ${name} always false`,
        machine: kind,
        kind: 'guard-false',
        target: `${target}=true`,
        description: `guard ${name} never holds`,
        mutate: (x) => withGuard(x, name, () => false),
      },
    );
  }
  for (const name of Object.keys(actionsOf(m)).sort()) {
    out.push({
      name: `${kind} action ${name} no-op`,
      machine: kind,
      kind: 'action-noop',
      target: `${kind}.action.${name}~changes`,
      description: `action ${name} does nothing`,
      mutate: (x) => x.provide({ actions: { [name]: () => undefined } } as never) as AnyStateMachine,
    });
  }
  return out;
}

/** Timer mutants for each timer the original run armed (coverage keys `<machine>.timer.<name>`). */
export function timerMutants(keys: Iterable<string>): Mutant[] {
  const out: Mutant[] = [];
  for (const key of [...new Set(keys)].filter((k) => /^(agent|case)\.timer\./.test(k)).sort()) {
    const [kind, , name] = key.split('.') as ['agent' | 'case', string, string];
    out.push(
      {
        name: `${kind} timer ${name} never armed`,
        machine: kind,
        kind: 'timer-never-armed',
        target: key,
        description: `no action ever sets the ${name} deadline`,
        mutate: (x) =>
          mutateTimers(x, (before, after) => {
            const next = { ...after };
            if (before[name] === undefined) delete next[name];
            else next[name] = before[name];
            return next;
          }),
      },
      {
        name: `${kind} timer ${name} never cleared`,
        machine: kind,
        kind: 'timer-never-cleared',
        target: key,
        description: `an action that clears the ${name} deadline leaves it armed`,
        mutate: (x) =>
          mutateTimers(x, (before, after) =>
            before[name] !== undefined && after[name] === undefined ? { ...after, [name]: before[name] } : after,
          ),
      },
      {
        name: `${kind} timer ${name} late`,
        machine: kind,
        kind: 'timer-late',
        target: key,
        description: `the ${name} deadline is armed twice as far from the event as it should be`,
        mutate: (x) =>
          mutateTimers(x, (before, after, at) => {
            const due = after[name];
            return due !== undefined && due !== before[name] && due > at
              ? { ...after, [name]: at + 2 * (due - at) }
              : after;
          }),
      },
    );
  }
  return out;
}

interface PolicyLike {
  allowedActions: string[];
  deniedActions: string[];
  minAutoConfidence: number;
  maxAutoRisk: number;
  denyAboveRisk: number;
  tierRiskBounds: number[];
  reviewDataClasses: string[];
  lowConfidenceTier2Below?: number;
  limits: { action: string; arg: string; reviewAbove?: number; denyAbove?: number; reviewTier: number }[];
}

function gatePolicyMutant(
  name: string,
  description: string,
  change: (p: PolicyLike, model: any) => PolicyLike,
): Mutant {
  return {
    name: `gate ${name}`,
    machine: 'gate',
    kind: name.includes(' off') ? 'gate-rule-off' : 'gate-threshold',
    target: 'gate',
    description,
    gate: (evaluate) => (plan, observation, model) =>
      evaluate(plan, observation, { ...model, policy: change(model.policy as PolicyLike, model) }),
  };
}

function gateOutcomeMutant(name: string, description: string, change: (d: any, model: any) => any): Mutant {
  return {
    name: `gate ${name}`,
    machine: 'gate',
    kind: 'gate-outcome',
    target: 'gate',
    description,
    gate: (evaluate) => (plan, observation, model) => change(evaluate(plan, observation, model), model),
  };
}

const EPS = 0.02;
const clamp = (x: number) => Math.min(1, Math.max(0, Math.round(x * 1000) / 1000));

/**
 * Gate mutants: each threshold of the policy moved by ±{@link EPS} (the generated fixtures probe
 * ±0.01 around each), each limit moved by ±10 %, each rule switched off, and the decision's outcome
 * or tier changed. `maxLimits`/`maxTiers`: the most limits and tier bounds of the models under test.
 */
export function gateMutants(maxLimits: number, maxTiers: number): Mutant[] {
  const out: Mutant[] = [];
  for (const [field, label] of [
    ['maxAutoRisk', 'auto risk limit'],
    ['denyAboveRisk', 'risk ceiling'],
    ['minAutoConfidence', 'auto confidence threshold'],
    ['lowConfidenceTier2Below', 'low-confidence tier-2 threshold'],
  ] as const) {
    for (const sign of [1, -1]) {
      out.push(
        gatePolicyMutant(`${field} ${sign > 0 ? '+' : '-'}${EPS}`, `the ${label} moved by ${sign * EPS}`, (p) =>
          p[field] === undefined ? p : { ...p, [field]: clamp(p[field]! + sign * EPS) },
        ),
      );
    }
  }
  for (let i = 0; i < maxTiers - 1; i++) {
    for (const sign of [1, -1]) {
      out.push(
        gatePolicyMutant(
          `tierRiskBounds[${i}] ${sign > 0 ? '+' : '-'}${EPS}`,
          `the risk bound of tier ${i + 1} moved by ${sign * EPS}`,
          (p) => ({ ...p, tierRiskBounds: p.tierRiskBounds.map((b, j) => (j === i ? clamp(b + sign * EPS) : b)) }),
        ),
      );
    }
  }
  for (let i = 0; i < maxLimits; i++) {
    for (const field of ['reviewAbove', 'denyAbove'] as const) {
      for (const factor of [1.1, 0.9]) {
        out.push(
          gatePolicyMutant(`limits[${i}].${field} ×${factor}`, `limit ${i}'s ${field} scaled by ${factor}`, (p) => ({
            ...p,
            limits: p.limits.map((l, j) =>
              j === i && l[field] !== undefined ? { ...l, [field]: l[field]! * factor } : l,
            ),
          })),
        );
      }
    }
    out.push(
      gatePolicyMutant(`limits[${i}] off`, `limit ${i} is not checked`, (p) => ({
        ...p,
        limits: p.limits.filter((_, j) => j !== i),
      })),
    );
    out.push(
      gatePolicyMutant(`limits[${i}].reviewTier -1`, `limit ${i} asks for one tier lower`, (p) => ({
        ...p,
        limits: p.limits.map((l, j) => (j === i ? { ...l, reviewTier: Math.max(1, l.reviewTier - 1) } : l)),
      })),
    );
  }
  out.push(
    gatePolicyMutant('allow-list off', 'every action type is allowed', (p, model) => ({
      ...p,
      allowedActions: Object.keys(model.actions ?? {}),
    })),
    gatePolicyMutant('denied-actions off', 'no action type is denied', (p) => ({ ...p, deniedActions: [] })),
    gatePolicyMutant('risk-ceiling off', 'no risk is too high to deny', (p) => ({ ...p, denyAboveRisk: 1 })),
    gatePolicyMutant('risk-threshold off', 'any risk below the ceiling runs on its own', (p) => ({
      ...p,
      maxAutoRisk: p.denyAboveRisk,
    })),
    gatePolicyMutant('confidence-threshold off', 'any confidence runs on its own', (p) => ({
      ...p,
      minAutoConfidence: 0,
    })),
    gatePolicyMutant('data-class off', 'no data class needs review', (p) => ({ ...p, reviewDataClasses: [] })),
    gatePolicyMutant('low-confidence tier-2 off', 'low confidence asks for tier 1 only', (p) => {
      const { lowConfidenceTier2Below: _off, ...rest } = p;
      return rest;
    }),
    gateOutcomeMutant('deny becomes auto', 'a denied plan runs on its own', (d) =>
      d.outcome === 'deny' ? { ...d, outcome: 'auto', ruleId: 'auto', tier: 0 } : d,
    ),
    gateOutcomeMutant('deny becomes review', 'a denied plan goes to the last tier', (d, m) =>
      d.outcome === 'deny' ? { ...d, outcome: 'review', tier: m.policy.tierRiskBounds.length } : d,
    ),
    gateOutcomeMutant('review becomes auto', 'a plan that needs review runs on its own', (d) =>
      d.outcome === 'review' ? { ...d, outcome: 'auto', ruleId: 'auto', tier: 0 } : d,
    ),
    gateOutcomeMutant('review becomes deny', 'a plan that needs review is denied', (d) =>
      d.outcome === 'review' ? { ...d, outcome: 'deny', tier: 0 } : d,
    ),
    gateOutcomeMutant('auto becomes review', 'a plan within every threshold goes to tier 1', (d) =>
      d.outcome === 'auto' ? { ...d, outcome: 'review', ruleId: 'risk-threshold', tier: 1 } : d,
    ),
    gateOutcomeMutant('review tier -1', 'review one tier lower than asked', (d) =>
      d.outcome === 'review' && d.tier > 1 ? { ...d, tier: d.tier - 1 } : d,
    ),
    gateOutcomeMutant('review tier +1', 'review one tier higher than asked', (d, m) =>
      d.outcome === 'review' && d.tier < m.policy.tierRiskBounds.length ? { ...d, tier: d.tier + 1 } : d,
    ),
  );
  return out;
}

// ------------------------------------------------------------------------------------------------
// Hand-written mutants (regressions of named bugs)
// ------------------------------------------------------------------------------------------------

/** The first of `names` the machine has (guards get renamed; a hand-written mutant names its role). */
function pick(m: AnyStateMachine, names: string[]): string {
  const found = names.find((n) => n in guardsOf(m));
  if (!found)
    throw new Error(`hand-written mutant out of date: the machine has none of the guards ${names.join(', ')}`);
  return found;
}

function invert(m: AnyStateMachine, ...names: string[]): AnyStateMachine {
  const name = pick(m, names);
  const g = guardOf(m, name);
  return withGuard(m, name, (args, params) => !g(args, params));
}

function hand(name: string, machine: 'agent' | 'case', description: string, mutate: Mutant['mutate']): Mutant {
  return { name, machine, kind: 'hand-written', target: null, description, mutate };
}

export const HAND_WRITTEN: Mutant[] = [
  hand(
    'agent-no-compensation-on-failure',
    'agent',
    'drop acting --action.failed#2--> compensating: a permanent failure after completed steps is ignored',
    (m) => drop(m, 'acting', 'action.failed', 2),
  ),
  hand(
    'agent-rejection-ignored',
    'agent',
    'drop awaitingReview --case.resolved#2--> rejected: a rejected case leaves the agent waiting',
    (m) => drop(m, 'awaitingReview', 'case.resolved', 2),
  ),
  hand(
    'agent-operator-retry-dropped',
    'agent',
    "drop awaitingOperator --case.resolved#0--> compensating: an operator's approval ends the episode instead of retrying",
    (m) => drop(m, 'awaitingOperator', 'case.resolved', 0),
  ),
  hand(
    'agent-retry-inverted',
    'agent',
    'invert transientWithAttemptsLeft: transient failures fail at once, permanent ones are retried',
    (m) => invert(m, 'transientWithAttemptsLeft'),
  ),
  hand(
    'agent-review-coverage-inverted',
    'agent',
    'invert reviewAlreadyCovers: a modification the reviewer covered is reviewed again, a riskier one runs',
    (m) => invert(m, 'reviewAlreadyCovers'),
  ),
  hand(
    'agent-first-step-compensated',
    'agent',
    'invert nothingExecutedYet: a failure at the first step compensates nothing, later failures fail without compensating',
    (m) => invert(m, 'nothingExecutedYet'),
  ),
  hand(
    'agent-skip-compensation',
    'agent',
    'moreToCompensate always false: only the last completed step is compensated',
    (m) => withGuard(m, 'moreToCompensate', () => false),
  ),
  hand(
    'case-remove-last-tier',
    'case',
    'hasNextTier stops one tier early: a case expires instead of escalating to the last tier',
    (m) => withGuard(m, 'hasNextTier', ({ context }) => context.tier < context.tiers.length - 1),
  ),
  hand(
    'case-four-eyes-inverted',
    'case',
    'invert the more-approvals guard: four-eyes tiers take one approval, others ask for two',
    (m) => invert(m, 'needsMoreApprovals', 'needsSecondApproval'),
  ),
  hand(
    'case-lease-never-expires',
    'case',
    'drop claimed --timer.lease--> queued: a silent reviewer holds the case forever',
    (m) => drop(m, 'claimed', 'timer.lease', 0),
  ),
  hand(
    'case-no-manual-escalation',
    'case',
    'drop queued --escalate--> queued: a queued case cannot be escalated by hand',
    (m) => drop(m, 'queued', 'escalate', 0),
  ),
  hand(
    'case-modification-approved-as-is',
    'case',
    'invert planWasModified: the second approval of a modified plan reports it approved unchanged',
    (m) => invert(m, 'planWasModified'),
  ),
  hand(
    'case-no-separation-of-duties',
    'case',
    'reviewerMayClaim forgets separation of duties: the requester may claim their own request',
    (m) => {
      const g = guardOf(m, 'reviewerMayClaim');
      return withGuard(m, 'reviewerMayClaim', (args, params) =>
        g({ ...args, context: { ...args.context, requestedBy: null } }, params),
      );
    },
  ),
  hand('case-escalation-keeps-deadlines', 'case', 'escalate moves up a tier but keeps the old deadlines', (m) => {
    const escalate = actionsOf(m).escalate;
    if (!escalate) throw new Error('hand-written mutant out of date: the case machine has no escalate action');
    return m.provide({
      actions: {
        escalate: wrapAction(escalate, (args, result) =>
          result ? { ...result, timers: args.context.timers } : result,
        ),
      },
    } as never) as AnyStateMachine;
  }),
];
