import { and, assign, not, setup } from 'xstate';
import type { CaseInput, CaseHistoryEntry, CaseOutcome, CaseResolution, TierSpec } from '../contracts/review-case.ts';
import type { Reviewer } from '../contracts/reviewer-command.ts';
import type { GateDecision } from '../contracts/gate-decision.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import { initialContext, type Stamped, type TimerEvent, type Timers } from './effects.ts';

export interface Claim {
  reviewer: string;
  at: number;
}

export interface CaseContext {
  caseId: string;
  episodeId: string;
  model: string;
  /** Current tier, 1-based. */
  tier: number;
  tiers: TierSpec[];
  leaseMs: number;
  requestedBy: string | null;
  plan: Plan;
  /** The plan as the agent proposed it, before any modification. */
  proposedPlan: Plan;
  modified: boolean;
  /** Why the plan was modified (kept across a four-eyes tier's two approvals). */
  modificationNote: string | null;
  decision: GateDecision;
  observation: Observation;
  openedAt: number;
  enteredTierAt: number;
  /** Time of the first claim (for MTTA). */
  firstClaimAt: number | null;
  claim: Claim | null;
  /** Distinct approvers so far at the current tier (four-eyes tiers need two). */
  approvals: string[];
  timers: Timers;
  history: CaseHistoryEntry[];
  escalations: number;
  resolution: CaseResolution | null;
}

type WithReviewer = { reviewer: Reviewer; commandId?: string } & Stamped;

export type CaseEvent =
  | ({ type: 'claim' } & WithReviewer)
  | ({ type: 'release'; reason?: string } & WithReviewer)
  | ({ type: 'renew' } & WithReviewer)
  | ({ type: 'approve'; comment?: string } & WithReviewer)
  | ({ type: 'modify'; plan: Plan; comment: string } & WithReviewer)
  | ({ type: 'reject'; reason: string } & WithReviewer)
  | ({ type: 'escalate'; reason: string } & WithReviewer)
  | ({ type: 'timer.ack' } & TimerEvent)
  | ({ type: 'timer.resolve' } & TimerEvent)
  | ({ type: 'timer.lease' } & TimerEvent);

export type CaseOutput = CaseResolution;

/** The tier spec in force. */
export function currentTier(context: Pick<CaseContext, 'tier' | 'tiers'>): TierSpec {
  const spec = context.tiers[context.tier - 1];
  if (!spec) throw new Error(`tier ${context.tier} is not configured`);
  return spec;
}

/**
 * The rules a reviewer command must satisfy, as pure predicates over the case. The machine's guards
 * use them, and the runtime uses {@link explainCaseRejection} to name the one that failed.
 */
export const caseRules = {
  hasTierRole: (c: CaseContext, r: Reviewer) => r.roles.some((role) => currentTier(c).roles.includes(role)),
  notRequester: (c: CaseContext, r: Reviewer) => c.requestedBy === null || c.requestedBy !== r.id,
  notPreviousApprover: (c: CaseContext, r: Reviewer) => !c.approvals.includes(r.id),
  isClaimant: (c: CaseContext, r: Reviewer) => c.claim?.reviewer === r.id,
  hasNextTier: (c: CaseContext) => c.tier < c.tiers.length,
  needsSecondApproval: (c: CaseContext) => currentTier(c).fourEyes && c.approvals.length === 0,
};

function reviewerOf(event: CaseEvent): Reviewer | null {
  return 'reviewer' in event ? event.reviewer : null;
}

function entry(context: CaseContext, at: number, kind: CaseHistoryEntry['kind'], by?: string, note?: string): CaseHistoryEntry[] {
  return [...context.history, { at, kind, tier: context.tier, ...(by ? { by } : {}), ...(note ? { note } : {}) }];
}

function resolve(context: CaseContext, at: number, outcome: CaseOutcome, decidedBy: string[], reason?: string): CaseResolution {
  return { caseId: context.caseId, outcome, plan: context.plan, tier: context.tier, decidedBy, at, ...(reason ? { reason } : {}) };
}

/**
 * A human review case: queued → claimed (a lease) → approved | modified | rejected, escalating to the
 * next tier when the acknowledge or resolve deadline of the current tier passes, and expiring after the
 * last tier. Separation of duties: the requester never claims or decides; a four-eyes tier needs two
 * distinct approvers. Deadlines are absolute times in `context.timers` (see `effects.ts`).
 */
