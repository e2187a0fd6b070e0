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
import type { AnyMachineSnapshot, AnyStateMachine, EventObject } from 'xstate';
import { getAdjacencyMap, getShortestPaths, getSimplePaths } from 'xstate/graph';
import type { Plan } from '../contracts/plan.ts';
import type { CaseInput, CaseResolution } from '../contracts/review-case.ts';
import type { Reviewer } from '../contracts/reviewer-command.ts';
import { agentMachineFor, type AgentContext } from '../machines/agent.ts';
import { caseRules, explainCaseRejection, reviewCaseMachine, type CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import { classOf, commandPayload, fixtureClassOf, identify, type Fixtures, type PlanClass } from './fixtures.ts';
import { declaredStates, declaredTransitions, stateName, TransitionRecorder, type StepTrace } from './machine-walk.ts';
import { AgentOracle, CaseOracle, expiryMs } from './oracle.ts';
import { agentFeatures, caseFeatures, describeAction, planLabel, type Action, type Expectation } from './steps.ts';

export type PathMode = 'shortest' | 'simple';
export type MachineKind = 'agent' | 'case';

/** The machines the generator traverses; overridable to generate against a modified chart. */
export interface MachineSet {
  agent?: (bindings: Parameters<typeof agentMachineFor>[0]) => AnyStateMachine;
  case?: AnyStateMachine;
}

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

type Labeled = EventObject & { qa: Action; [k: string]: unknown };

interface Refusal {
  action: Action;
  event: Labeled | null;
  code: string;
  rule?: string;
  /** Which kind of principal sends it (claimant, other holder of the role, requester, earlier approver, other tier, no role). */
  who?: string;
}

/** Events an agent may receive twice, late or out of order; a case's deadlines likewise. Each must be ignored. */
const REDELIVERABLE = {
  agent: ['perceive.done', 'plan.done', 'action.done', 'action.failed', 'compensation.done', 'compensation.failed', 'timer.retry', 'case.opened', 'case.resolved'],
  case: ['timer.ack', 'timer.resolve', 'timer.lease'],
};
const COMMANDS = ['claim', 'release', 'renew', 'approve', 'modify', 'reject', 'escalate'] as const;

/** What the traversal needs to know about one machine. */
interface Adapter {
  kind: MachineKind;
  machine: AnyStateMachine;
  roots: { start?: PlanClass; input: unknown }[];
  events(s: AnyMachineSnapshot): Labeled[];
  refusals(s: AnyMachineSnapshot): Refusal[];
  key(s: AnyMachineSnapshot, coarse: boolean): string;
  features(s: AnyMachineSnapshot): Record<string, unknown>;
  /** Data-dependent branches a step takes (gate branch, tier escalated out of, ...), as goals. */
  branches(prev: AnyMachineSnapshot, event: Labeled, next: AnyMachineSnapshot): string[];
}

const FAILURE = {
  transient: { message: 'injected transient failure (model-based test)', code: 'test.transient', transient: true },
  permanent: { message: 'injected permanent failure (model-based test)', code: 'test.permanent', transient: false },
};

const labelOf = (a: Action) => JSON.stringify(a);

// ------------------------------------------------------------------------------------------------
// Agent
// ------------------------------------------------------------------------------------------------

function agentAdapter(model: LoadedModel, fx: Fixtures, machines: MachineSet, extraPlans: Record<string, Plan> = {}): Adapter {
  const bindings = { gate: model.gate, onExpiry: model.config.policy.onExpiry };
  const machine = machines.agent ? machines.agent(bindings) : agentMachineFor(bindings);
  const tiers = model.config.review.tiers;
  const compensable = (c: AgentContext, step: number) => {
    const a = c.plan?.actions[step];
    return !!(a && model.config.actions[a.type]?.compensation);
  };
  const at = fx.t0;
  return {
    kind: 'agent',
    machine,
    roots: [{ input: { episodeId: fx.episodeId, model: model.name, signal: fx.signal, retry: model.config.retry } }],
    events(s) {
      if (s.status !== 'active') return [];
      const c = s.context as AgentContext;
      const out: Labeled[] = [];
      const e = c.effect;
      const failures = (type: string, qa: (r: 'transient' | 'permanent') => Action) =>
        (['transient', 'permanent'] as const).map((r) => ({ type, effectId: e!.id, error: FAILURE[r], at, qa: qa(r) }));
      if (e) {
        switch (e.kind) {
          case 'perceive':
            out.push({ type: 'perceive.done', effectId: e.id, observation: fx.observation, at, qa: { do: 'perceive', result: 'done' } });
            out.push(...failures('perceive.failed', (result) => ({ do: 'perceive', result })));
            break;
          case 'plan':
            for (const [cls, plan] of Object.entries({ ...fx.plans, ...extraPlans })) out.push({ type: 'plan.done', effectId: e.id, plan, at, qa: { do: 'plan', result: 'done', plan: cls } });
            out.push(...failures('plan.failed', (result) => ({ do: 'plan', result })));
            break;
          case 'execute':
            out.push({ type: 'action.done', effectId: e.id, result: null, at, qa: { do: 'execute', step: c.step, result: 'done' } });
            out.push(...failures('action.failed', (result) => ({ do: 'execute', step: c.step, result })));
            break;
          case 'compensate':
            out.push({ type: 'compensation.done', effectId: e.id, at, qa: { do: 'compensate', step: c.compensateStep, result: 'done' } });
            // An action without a compensation is skipped by the executor: it cannot fail.
            if (compensable(c, c.compensateStep)) out.push(...failures('compensation.failed', (result) => ({ do: 'compensate', step: c.compensateStep, result })));
            break;
          case 'openCase':
            out.push({ type: 'case.opened', effectId: e.id, caseId: e.caseId, at, qa: e.operator ? { do: 'caseOpened', operator: true } : { do: 'caseOpened' } });
            break;
        }
      }
      if (c.timers.retry !== undefined) out.push({ type: 'timer.retry', dueAt: c.timers.retry, at: c.timers.retry, qa: { do: 'timer', timer: 'retry' } });
      const value = stateName(s);
      const caseId = c.caseIds.at(-1);
      if (!e && caseId && value === 'awaitingReview' && c.plan) {
        const tier = Math.max(1, c.decision?.tier ?? 1);
        const res = (outcome: CaseResolution['outcome'], extra: Partial<CaseResolution> = {}): CaseResolution => ({
          caseId,
          outcome,
          plan: c.plan!,
          tier,
          decidedBy: outcome === 'expired' ? [] : ['qa'],
          at,
          ...extra,
        });
        out.push({ type: 'case.resolved', resolution: res('approved'), at, qa: { do: 'resolve', outcome: 'approved' } });
        out.push({ type: 'case.resolved', resolution: res('rejected', { reason: 'rejected by a test reviewer' }), at, qa: { do: 'resolve', outcome: 'rejected' } });
        out.push({ type: 'case.resolved', resolution: res('expired', { tier: tiers.length }), at, qa: { do: 'resolve', outcome: 'expired' } });
        // Reviewers edit arguments of the plan under review; the edited plan is gated again.
        const source = fixtureClassOf(fx, c.plan);
        for (const [cls, plan] of Object.entries(source ? (fx.regated[source] ?? {}) : {}))
          out.push({ type: 'case.resolved', resolution: res('modified', { plan }), at, qa: { do: 'resolve', outcome: 'modified', plan: cls } });
      }
      if (!e && caseId && value === 'awaitingOperator' && c.plan) {
        const res = (outcome: CaseResolution['outcome']): CaseResolution => ({ caseId, outcome, plan: c.plan!, tier: 1, decidedBy: outcome === 'approved' ? ['qa'] : [], at });
        out.push({ type: 'case.resolved', resolution: res('approved'), at, qa: { do: 'resolve', outcome: 'approved', operator: true } });
        out.push({ type: 'case.resolved', resolution: res('rejected'), at, qa: { do: 'resolve', outcome: 'rejected', operator: true } });
      }
      return out;
    },
    refusals: () => [],
    key(s, coarse) {
      const c = s.context as AgentContext;
      const value = stateName(s);
      const eff = c.effect ? `${c.effect.kind}${c.effect.operator ? '!' : ''}` : '-';
      if (coarse) {
        const family = c.plan ? (c.plan.id.endsWith('.fallback') ? 'fallback' : fixtureClassOf(fx, c.plan) === null ? 'modified' : 'plan') : '-';
        return [value, c.step, c.compensateStep, eff, family, Math.min(c.caseIds.length, 2), c.outcome ?? '-'].join('|');
      }
      const decision = c.decision ? classOf(c.decision) : '-';
      return [value, c.attempt, c.step, c.compensateStep, eff, decision, c.approvedTier, c.resolution ?? '-', Math.min(c.caseIds.length, 3), c.timers.retry !== undefined ? 'T' : '-', planLabel(c.plan) ?? '-', c.outcome ?? '-'].join('|');
    },
    features: (s) => ({ ...agentFeatures(s.context as AgentContext) }),
    branches(prev, event, next) {
      const p = prev.context as AgentContext;
      const n = next.context as AgentContext;
      const out: string[] = [];
      if (n.decision && n.decision !== p.decision) out.push(`gate ${classOf(n.decision)}${n.resolution === 'modified' ? ' after a modification' : ''}`);
      if (event.type === 'case.resolved') out.push(`case ${(event as unknown as { resolution: CaseResolution }).resolution.outcome}${stateName(prev) === 'awaitingOperator' ? ' (operator)' : ''}`);
      // The retry budget spent at every step: the last attempt of each effect fails transiently.
      const error = (event as unknown as { error?: { transient?: boolean } }).error;
      if (event.type.endsWith('.failed') && error?.transient && p.effect && p.attempt >= model.config.retry.maxAttempts)
        out.push(`retries exhausted at ${p.effect.kind}${p.effect.kind === 'execute' ? ` step ${p.step}` : p.effect.kind === 'compensate' ? ` step ${p.compensateStep}` : ''}`);
      return out;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Review case
// ------------------------------------------------------------------------------------------------

function caseAdapter(model: LoadedModel, fx: Fixtures, machines: MachineSet, starts: PlanClass[]): Adapter {
  const machine = machines.case ?? reviewCaseMachine;
  const tiers = model.config.review.tiers;
  const reviewersOf = (c: CaseContext) => fx.reviewers[c.tier - 1]!;
  const find = (c: CaseContext, id: string): Reviewer => identify(model, fx, c.tier, id);
  const now = (c: CaseContext) => c.history.at(-1)?.at ?? c.openedAt;
  const requester = (c: CaseContext): Reviewer | null => (fx.requestedBy ? identify(model, fx, c.tier, fx.requestedBy) : null);
  const cmd = (type: string, r: Reviewer, at: number, extra: Record<string, unknown> = {}): Labeled => ({ type, reviewer: r, at, ...extra, qa: { do: type, by: r.id } }) as Labeled;
  const payload = (type: string, c: CaseContext): Record<string, unknown> => commandPayload(fx, type, classOf(c.decision));
  /** A reviewer holding only a role of another tier (none of this tier's). */
  const otherTier = (c: CaseContext): Reviewer | null => {
    const mine = tiers[c.tier - 1]!.roles;
    const role = tiers.flatMap((t) => t.roles).find((x) => !mine.includes(x));
    return role ? identify(model, fx, c.tier, `qa-only-${role}`) : null;
  };

  return {
    kind: 'case',
    machine,
    roots: starts.map((start) => {
      const plan = fx.plans[start]!;
      const decision = model.gate(plan, fx.observation);
      const input: CaseInput = {
        caseId: `${fx.episodeId}.case-1`,
        episodeId: fx.episodeId,
        model: model.name,
        tier: Math.max(1, decision.tier),
        tiers,
        leaseMs: model.config.review.leaseMs,
        ...(fx.requestedBy ? { requestedBy: fx.requestedBy } : {}),
        plan,
        decision,
        observation: fx.observation,
        openedAt: fx.t0,
      };
      return { start, input };
    }),
    events(s) {
      if (s.status !== 'active') return [];
      const c = s.context as CaseContext;
      const t = now(c);
      const out: Labeled[] = [];
      const value = stateName(s);
      if (value === 'queued') {
        const claimant = reviewersOf(c).allowed.find((r) => !c.approvals.includes(r.id) && caseRules.hasStepRole(c, r));
        if (claimant) {
          out.push(cmd('claim', claimant, t));
          out.push(cmd('escalate', claimant, t, payload('escalate', c)));
        }
      } else if (value === 'claimed' && c.claim) {
        const r = find(c, c.claim.reviewer);
        for (const type of ['release', 'renew', 'approve', 'modify', 'reject', 'escalate']) out.push(cmd(type, r, t, payload(type, c)));
        // A renewal some time into the lease (half of it, before any other deadline): the new lease
        // counts from the renewal, which a renewal at the claim's own instant cannot show.
        const next = Math.min(...Object.values(c.timers).filter((d): d is number => d !== undefined));
        const wait = Math.floor(Math.min(model.config.review.leaseMs, next - t) / 2000) * 1000;
        if (wait > 0) out.push({ ...cmd('renew', r, t + wait), qa: { do: 'renew', by: r.id, after: wait } } as Labeled);
      }
      // Only the earliest deadline can fire next: the clock reaches it first.
      const due = Object.entries(c.timers)
        .filter((e): e is [string, number] => e[1] !== undefined)
        .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0];
      if (due) out.push({ type: `timer.${due[0]}`, dueAt: due[1], at: due[1], qa: { do: 'timer', timer: due[0] } });
      return out;
    },
    refusals(s) {
      const c = s.context as CaseContext;
      const t = now(c);
      const value = stateName(s);
      const allowed = reviewersOf(c).allowed;
      const out: Refusal[] = [];
      const judge = (e: Labeled, who: string) => {
        if ((s as AnyMachineSnapshot).can(e)) return;
        const why = explainCaseRejection(value, c, e as never);
        if (why) out.push({ action: e.qa, event: e, code: why.forbidden ? 'auth.forbidden' : 'event.rejected', rule: why.rule, who });
      };
      if (s.status !== 'active') {
        for (const type of COMMANDS) out.push({ action: { do: type, by: allowed[0]!.id }, event: null, code: 'event.rejected', rule: 'case-closed', who: 'holder of the role' });
        return out;
      }
      // Every command by every kind of principal: the claimant (or, unclaimed, the next eligible
      // reviewer), another holder of the role, the requester, an earlier approver, a reviewer of
      // another tier only, and someone with no role. Accepted commands are the paths' own steps.
      const claimant = c.claim ? find(c, c.claim.reviewer) : allowed.find((r) => !c.approvals.includes(r.id) && caseRules.hasStepRole(c, r));
      const principals: [string, Reviewer | null | undefined][] = [
        [c.claim ? 'claimant' : 'eligible reviewer', claimant],
        ['other holder of the role', allowed.find((r) => r.id !== claimant?.id && !c.approvals.includes(r.id) && caseRules.hasStepRole(c, r))],
        ['holder of another step', allowed.find((r) => r.id !== claimant?.id && !c.approvals.includes(r.id) && !caseRules.hasStepRole(c, r))],
        ['requester', requester(c)],
        ['earlier approver', c.approvals[0] ? find(c, c.approvals[0]) : null],
        ['other tier', otherTier(c)],
        ['no role', { id: 'qa-norole', roles: ['qa-none'] }],
      ];
      for (const [who, r] of principals) if (r) for (const type of COMMANDS) judge(cmd(type, r, t, payload(type, c)), who);
      if (value === 'claimed' && c.claim) out.push({ action: { do: 'modify', by: c.claim.reviewer, invalid: true }, event: null, code: 'contract.invalid', who: 'claimant' });
      return out;
    },
    key(s, coarse) {
      const c = s.context as CaseContext;
      const order = Object.entries(c.timers)
        .filter((e): e is [string, number] => e[1] !== undefined)
        .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
        .map(([n]) => n)
        .join(',');
      if (coarse) return [stateName(s), c.tier, c.approvals.length, c.modified ? 'm' : '-', c.claim ? 'c' : '-'].join('|');
      return [stateName(s), c.tier, c.claim ? 'c' : '-', c.approvals.length, c.modified ? 'm' : '-', order, c.resolution?.outcome ?? '-'].join('|');
    },
    features: (s) => ({ ...caseFeatures(s.context as CaseContext) }),
    branches(prev, event, next) {
      const p = prev.context as CaseContext;
      const n = next.context as CaseContext;
      const out: string[] = [];
      if (n.tier > p.tier) out.push(`escalated out of tier ${p.tier} by ${event.type}`);
      if (next.status === 'done' && prev.status !== 'done') out.push(`${n.resolution?.outcome} at tier ${n.tier}`);
      if (event.type === 'claim' && n.approvals.length > 0) out.push(`claim for approval ${n.approvals.length + 1} at tier ${n.tier}`);
      if (event.type === 'renew' && (event.qa as { after?: number }).after) out.push('lease renewed partway through');
      if (event.type === 'modify' && (n.edits?.at(-1)?.discardedApprovals?.length ?? 0) > 0) out.push(`modification discards earlier approvals at tier ${n.tier}`);
      return out;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Traversal, selection, replay
// ------------------------------------------------------------------------------------------------

interface Replayed {
  start?: PlanClass;
  labels: Action[];
  snapshots: AnyMachineSnapshot[];
  events: Labeled[];
  traces: StepTrace[];
  items: Set<string>;
  final: boolean;
}

function replay(adapter: Adapter, root: Adapter['roots'][number], labels: Action[], recorder: TransitionRecorder): Replayed | null {
  const { snapshot: first, trace: init } = recorder.initial(adapter.machine, root.input);
  let snap = first;
  const snapshots = [snap];
  const events: Labeled[] = [];
  const traces: StepTrace[] = [];
  const items = new Set<string>(init.states.map((s) => `S:${s}`));
  if (root.start) items.add(`B:case opened at ${root.start}`);
  for (const label of labels) {
    const want = labelOf(label);
    const event = adapter.events(snap).find((e) => labelOf(e.qa) === want);
    if (!event || !snap.can(event)) return null;
    const { next, trace } = recorder.step(adapter.machine, snap, event);
    for (const s of trace.states) items.add(`S:${s}`);
    for (const t of trace.transitions) items.add(`T:${t}`);
    for (const b of adapter.branches(snap, event, next)) items.add(`B:${b}`);
    snap = next;
    snapshots.push(snap);
    events.push(event);
    traces.push(trace);
  }
  return { ...(root.start ? { start: root.start } : {}), labels, snapshots, events, traces, items, final: snap.status === 'done' };
}

interface Explored {
  root: Adapter['roots'][number];
  initial: AnyMachineSnapshot;
  /** Labels of a shortest path to each abstract state. */
  shortest: Map<string, Action[]>;
  /** For each abstract state, the labels that lead to a final state fastest. */
  toFinal: Map<string, Action[]>;
  edges: { from: string; label: Action; to: string; trace: StepTrace; items: string[] }[];
  reps: Map<string, AnyMachineSnapshot>;
}

function explore(adapter: Adapter, root: Adapter['roots'][number], recorder: TransitionRecorder, reachable: { states: Set<string>; transitions: Set<string> }): Explored {
  const { snapshot: initial, trace: init } = recorder.initial(adapter.machine, root.input);
  for (const s of init.states) reachable.states.add(s);
  const options = {
    fromState: initial,
    serializeState: (s: AnyMachineSnapshot) => adapter.key(s, false),
    serializeEvent: (e: Labeled) => labelOf(e.qa),
    events: (s: AnyMachineSnapshot) => adapter.events(s),
  };
  const adj = getAdjacencyMap(adapter.machine, options as never) as Record<string, { state: AnyMachineSnapshot; transitions: Record<string, { event: Labeled; state: AnyMachineSnapshot }> }>;
  const edges: Explored['edges'] = [];
  const reps = new Map<string, AnyMachineSnapshot>();
  for (const [from, v] of Object.entries(adj)) {
    reps.set(from, v.state);
    for (const t of Object.values(v.transitions)) {
      const { trace } = recorder.step(adapter.machine, v.state, t.event);
      if (trace.transitions.length === 0) continue;
      for (const s of trace.states) reachable.states.add(s);
      for (const x of trace.transitions) reachable.transitions.add(x);
      const items = [...trace.transitions.map((x) => `T:${x}`), ...adapter.branches(v.state, t.event, t.state).map((b) => `B:${b}`)];
      edges.push({ from, label: t.event.qa, to: adapter.key(t.state, false), trace, items });
    }
  }
  const shortest = new Map<string, Action[]>();
  for (const p of getShortestPaths(adapter.machine, options as never)) {
    const labels = p.steps.slice(1).map((s) => (s.event as Labeled).qa);
    shortest.set(adapter.key(p.state as AnyMachineSnapshot, false), labels);
  }
  // Reverse BFS from the final states: the quickest way to finish from anywhere.
  const toFinal = new Map<string, Action[]>();
  const incoming = new Map<string, Explored['edges']>();
  for (const e of edges) incoming.set(e.to, [...(incoming.get(e.to) ?? []), e]);
  const queue: string[] = [];
  for (const [k, s] of reps) if (s.status === 'done') {
    toFinal.set(k, []);
    queue.push(k);
  }
  while (queue.length) {
    const k = queue.shift()!;
    for (const e of incoming.get(k) ?? []) {
      if (toFinal.has(e.from)) continue;
      toFinal.set(e.from, [e.label, ...toFinal.get(k)!]);
      queue.push(e.from);
    }
  }
  return { root, initial, shortest, toFinal, edges, reps };
}

/** Expectations after each step of a replayed path: shape from the machine, values from the oracle. */
function annotate(adapter: Adapter, r: Replayed, model: LoadedModel, fx: Fixtures, problems: string[]): { initial: Expectation; steps: { action: Action; expect: Expectation }[]; states: string[] } {
  const ledger = new Set<string>();
  const feat = (s: AnyMachineSnapshot) => adapter.features(s) as Expectation;
  const t0 = fx.t0;
  const first = r.snapshots[0]!;
  const caseOracle = adapter.kind === 'case' ? new CaseOracle(model.config, (first.context as CaseContext).tier, (first.context as CaseContext).openedAt) : null;
  const agentOracle = adapter.kind === 'agent' ? new AgentOracle(model.config, t0) : null;
  const values = (): Expectation =>
    caseOracle ? { due: caseOracle.due(t0), priority: caseOracle.priority } : { due: agentOracle!.due(t0) };
  const disagree = (what: string) => problems.push(`oracle: ${adapter.kind} path ${r.labels.map((l) => describeAction(l)).join(', ')}: ${what}`);
  const initial: Expectation = {
    state: stateName(first),
    ...feat(first),
    ...values(),
    ...(adapter.kind === 'agent' ? { ledger: [] } : {}),
    audit: adapter.kind === 'case' ? ['case.opened'] : [],
  };
  const steps: { action: Action; expect: Expectation }[] = [];
  const states: string[] = [stateName(first)];
  r.events.forEach((event, i) => {
    const prev = r.snapshots[i]!;
    const next = r.snapshots[i + 1]!;
    const trace = r.traces[i]!;
    const audit: string[] = [];
    if (adapter.kind === 'agent') {
      const pc = prev.context as AgentContext;
      const nc = next.context as AgentContext;
      if (event.type === 'action.done') ledger.add(String(pc.step));
      if (event.type === 'compensation.done') {
        const a = pc.plan?.actions[pc.compensateStep];
        if (a && model.config.actions[a.type]?.compensation) ledger.add(`${pc.compensateStep}/compensate`);
      }
      if (trace.states.includes('gating')) audit.push('gate.decision');
      if (event.type === 'action.done') audit.push('action.executed');
      if (event.type === 'compensation.done') audit.push('action.compensated');
      if (next.status === 'done') audit.push('episode.outcome');
      const error = (event as unknown as { error?: { transient?: boolean } }).error;
      const resolution = (event as unknown as { resolution?: CaseResolution }).resolution;
      // An expiry lets every deadline of the case pass, from the tier it was opened at.
      const clockTo = event.type === 'case.resolved' && resolution?.outcome === 'expired' && stateName(prev) === 'awaitingReview' ? agentOracle!.now + expiryMs(model.config, Math.max(1, pc.decision?.tier ?? 1)) : undefined;
      const { retry } = agentOracle!.step(event.type, { transient: event.type.endsWith('.failed') && !!error?.transient, ...(clockTo !== undefined ? { clockTo } : {}) });
      const armed = nc.timers.retry !== undefined;
      if (retry !== armed) disagree(`after ${describeAction(event.qa)} the machine ${armed ? 'retries' : 'gives up'}; with maxAttempts ${model.config.retry.maxAttempts} it must ${retry ? 'retry' : 'give up'}`);
      else if (armed && nc.timers.retry! - (event.at as number) !== agentOracle!.timers.retry! - agentOracle!.now)
        disagree(`retry armed ${nc.timers.retry! - (event.at as number)} ms after ${describeAction(event.qa)}; the retry policy says ${agentOracle!.timers.retry! - agentOracle!.now} ms`);
    } else {
      const pc = prev.context as CaseContext;
      const nc = next.context as CaseContext;
      const from = pc.history.length;
      for (const h of nc.history.slice(from)) audit.push(`case.${h.kind}`);
      const after = (event.qa as { after?: number }).after;
      if (after) caseOracle!.now += after;
      caseOracle!.step(event.type, stateName(next), next.status === 'done', nc.tier > pc.tier);
      const got = Object.fromEntries(Object.entries(nc.timers).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)));
      if (JSON.stringify(got) !== JSON.stringify(caseOracle!.timers && Object.fromEntries(Object.entries(caseOracle!.timers).sort(([a], [b]) => (a < b ? -1 : 1)))))
        disagree(`after ${describeAction(event.qa)} the case's deadlines are ${JSON.stringify(got)}; model.json gives ${JSON.stringify(caseOracle!.timers)}`);
    }
    for (const s of trace.states) if (states.at(-1) !== s) states.push(s);
    steps.push({
      action: event.qa,
      expect: {
        state: stateName(next),
        event: event.type,
        ...feat(next),
        ...values(),
        ...(adapter.kind === 'agent' ? { ledger: [...ledger].sort() } : {}),
        audit,
      },
    });
  });
  return { initial, steps, states };
}

function choose(candidates: Replayed[], goal: Set<string>): Replayed[] {
  const chosen: Replayed[] = [];
  const left = new Set(goal);
  const pool = [...candidates];
  while (left.size > 0) {
    let best: Replayed | undefined;
    let bestGain = 0;
    for (const c of pool) {
      let gain = 0;
      for (const i of c.items) if (left.has(i)) gain++;
      if (gain > bestGain || (gain === bestGain && gain > 0 && best && (c.labels.length < best.labels.length || (c.labels.length === best.labels.length && JSON.stringify(c.labels) < JSON.stringify(best.labels))))) {
        best = c;
        bestGain = gain;
      }
    }
    if (!best) break;
    chosen.push(best);
    pool.splice(pool.indexOf(best), 1);
    for (const i of best.items) left.delete(i);
  }
  return chosen;
}

/** FNV-1a, hex. */
function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (const ch of text) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function percent(covered: number, reachable: number): number {
  return reachable === 0 ? 100 : Math.round((covered / reachable) * 10_000) / 100;
}

function generateFor(adapter: Adapter, model: LoadedModel, fx: Fixtures, mode: PathMode, maxPaths: number, react?: (start: PlanClass, resolution: CaseResolution) => string | null): MachinePaths {
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
  for (const x of explored) for (const [k, labels] of [...x.shortest].sort(([a], [b]) => (a < b ? -1 : 1))) add(x, finish(x, labels, k));
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
  const goal = new Set<string>([...[...reachable.states].map((s) => `S:${s}`), ...[...reachable.transitions].map((t) => `T:${t}`), ...[...items].filter((i) => i.startsWith('B:'))]);
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
    extra.sort((a, b) => a.labels.length - b.labels.length || (JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : 1));
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
    for (const [k, rep] of x.reps) for (const f of adapter.refusals(rep)) {
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
          if (!type.startsWith('timer.')) oracle.push(`oracle: the ${adapter.kind} machine accepts a second '${type}' in state ${stateName(snap)}; it must be ignored`);
          continue;
        }
        redelivered.add(g);
        const at = insertions.get(r) ?? new Map<number, Refusal[]>();
        at.set(i, [...(at.get(i) ?? []), { action: { do: 'redeliver', event: type }, event: null, code: 'event.rejected' }]);
        insertions.set(r, at);
      }
    });

  // Stable order: by start, then length, then labels.
  selected = [...selected].sort(
    (a, b) => (a.start ?? '').localeCompare(b.start ?? '') || a.labels.length - b.labels.length || (JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : JSON.stringify(a.labels) > JSON.stringify(b.labels) ? 1 : 0),
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
  const paths: GeneratedPath[] = selected.map((r, n) => {
    const { initial, steps, states } = annotate(adapter, r, model, fx, oracle);
    const woven: PathStep[] = [];
    const at = insertions.get(r);
    const refusedAt = (i: number) => {
      const snap = r.snapshots[i]!;
      for (const f of at?.get(i) ?? [])
        woven.push({ action: f.action, expect: { state: stateName(snap), refused: { code: f.code, ...(f.rule ? { rule: f.rule } : {}) }, audit: [] } });
    };
    steps.forEach((s, i) => {
      refusedAt(i);
      woven.push(s);
    });
    refusedAt(steps.length);
    const last = r.snapshots.at(-1)!;
    const resolution = adapter.kind === 'case' && last.status === 'done' ? (last.context as CaseContext).resolution : null;
    const agent = resolution && react && r.start ? react(r.start, resolution) : null;
    if (agent) {
      const lastReal = [...woven].reverse().find((w) => !w.expect.refused);
      if (lastReal) lastReal.expect = { ...lastReal.expect, agent };
    }
    const id = ids.get(r)!;
    for (const i of r.items) cover(i.startsWith('T:') ? `transition ${i.slice(2)}` : i.startsWith('S:') ? `state ${i.slice(2)}` : `branch ${i.slice(2)}`, id);
    for (const w of woven) if (w.expect.refused) cover(w.action.do === 'redeliver' ? `redelivery ${w.action.event} in ${w.expect.state}` : `refusal ${w.action.do} ${w.expect.refused.rule ?? w.expect.refused.code} in ${w.expect.state}`, id);
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
    states: { declared: declaredS.length, reachable: reachable.states.size, covered: coveredStates.length, percent: percent(coveredStates.length, reachable.states.size) },
    transitions: { declared: declaredT.length, reachable: reachable.transitions.size, covered: coveredTransitions.length, percent: percent(coveredTransitions.length, reachable.transitions.size) },
    ...(adapter.kind === 'case' ? { refusals: { reachable: refusalGoals.size, covered: refusalsCovered.size } } : {}),
    branches: {
      reachable: [...goal].filter((g) => g.startsWith('B:')).length,
      covered: [...goal].filter((g) => g.startsWith('B:') && covered.has(g)).length,
      names: [...goal].filter((g) => g.startsWith('B:') && covered.has(g)).map((g) => g.slice(2)).sort(),
    },
    unreachableStates,
    unreachableTransitions,
    uncoveredStates: [...reachable.states].filter((s) => !covered.has(`S:${s}`)).sort(),
    uncoveredTransitions: [...reachable.transitions].filter((t) => !covered.has(`T:${t}`)).sort(),
    coveredTransitions,
    tests: Object.fromEntries(Object.entries(coveredBy).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.sort()])),
    paths: paths.length,
    steps: paths.reduce((n, p) => n + p.steps.length, 0),
    abstractStates: explored.reduce((n, x) => n + x.reps.size, 0),
  };
  return { paths, coverage, warnings };
}

/** The state an agent waiting on a case of branch `start` goes to when the case resolves. */
function agentReaction(model: LoadedModel, fx: Fixtures, machines: MachineSet): (start: PlanClass, resolution: CaseResolution) => string | null {
  const adapter = agentAdapter(model, fx, machines);
  const recorder = new TransitionRecorder();
  return (start, resolution) => {
    const r = replay(adapter, adapter.roots[0]!, [{ do: 'perceive', result: 'done' }, { do: 'plan', result: 'done', plan: start }, { do: 'caseOpened' }], recorder);
    if (!r) return null;
    const snap = r.snapshots.at(-1)!;
    const event = { type: 'case.resolved', resolution, at: resolution.at };
    if (!snap.can(event)) return null;
    return stateName(recorder.step(adapter.machine, snap, event).next);
  };
}

/** The gate at every threshold and limit: perceive, then the boundary plan; the branch from the oracle. */
function boundaryPaths(model: LoadedModel, fx: Fixtures, machines: MachineSet): { paths: GeneratedPath[]; problems: string[] } {
  const list = fx.boundaries ?? [];
  const adapter = agentAdapter(model, fx, machines, Object.fromEntries(list.map((b) => [`boundary:${b.id}`, b.plan])));
  const recorder = new TransitionRecorder();
  const problems: string[] = [];
  const paths: GeneratedPath[] = [];
  const stateOf = (cls: string) => (cls === 'auto' ? 'acting' : cls === 'deny' ? 'denied' : 'awaitingReview');
  for (const b of list) {
    const head: Action[] = [{ do: 'perceive', result: 'done' }, { do: 'plan', result: 'done', plan: `boundary:${b.id}` }];
    // A review decision is only visible once the runtime has opened the case (the step after).
    const r = replay(adapter, adapter.roots[0]!, [...head, { do: 'caseOpened' }], recorder) ?? replay(adapter, adapter.roots[0]!, head, recorder);
    if (!r) continue;
    const { initial, steps, states } = annotate(adapter, r, model, fx, problems);
    const decided = steps.find((s) => s.action.do === 'plan')!;
    if (decided.expect.decision !== b.expect) {
      problems.push(`oracle: the gate sends '${b.label}' to ${decided.expect.decision}; model.json's policy says ${b.expect}`);
      for (const s of steps.slice(steps.indexOf(decided))) s.expect = { ...s.expect, decision: b.expect, state: s === decided ? stateOf(b.expect) : s.expect.state };
    }
    paths.push({ id: `B-${b.id}`, machine: 'agent', initial, steps, states, boundary: { label: b.label, expect: b.expect } });
  }
  return { paths, problems };
}

export interface ModelPaths {
  agent: MachinePaths;
  case: MachinePaths;
}

/** Generates covering paths for both machines of a model. */
export function generatePaths(model: LoadedModel, fx: Fixtures, opts: { paths?: PathMode; maxPaths?: number; machines?: MachineSet } = {}): ModelPaths {
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
      ? generateFor(caseAdapter(model, fx, machines, starts), model, fx, mode, maxPaths, agentReaction(model, fx, machines))
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
    warnings: [`review case: no plan of model ${model.name} goes to review, so no review case is ever opened (every state of the review-case machine is unreachable)`],
  };
}

