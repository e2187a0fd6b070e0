/**
 * Realistic mutants (issue 22, acceptance): bugs a person could plausibly write, in the categories the
 * issue names — timing, thresholds, limits, priorities, permissions per principal, retries, duplicates,
 * ordering, compensation order — each a small change to one guard, action or gate comparison. Unlike
 * the generated mutants of mutants.ts they are not derived from the code's shape; each one is a bug
 * class that survived the generated suites before the oracle (deadlines by value, boundary plans,
 * the principal matrix, redeliveries, exhausted retry budgets).
 *
 * They plug into mutants.ts's module hooks (`Mutant` with `mutate` / `gate`), so the real runtime
 * hosts them. This module must not import the machine or gate modules (they are mocked during a run).
 */
import { assign, type AnyStateMachine } from 'xstate';
import type { Mutant } from './mutants.ts';

export type Category =
  | 'timing'
  | 'thresholds'
  | 'limits'
  | 'priorities'
  | 'permissions'
  | 'retries'
  | 'duplicates'
  | 'ordering'
  | 'compensation order';

export interface RealisticMutant extends Mutant {
  category: Category;
  /** Paths that can observe the mutant at all (default: every path of its machine); the others are skipped. */
  observes?: (steps: readonly { action: { do: string; timer?: string } }[]) => boolean;
}

/** A path that waits out a retry. */
const retries = (steps: readonly { action: { do: string; timer?: string } }[]) =>
  steps.some((s) => s.action.do === 'timer' && s.action.timer === 'retry');

type Args = { context: any; event: any };
type Guard = (args: Args, params?: unknown) => boolean;
type Update = Record<string, any>;

function guard(m: AnyStateMachine, name: string): Guard {
  const g = (m.implementations.guards as Record<string, Guard>)[name];
  if (!g) throw new Error(`no guard ${name}`);
  return g;
}

function withGuard(name: string, fn: (original: Guard) => Guard) {
  return (m: AnyStateMachine) => m.provide({ guards: { [name]: fn(guard(m, name)) } } as never);
}

/** Replaces an `assign` action by one that changes what the original assigns. */
function withAssign(name: string, change: (update: Update, args: Args) => Update) {
  return (m: AnyStateMachine) => {
    const original = (m.implementations.actions as Record<string, { assignment?: unknown }>)[name];
    const assignment = original?.assignment as ((args: Args, params?: unknown) => Update) | undefined;
    if (typeof assignment !== 'function') throw new Error(`action ${name} is not an assign with a function`);
    return m.provide({
      actions: { [name]: assign((args: Args, params: unknown) => change(assignment(args, params), args)) },
    } as never);
  };
}

const reviewer = (e: any) => e?.reviewer as { id: string; roles: string[] } | undefined;
const stepRoles = (c: any): string[] => {
  const tier = c.tiers[c.tier - 1];
  const steps = tier.steps?.length ? tier.steps : tier.fourEyes ? [tier, tier] : [tier];
  return steps[Math.min(c.approvals.length, steps.length - 1)].roles;
};
const holdsStepRole = (c: any, e: any) => !!reviewer(e)?.roles.some((r) => stepRoles(c).includes(r));
const holdsTierRole = (c: any, e: any) => !!reviewer(e)?.roles.some((r) => c.tiers[c.tier - 1].roles.includes(r));

const EPS = 1e-9;
const policyGate =
  (change: (p: any) => any) => (evaluate: (plan: any, o: any, m: any) => any) => (plan: any, o: any, m: any) =>
    evaluate(plan, o, { ...m, policy: change(m.policy) });
const limitGate = (change: (l: any) => any) => policyGate((p) => ({ ...p, limits: p.limits.map(change) }));

const agent = (
  name: string,
  category: Category,
  description: string,
  mutate: (m: AnyStateMachine) => AnyStateMachine,
): RealisticMutant => ({
  name,
  category,
  machine: 'agent',
  kind: 'hand-written',
  target: null,
  description,
  mutate,
});
const kase = (
  name: string,
  category: Category,
  description: string,
  mutate: (m: AnyStateMachine) => AnyStateMachine,
): RealisticMutant => ({
  name,
  category,
  machine: 'case',
  kind: 'hand-written',
  target: null,
  description,
  mutate,
});
const gate = (name: string, category: Category, description: string, g: Mutant['gate']): RealisticMutant => ({
  name,
  category,
  machine: 'gate',
  kind: 'hand-written',
  target: 'gate',
  description,
  gate: g,
});