export const reviewCaseMachine = setup({
  types: {
    context: {} as CaseContext,
    events: {} as CaseEvent,
    input: {} as CaseInput,
    output: {} as CaseOutput,
  },
  guards: {
    reviewerMayClaim: ({ context, event }) => {
      const r = reviewerOf(event);
      return !!r && caseRules.hasTierRole(context, r) && caseRules.notRequester(context, r) && caseRules.notPreviousApprover(context, r);
    },
    isClaimant: ({ context, event }) => {
      const r = reviewerOf(event);
      return !!r && caseRules.isClaimant(context, r) && caseRules.hasTierRole(context, r);
    },
    reviewerMayEscalate: ({ context, event }) => {
      const r = reviewerOf(event);
      return !!r && caseRules.hasTierRole(context, r);
    },
    hasNextTier: ({ context }) => caseRules.hasNextTier(context),
    needsSecondApproval: ({ context }) => caseRules.needsSecondApproval(context),
    /** A first approver on a four-eyes tier changed the plan; the second approves the changed plan. */
    planWasModified: ({ context }) => context.modified,
    ackDeadlinePassed: ({ context, event }) => event.type === 'timer.ack' && context.timers.ack === event.dueAt,
    resolveDeadlinePassed: ({ context, event }) => event.type === 'timer.resolve' && context.timers.resolve === event.dueAt,
    leaseExpired: ({ context, event }) => event.type === 'timer.lease' && context.timers.lease === event.dueAt,
  },
  actions: {
    takeClaim: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const { ack: _acknowledged, ...timers } = context.timers;
      return {
        claim: { reviewer: r.id, at: event.at },
        firstClaimAt: context.firstClaimAt ?? event.at,
        timers: { ...timers, lease: event.at + context.leaseMs },
        history: entry(context, event.at, 'claimed', r.id),
      };
    }),
    renewLease: assign(({ context, event }) => ({
      timers: { ...context.timers, lease: event.at + context.leaseMs },
      history: entry(context, event.at, 'renewed', reviewerOf(event)?.id),
    })),
    dropClaim: assign(({ context, event }) => {
      const { lease: _gone, ...timers } = context.timers;
      const kind = event.type === 'timer.lease' ? 'lease-expired' : 'released';
      return { claim: null, timers, history: entry(context, event.at, kind, context.claim?.reviewer, event.type === 'release' ? event.reason : undefined) };
    }),
    recordFirstApproval: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const { lease: _gone, ...timers } = context.timers;
      const modifying = event.type === 'modify';
      return {
        approvals: [...context.approvals, r.id],
        claim: null,
        timers,
        plan: modifying ? event.plan : context.plan,
        modified: context.modified || modifying,
        history: entry(context, event.at, modifying ? 'modified' : 'approved', r.id, modifying ? `first of two approvals: ${event.comment}` : 'first of two approvals'),
        modificationNote: modifying ? event.comment : context.modificationNote,
      };
    }),
    approve: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const approvers = [...context.approvals, r.id];
      const outcome: CaseOutcome = context.modified ? 'modified' : 'approved';
      const history = entry(context, event.at, 'approved', r.id, event.type === 'approve' ? event.comment : undefined);
      return { approvals: approvers, claim: null, timers: {}, history, resolution: resolve(context, event.at, outcome, approvers, context.modificationNote ?? undefined) };
    }),
    applyModification: assign(({ context, event }) => {
      if (event.type !== 'modify') return {};
      const r = reviewerOf(event)!;
      const approvers = [...context.approvals, r.id];
      const next = { ...context, plan: event.plan };
      return {
        plan: event.plan,
        modified: true,
        approvals: approvers,
        claim: null,
        timers: {},
        history: entry(context, event.at, 'modified', r.id, event.comment),
        resolution: resolve(next, event.at, 'modified', approvers, event.comment),
      };
    }),
    reject: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const reason = event.type === 'reject' ? event.reason : undefined;
      return { claim: null, timers: {}, history: entry(context, event.at, 'rejected', r.id, reason), resolution: resolve(context, event.at, 'rejected', [r.id], reason) };
    }),
    escalate: assign(({ context, event }) => {
      const tier = context.tier + 1;
      const spec = context.tiers[tier - 1]!;
      const note =
        event.type === 'escalate' ? event.reason : event.type === 'timer.ack' ? 'acknowledge deadline missed' : 'resolve deadline missed';
      return {
        tier,
        enteredTierAt: event.at,
        claim: null,
        approvals: [],
        escalations: context.escalations + 1,
        timers: { ack: event.at + spec.ackMs, resolve: event.at + spec.resolveMs },
        history: [...entry(context, event.at, 'escalated', reviewerOf(event)?.id, note)],
      };
    }),
    expire: assign(({ context, event }) => {
      const note = event.type === 'timer.ack' ? 'acknowledge deadline of the last tier missed' : 'resolve deadline of the last tier missed';
      return { claim: null, timers: {}, history: entry(context, event.at, 'expired', undefined, note), resolution: resolve(context, event.at, 'expired', [], note) };
    }),
  },
}).createMachine({
  id: 'reviewCase',
  context: ({ input }) => {
    const spec = input.tiers[input.tier - 1];
    if (!spec) throw new Error(`case ${input.caseId}: tier ${input.tier} is not configured`);
    return initialContext({
      caseId: input.caseId,
      episodeId: input.episodeId,
      model: input.model,
      tier: input.tier,
      tiers: input.tiers,
      leaseMs: input.leaseMs,
      requestedBy: input.requestedBy ?? null,
      plan: input.plan,
      proposedPlan: input.plan,
      modified: false,
      modificationNote: null,
      decision: input.decision,
      observation: input.observation,
      openedAt: input.openedAt,
      enteredTierAt: input.openedAt,
      firstClaimAt: null,
      claim: null,
      approvals: [],
      timers: { ack: input.openedAt + spec.ackMs, resolve: input.openedAt + spec.resolveMs },
      history: [{ at: input.openedAt, kind: 'opened', tier: input.tier, note: input.decision.reasons.join('; ') }],
      escalations: 0,
      resolution: null,
    });
  },
  initial: 'queued',
  on: {
    'timer.resolve': [
      { guard: and(['resolveDeadlinePassed', 'hasNextTier']), target: '.queued', actions: 'escalate' },
      { guard: 'resolveDeadlinePassed', target: '.expired', actions: 'expire' },
    ],
  },
  states: {
    queued: {
      on: {
        claim: { guard: 'reviewerMayClaim', target: 'claimed', actions: 'takeClaim' },
        'timer.ack': [
          { guard: and(['ackDeadlinePassed', 'hasNextTier']), target: 'queued', reenter: true, actions: 'escalate' },
          { guard: 'ackDeadlinePassed', target: 'expired', actions: 'expire' },
        ],
        escalate: { guard: and(['reviewerMayEscalate', 'hasNextTier']), target: 'queued', reenter: true, actions: 'escalate' },
      },
    },
    claimed: {
      on: {
        release: { guard: 'isClaimant', target: 'queued', actions: 'dropClaim' },
        renew: { guard: 'isClaimant', actions: 'renewLease' },
        'timer.lease': { guard: 'leaseExpired', target: 'queued', actions: 'dropClaim' },
        approve: [
          { guard: and(['isClaimant', 'needsSecondApproval']), target: 'queued', actions: 'recordFirstApproval' },
          { guard: and(['isClaimant', not('needsSecondApproval'), 'planWasModified']), target: 'modified', actions: 'approve' },
          { guard: and(['isClaimant', not('needsSecondApproval')]), target: 'approved', actions: 'approve' },
        ],
        modify: [
          { guard: and(['isClaimant', 'needsSecondApproval']), target: 'queued', actions: 'recordFirstApproval' },
          { guard: and(['isClaimant', not('needsSecondApproval')]), target: 'modified', actions: 'applyModification' },
        ],
        reject: { guard: 'isClaimant', target: 'rejected', actions: 'reject' },
        escalate: { guard: and(['isClaimant', 'hasNextTier']), target: 'queued', actions: 'escalate' },
      },
    },
    approved: { type: 'final' },
    modified: { type: 'final' },
    rejected: { type: 'final' },
    expired: { type: 'final' },
  },
  output: ({ context }) => context.resolution ?? resolve(context, context.enteredTierAt, 'expired', [], 'no resolution recorded'),
});

