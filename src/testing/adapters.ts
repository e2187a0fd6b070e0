/**
 * What the path generator (graph.ts) knows about each machine: from a snapshot, the events that can
 * come next (effect results, deadlines, reviewer commands, case resolutions), the commands every kind
 * of principal would be refused with, the abstract state key that keeps the graph finite, and the
 * data-dependent branches (gate branch, tier escalated out of, retries exhausted) a step takes.
 */
import type { AnyMachineSnapshot, AnyStateMachine, EventObject } from 'xstate';
import type { Plan } from '../contracts/plan.ts';
import type { CaseInput, CaseResolution } from '../contracts/review-case.ts';
import type { Reviewer } from '../contracts/reviewer-command.ts';
import { agentMachineFor, type AgentContext } from '../machines/agent.ts';
import { caseRules, explainCaseRejection, reviewCaseMachine, type CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import { classOf, commandPayload, fixtureClassOf, identify, type Fixtures, type PlanClass } from './fixtures.ts';
import { stateName } from './machine-walk.ts';
import { agentFeatures, caseFeatures, planLabel, type Action } from './steps.ts';

export type MachineKind = 'agent' | 'case';

/** The machines the generator traverses; overridable to generate against a modified chart. */
export interface MachineSet {
  agent?: (bindings: Parameters<typeof agentMachineFor>[0]) => AnyStateMachine;
  case?: AnyStateMachine;
}

export type Labeled = EventObject & { qa: Action; [k: string]: unknown };

export interface Refusal {
  action: Action;
  event: Labeled | null;
  code: string;
  rule?: string;
  /** Which kind of principal sends it (claimant, other holder of the role, requester, earlier approver, other tier, no
   * role). */
  who?: string;
}

/** Events an agent may receive twice, late or out of order; a case's deadlines likewise. Each must be ignored. */
export const REDELIVERABLE = {
  agent: [
    'perceive.done',
    'plan.done',
    'action.done',
    'action.failed',
    'compensation.done',
    'compensation.failed',
    'timer.retry',
    'case.opened',
    'case.resolved',
  ],
  case: ['timer.ack', 'timer.resolve', 'timer.lease'],
};
const COMMANDS = ['claim', 'release', 'renew', 'approve', 'modify', 'reject', 'escalate'] as const;

/** What the traversal needs to know about one machine. */
export interface Adapter {
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

export const labelOf = (a: Action) => JSON.stringify(a);

// ------------------------------------------------------------------------------------------------
// Agent
// ------------------------------------------------------------------------------------------------

export function agentAdapter(
  model: LoadedModel,
  fx: Fixtures,
  machines: MachineSet,
  extraPlans: Record<string, Plan> = {},
): Adapter {
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
            out.push({
              type: 'perceive.done',
              effectId: e.id,
              observation: fx.observation,
              at,
              qa: { do: 'perceive', result: 'done' },
            });
            out.push(...failures('perceive.failed', (result) => ({ do: 'perceive', result })));
            break;
          case 'plan':
            for (const [cls, plan] of Object.entries({ ...fx.plans, ...extraPlans }))
              out.push({ type: 'plan.done', effectId: e.id, plan, at, qa: { do: 'plan', result: 'done', plan: cls } });
            out.push(...failures('plan.failed', (result) => ({ do: 'plan', result })));
            break;
          case 'execute':
            out.push({
              type: 'action.done',
              effectId: e.id,
              result: null,
              at,
              qa: { do: 'execute', step: c.step, result: 'done' },
            });
            out.push(...failures('action.failed', (result) => ({ do: 'execute', step: c.step, result })));
            break;
          case 'compensate':
            out.push({
              type: 'compensation.done',
              effectId: e.id,
              at,
              qa: { do: 'compensate', step: c.compensateStep, result: 'done' },
            });
            // An action without a compensation is skipped by the executor: it cannot fail.
            if (compensable(c, c.compensateStep))
              out.push(
                ...failures('compensation.failed', (result) => ({ do: 'compensate', step: c.compensateStep, result })),
              );
            break;
          case 'openCase':
            out.push({
              type: 'case.opened',
              effectId: e.id,
              caseId: e.caseId,
              at,
              qa: e.operator ? { do: 'caseOpened', operator: true } : { do: 'caseOpened' },
            });
            break;
        }
      }
      if (c.timers.retry !== undefined)
        out.push({
          type: 'timer.retry',
          dueAt: c.timers.retry,
          at: c.timers.retry,
          qa: { do: 'timer', timer: 'retry' },
        });
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
        out.push({
          type: 'case.resolved',
          resolution: res('approved'),
          at,
          qa: { do: 'resolve', outcome: 'approved' },
        });
        out.push({
          type: 'case.resolved',
          resolution: res('rejected', { reason: 'rejected by a test reviewer' }),
          at,
          qa: { do: 'resolve', outcome: 'rejected' },
        });
        out.push({
          type: 'case.resolved',
          resolution: res('expired', { tier: tiers.length }),
          at,
          qa: { do: 'resolve', outcome: 'expired' },
        });
        // Reviewers edit arguments of the plan under review; the edited plan is gated again.
        const source = fixtureClassOf(fx, c.plan);
        for (const [cls, plan] of Object.entries(source ? (fx.regated[source] ?? {}) : {}))
          out.push({
            type: 'case.resolved',
            resolution: res('modified', { plan }),
            at,
            qa: { do: 'resolve', outcome: 'modified', plan: cls },
          });
      }
      if (!e && caseId && value === 'awaitingOperator' && c.plan) {
        const res = (outcome: CaseResolution['outcome']): CaseResolution => ({
          caseId,
          outcome,
          plan: c.plan!,
          tier: 1,
          decidedBy: outcome === 'approved' ? ['qa'] : [],
          at,
        });
        out.push({
          type: 'case.resolved',
          resolution: res('approved'),
          at,
          qa: { do: 'resolve', outcome: 'approved', operator: true },
        });
        out.push({
          type: 'case.resolved',
          resolution: res('rejected'),
          at,
          qa: { do: 'resolve', outcome: 'rejected', operator: true },
        });
      }
      return out;
    },
    refusals: () => [],
    key(s, coarse) {
      const c = s.context as AgentContext;
      const value = stateName(s);
      const eff = c.effect ? `${c.effect.kind}${c.effect.operator ? '!' : ''}` : '-';
      if (coarse) {
        const family = c.plan
          ? c.plan.id.endsWith('.fallback')
            ? 'fallback'
            : fixtureClassOf(fx, c.plan) === null
              ? 'modified'
              : 'plan'
          : '-';
        return [value, c.step, c.compensateStep, eff, family, Math.min(c.caseIds.length, 2), c.outcome ?? '-'].join(
          '|',
        );
      }
      const decision = c.decision ? classOf(c.decision) : '-';
      return [
        value,
        c.attempt,
        c.step,
        c.compensateStep,
        eff,
        decision,
        c.approvedTier,
        c.resolution ?? '-',
        Math.min(c.caseIds.length, 3),
        c.timers.retry !== undefined ? 'T' : '-',
        planLabel(c.plan) ?? '-',
        c.outcome ?? '-',
      ].join('|');
    },
    features: (s) => ({ ...agentFeatures(s.context as AgentContext) }),
    branches(prev, event, next) {
      const p = prev.context as AgentContext;
      const n = next.context as AgentContext;
      const out: string[] = [];
      if (n.decision && n.decision !== p.decision)
        out.push(`gate ${classOf(n.decision)}${n.resolution === 'modified' ? ' after a modification' : ''}`);
      if (event.type === 'case.resolved')
        out.push(
          `case ${(event as unknown as { resolution: CaseResolution }).resolution.outcome}` +
            `${stateName(prev) === 'awaitingOperator' ? ' (operator)' : ''}`,
        );
      // The retry budget spent at every step: the last attempt of each effect fails transiently.
      const error = (event as unknown as { error?: { transient?: boolean } }).error;
      if (event.type.endsWith('.failed') && error?.transient && p.effect && p.attempt >= model.config.retry.maxAttempts)
        out.push(
          `retries exhausted at ${p.effect.kind}` +
            (p.effect.kind === 'execute' ? ` step ${p.step}` : '') +
            (p.effect.kind === 'compensate' ? ` step ${p.compensateStep}` : ''),
        );
      return out;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Review case
// ------------------------------------------------------------------------------------------------

export function caseAdapter(model: LoadedModel, fx: Fixtures, machines: MachineSet, starts: PlanClass[]): Adapter {
  const machine = machines.case ?? reviewCaseMachine;
  const tiers = model.config.review.tiers;
  const reviewersOf = (c: CaseContext) => fx.reviewers[c.tier - 1]!;
  const find = (c: CaseContext, id: string): Reviewer => identify(model, fx, c.tier, id);
  const now = (c: CaseContext) => c.history.at(-1)?.at ?? c.openedAt;
  const requester = (c: CaseContext): Reviewer | null =>
    fx.requestedBy ? identify(model, fx, c.tier, fx.requestedBy) : null;
  const cmd = (type: string, r: Reviewer, at: number, extra: Record<string, unknown> = {}): Labeled =>
    ({ type, reviewer: r, at, ...extra, qa: { do: type, by: r.id } }) as Labeled;
  const payload = (type: string, c: CaseContext): Record<string, unknown> =>
    commandPayload(fx, type, classOf(c.decision));
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
        for (const type of ['release', 'renew', 'approve', 'modify', 'reject', 'escalate'])
          out.push(cmd(type, r, t, payload(type, c)));
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
        if (why)
          out.push({
            action: e.qa,
            event: e,
            code: why.forbidden ? 'auth.forbidden' : 'event.rejected',
            rule: why.rule,
            who,
          });
      };
      if (s.status !== 'active') {
        for (const type of COMMANDS)
          out.push({
            action: { do: type, by: allowed[0]!.id },
            event: null,
            code: 'event.rejected',
            rule: 'case-closed',
            who: 'holder of the role',
          });
        return out;
      }
      // Every command by every kind of principal: the claimant (or, unclaimed, the next eligible
      // reviewer), another holder of the role, the requester, an earlier approver, a reviewer of
      // another tier only, and someone with no role. Accepted commands are the paths' own steps.
      const claimant = c.claim
        ? find(c, c.claim.reviewer)
        : allowed.find((r) => !c.approvals.includes(r.id) && caseRules.hasStepRole(c, r));
      const principals: [string, Reviewer | null | undefined][] = [
        [c.claim ? 'claimant' : 'eligible reviewer', claimant],
        [
          'other holder of the role',
          allowed.find((r) => r.id !== claimant?.id && !c.approvals.includes(r.id) && caseRules.hasStepRole(c, r)),
        ],
        [
          'holder of another step',
          allowed.find((r) => r.id !== claimant?.id && !c.approvals.includes(r.id) && !caseRules.hasStepRole(c, r)),
        ],
        ['requester', requester(c)],
        ['earlier approver', c.approvals[0] ? find(c, c.approvals[0]) : null],
        ['other tier', otherTier(c)],
        ['no role', { id: 'qa-norole', roles: ['qa-none'] }],
      ];
      for (const [who, r] of principals)
        if (r) for (const type of COMMANDS) judge(cmd(type, r, t, payload(type, c)), who);
      if (value === 'claimed' && c.claim)
        out.push({
          action: { do: 'modify', by: c.claim.reviewer, invalid: true },
          event: null,
          code: 'contract.invalid',
          who: 'claimant',
        });
      return out;
    },
    key(s, coarse) {
      const c = s.context as CaseContext;
      const order = Object.entries(c.timers)
        .filter((e): e is [string, number] => e[1] !== undefined)
        .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
        .map(([n]) => n)
        .join(',');
      if (coarse)
        return [stateName(s), c.tier, c.approvals.length, c.modified ? 'm' : '-', c.claim ? 'c' : '-'].join('|');
      return [
        stateName(s),
        c.tier,
        c.claim ? 'c' : '-',
        c.approvals.length,
        c.modified ? 'm' : '-',
        order,
        c.resolution?.outcome ?? '-',
      ].join('|');
    },
    features: (s) => ({ ...caseFeatures(s.context as CaseContext) }),
    branches(prev, event, next) {
      const p = prev.context as CaseContext;
      const n = next.context as CaseContext;
      const out: string[] = [];
      if (n.tier > p.tier) out.push(`escalated out of tier ${p.tier} by ${event.type}`);
      if (next.status === 'done' && prev.status !== 'done') out.push(`${n.resolution?.outcome} at tier ${n.tier}`);
      if (event.type === 'claim' && n.approvals.length > 0)
        out.push(`claim for approval ${n.approvals.length + 1} at tier ${n.tier}`);
      if (event.type === 'renew' && (event.qa as { after?: number }).after) out.push('lease renewed partway through');
      if (event.type === 'modify' && (n.edits?.at(-1)?.discardedApprovals?.length ?? 0) > 0)
        out.push(`modification discards earlier approvals at tier ${n.tier}`);
      return out;
    },
  };
}