export const REALISTIC: RealisticMutant[] = [
  // ---- timing ----
  kase(
    'lease off by one ms',
    'timing',
    'the claim lease expires 1 ms after leaseMs',
    withAssign('takeClaim', (u) => ({ ...u, timers: { ...u.timers, lease: u.timers.lease + 1 } })),
  ),
  kase(
    'renewal keeps the first deadline',
    'timing',
    'renew re-arms the lease from the claim time, not from now',
    withAssign('renewLease', (u, { context }) => ({
      ...u,
      timers: { ...u.timers, lease: context.claim.at + context.leaseMs },
    })),
  ),
  kase(
    'escalated resolve deadline doubled',
    'timing',
    "the next tier's resolve deadline is 2 × resolveMs",
    withAssign('escalate', (u, { event }) => ({
      ...u,
      timers: { ...u.timers, resolve: event.at + 2 * (u.timers.resolve - event.at) },
    })),
  ),
  kase(
    "escalation keeps the old tier's ackMs",
    'timing',
    "the next tier's acknowledge deadline uses the previous tier's ackMs",
    withAssign('escalate', (u, { context, event }) => ({
      ...u,
      timers: { ...u.timers, ack: event.at + context.tiers[context.tier - 1].ackMs },
    })),
  ),
  kase(
    'ack deadline off by one ms after escalation',
    'timing',
    'ack = entered + ackMs − 1',
    withAssign('escalate', (u) => ({ ...u, timers: { ...u.timers, ack: u.timers.ack - 1 } })),
  ),
  {
    ...agent(
      'retry backoff constant',
      'timing',
      'every retry waits backoffMs (no exponential growth)',
      withAssign('armRetry', (u, { context, event }) => ({
        ...u,
        timers: { ...u.timers, retry: event.at + context.retry.backoffMs },
      })),
    ),
    observes: retries,
  },
  {
    ...agent(
      'retry backoff exponent off by one',
      'timing',
      'the n-th retry waits backoffMs · 2^n',
      withAssign('armRetry', (u, { context, event }) => ({
        ...u,
        timers: {
          ...u.timers,
          retry: event.at + Math.min(context.retry.maxBackoffMs, context.retry.backoffMs * 2 ** context.attempt),
        },
      })),
    ),
    observes: retries,
  },
  {
    ...agent(
      'retry backoff cap ignored',
      'timing',
      'maxBackoffMs is not applied',
      withAssign('armRetry', (u, { context, event }) => ({
        ...u,
        timers: { ...u.timers, retry: event.at + context.retry.backoffMs * 2 ** (context.attempt - 1) },
      })),
    ),
    observes: retries,
  },
  // ---- thresholds ----
  gate(
    'auto confidence compared with <=',
    'thresholds',
    'a plan exactly at minAutoConfidence goes to review',
    policyGate((p) => ({ ...p, minAutoConfidence: p.minAutoConfidence + EPS })),
  ),
  gate(
    'auto risk compared with >=',
    'thresholds',
    'a plan exactly at maxAutoRisk goes to review',
    policyGate((p) => ({ ...p, maxAutoRisk: p.maxAutoRisk - EPS })),
  ),
  gate(
    'tier risk bound compared with <',
    'thresholds',
    'risk exactly at a tier bound goes to the next tier',
    policyGate((p) => ({
      ...p,
      tierRiskBounds: p.tierRiskBounds.map((b: number, i: number) => (i < p.tierRiskBounds.length - 1 ? b - EPS : b)),
    })),
  ),
  gate(
    'low-confidence tier-2 threshold moved by 0.0005',
    'thresholds',
    'lowConfidenceTier2Below + 0.0005',
    policyGate((p) => ({
      ...p,
      ...(p.lowConfidenceTier2Below !== undefined
        ? { lowConfidenceTier2Below: p.lowConfidenceTier2Below + 0.0005 }
        : {}),
    })),
  ),
  gate(
    'risk ceiling compared with >=',
    'thresholds',
    'a plan exactly at denyAboveRisk is denied',
    policyGate((p) => ({ ...p, denyAboveRisk: p.denyAboveRisk - EPS })),
  ),
  // ---- limits ----
  gate(
    'review limit ignored',
    'limits',
    'reviewAbove is never checked',
    limitGate((l) => ({ ...l, reviewAbove: undefined })),
  ),
  gate(
    'hard limit compared with >=',
    'limits',
    'a value exactly at denyAbove is denied',
    limitGate((l) => ({ ...l, ...(l.denyAbove !== undefined ? { denyAbove: l.denyAbove - EPS } : {}) })),
  ),
  gate(
    'review limit asks one tier too low',
    'limits',
    'reviewTier − 1',
    limitGate((l) => ({ ...l, reviewTier: Math.max(1, l.reviewTier - 1) })),
  ),
  gate(
    'review limit compared with >=',
    'limits',
    'a value exactly at reviewAbove goes to review',
    limitGate((l) => ({ ...l, ...(l.reviewAbove !== undefined ? { reviewAbove: l.reviewAbove - EPS } : {}) })),
  ),
  // ---- priorities ----
  kase(
    'escalation priority not raised',
    'priorities',
    "the escalated case keeps the previous tier's priority",
    withAssign('escalate', (u, { context }) => ({
      ...u,
      tiers: context.tiers.map((t: any, i: number) =>
        i === context.tier ? { ...t, priority: context.tiers[context.tier - 1].priority } : t,
      ),
    })),
  ),
  kase(
    'priority not raised on a missed acknowledge deadline',
    'priorities',
    'an escalation by timer.ack keeps the old priority (escalating by hand raises it)',
    withAssign('escalate', (u, { context, event }) =>
      event.type === 'timer.ack'
        ? {
            ...u,
            tiers: context.tiers.map((t: any, i: number) =>
              i === context.tier ? { ...t, priority: context.tiers[context.tier - 1].priority } : t,
            ),
          }
        : u,
    ),
  ),
  // ---- permissions per principal ----
  kase(
    'a non-claimant may reject',
    'permissions',
    'reject checks the role, not the claim',
    withGuard('isClaimant', (g) => (a, p) => (a.event.type === 'reject' ? holdsStepRole(a.context, a.event) : g(a, p))),
  ),
  kase(
    'a non-claimant may renew',
    'permissions',
    "renew extends anyone's lease",
    withGuard('isClaimant', (g) => (a, p) => (a.event.type === 'renew' ? holdsStepRole(a.context, a.event) : g(a, p))),
  ),
  kase(
    'the requester may claim',
    'permissions',
    'separation of duties forgotten at claim',
    withGuard(
      'reviewerMayClaim',
      () => (a) => holdsStepRole(a.context, a.event) && !a.context.approvals.includes(reviewer(a.event)?.id),
    ),
  ),
  kase(
    'an earlier approver may claim again',
    'permissions',
    'four eyes forgotten: the first approver takes the second approval',
    withGuard(
      'reviewerMayClaim',
      () => (a) => holdsStepRole(a.context, a.event) && a.context.requestedBy !== reviewer(a.event)?.id,
    ),
  ),
  kase(
    'anyone may escalate',
    'permissions',
    'escalate checks separation of duties but not the tier role',
    withGuard(
      'reviewerMayEscalate',
      () => (a) => !!reviewer(a.event) && a.context.requestedBy !== reviewer(a.event)?.id,
    ),
  ),
  kase(
    'the requester may escalate',
    'permissions',
    'escalate checks the tier role only',
    withGuard('reviewerMayEscalate', () => (a) => holdsTierRole(a.context, a.event)),
  ),
  kase(
    'a holder of a later step may claim first',
    'permissions',
    'claim checks the tier role, not the step role',
    withGuard(
      'reviewerMayClaim',
      (g) => (a, p) =>
        g(a, p) ||
        (holdsTierRole(a.context, a.event) &&
          a.context.requestedBy !== reviewer(a.event)?.id &&
          !a.context.approvals.includes(reviewer(a.event)?.id)),
    ),
  ),
  // ---- retries ----
  agent(
    'retry budget one too many',
    'retries',
    'attempt ≤ maxAttempts retries once more',
    withGuard(
      'transientWithAttemptsLeft',
      () =>
        ({ context, event }) =>
          !!event.error?.transient && context.attempt <= context.retry.maxAttempts,
    ),
  ),
  agent(
    'retry budget one too few',
    'retries',
    'attempt + 1 < maxAttempts',
    withGuard(
      'transientWithAttemptsLeft',
      () =>
        ({ context, event }) =>
          !!event.error?.transient && context.attempt + 1 < context.retry.maxAttempts,
    ),
  ),
  agent(
    'permanent failures retried',
    'retries',
    'the transient flag is not checked',
    withGuard(
      'transientWithAttemptsLeft',
      () =>
        ({ context }) =>
          context.attempt < context.retry.maxAttempts,
    ),
  ),
  // ---- duplicates ----
  agent(
    'a duplicate effect result is taken',
    'duplicates',
    'effectIsCurrent only checks that an effect is pending',
    withGuard(
      'effectIsCurrent',
      () =>
        ({ context, event }) =>
          'effectId' in event && !!context.effect,
    ),
  ),
  agent(
    "any of the episode's case resolutions is taken",
    'duplicates',
    'caseIsCurrent accepts an earlier case of the episode',
    withGuard(
      'caseIsCurrent',
      () =>
        ({ context, event }) =>
          event.type === 'case.resolved' && String(event.resolution.caseId).startsWith(`${context.episodeId}.`),
    ),
  ),
  agent(
    'a retry timer fires twice',
    'duplicates',
    'retryTimerIsCurrent ignores dueAt',
    withGuard(
      'retryTimerIsCurrent',
      () =>
        ({ context, event }) =>
          event.type === 'timer.retry' && context.timers.retry !== undefined,
    ),
  ),
  // ---- ordering ----
  kase(
    'a stale lease timer is taken after a renewal',
    'ordering',
    'leaseExpired ignores dueAt',
    withGuard(
      'leaseExpired',
      () =>
        ({ context, event }) =>
          event.type === 'timer.lease' && context.timers.lease !== undefined,
    ),
  ),
  kase(
    'a stale acknowledge timer is taken after an escalation',
    'ordering',
    'ackDeadlinePassed ignores dueAt',
    withGuard(
      'ackDeadlinePassed',
      () =>
        ({ context, event }) =>
          event.type === 'timer.ack' && context.timers.ack !== undefined,
    ),
  ),
  kase(
    'a stale resolve timer is taken',
    'ordering',
    'resolveDeadlinePassed ignores dueAt',
    withGuard(
      'resolveDeadlinePassed',
      () =>
        ({ context, event }) =>
          event.type === 'timer.resolve' && context.timers.resolve !== undefined,
    ),
  ),
  // ---- compensation order ----
  agent(
    'compensation skips the last completed step',
    'compensation order',
    'compensation starts at step − 2',
    withAssign('recordFailure', (u, { context, event }) =>
      event.type === 'action.failed' ? { ...u, compensateStep: context.step - 2 } : u,
    ),
  ),
  agent(
    'compensation undoes the failed step too',
    'compensation order',
    'compensation starts at the step that failed',
    withAssign('recordFailure', (u, { context, event }) =>
      event.type === 'action.failed' ? { ...u, compensateStep: context.step } : u,
    ),
  ),
  agent('compensations run oldest first', 'compensation order', 'the saga undoes step 0 first, then forward', (m) =>
    withGuard(
      'moreToCompensate',
      () =>
        ({ context }) =>
          context.compensateStep + 1 < context.step,
    )(
      withAssign('stepCompensated', (u, { context }) => ({ ...u, compensateStep: context.compensateStep + 1 }))(
        withAssign('recordFailure', (u, { event }) =>
          event.type === 'action.failed' ? { ...u, compensateStep: 0 } : u,
        )(m),
      ),
    ),
  ),
  agent(
    'compensation stops before step 0',
    'compensation order',
    'moreToCompensate: compensateStep > 1',
    withGuard(
      'moreToCompensate',
      () =>
        ({ context }) =>
          context.compensateStep > 1,
    ),
  ),
];