/**
 * Why a command would be refused in this snapshot, as a rule name and a sentence, or null when the
 * machine accepts it. Mirrors the guards so a reviewer sees which rule stopped them.
 */
export function explainCaseRejection(state: string, context: CaseContext, event: CaseEvent): { rule: string; reason: string; forbidden: boolean } | null {
  const r = reviewerOf(event);
  if (!r) return null;
  const tier = currentTier(context);
  if (['approved', 'modified', 'rejected', 'expired'].includes(state)) return { rule: 'case-closed', reason: `the case is already ${state}`, forbidden: false };
  if (!caseRules.hasTierRole(context, r))
    return { rule: 'tier-role', reason: `tier ${context.tier} (${tier.name}) needs one of the roles ${tier.roles.join(', ')}`, forbidden: true };
  if (event.type === 'claim') {
    if (state !== 'queued') return { rule: 'already-claimed', reason: `the case is claimed by ${context.claim?.reviewer ?? 'someone'}`, forbidden: false };
    if (!caseRules.notRequester(context, r)) return { rule: 'separation-of-duties', reason: 'the requester of an action never reviews it', forbidden: true };
    if (!caseRules.notPreviousApprover(context, r)) return { rule: 'four-eyes', reason: 'a four-eyes tier needs a second, different approver', forbidden: true };
    return null;
  }
  if (event.type === 'escalate') {
    if (!caseRules.hasNextTier(context)) return { rule: 'last-tier', reason: 'the case is at its last tier', forbidden: false };
    if (state === 'claimed' && !caseRules.isClaimant(context, r)) return { rule: 'not-claimant', reason: `only the claimant (${context.claim?.reviewer}) may escalate a claimed case`, forbidden: false };
    return null;
  }
  if (event.type.startsWith('timer.')) return null;
  if (state !== 'claimed') return { rule: 'not-claimed', reason: 'claim the case first', forbidden: false };
  if (!caseRules.isClaimant(context, r)) return { rule: 'not-claimant', reason: `the case is claimed by ${context.claim?.reviewer}`, forbidden: false };
  return null;
}

export type ReviewCaseMachine = typeof reviewCaseMachine;
