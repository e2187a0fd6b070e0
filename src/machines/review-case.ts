import { and, assign, setup } from 'xstate';
import type {
  ApprovalStep,
  CaseEdit,
  CaseInput,
  CaseHistoryEntry,
  CaseOutcome,
  CaseResolution,
  TierSpec,
} from '../contracts/review-case.ts';
import type { Reviewer } from '../contracts/reviewer-command.ts';
import type { TraceContext } from '../contracts/envelope.ts';
import type { GateDecision } from '../contracts/gate-decision.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan, PlannedAction } from '../contracts/plan.ts';
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
  /** The plan in force: the planner's, with the arguments reviewers edited (see `edits`). */
  plan: Plan;
  /** The plan as the planner proposed it. Never changed: rationale, confidence and risk stay the planner's. */
  proposedPlan: Plan;
  /** Whether a reviewer of this case edited the arguments (edits of earlier cases are in `edits` too). */
  modified: boolean;
  /** The note of this case's latest edit. */
  modificationNote: string | null;
  /** Every reviewer edit, in order: who, when, at which tier, why, and what changed. */
  edits: CaseEdit[];
  decision: GateDecision;
  observation: Observation;
  openedAt: number;
  enteredTierAt: number;
  /** Time of the first claim (for MTTA). */
  firstClaimAt: number | null;
  claim: Claim | null;
  /**
   * Distinct approvers of the plan in force at the current tier, one per approval step done. An edit
   * or an escalation discards them.
   */
  approvals: string[];
  timers: Timers;
  history: CaseHistoryEntry[];
  escalations: number;
  resolution: CaseResolution | null;
  /** The episode's trace (absent in older snapshots). */
  trace?: TraceContext | null;
}

type WithReviewer = { reviewer: Reviewer; commandId?: string } & Stamped;

export type CaseEvent =
  | ({ type: 'claim' } & WithReviewer)
  | ({ type: 'release'; reason?: string } & WithReviewer)
  | ({ type: 'renew' } & WithReviewer)
  | ({ type: 'approve'; comment?: string } & WithReviewer)
  /**
   * A reviewer's edit: the plan's actions with new arguments (same types, same order), validated and
   * described by the runtime. Everything else in the plan is the planner's and stays as it is.
   */
  | ({ type: 'modify'; actions: PlannedAction[]; comment: string } & WithReviewer)
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
 * The approvals a tier needs, in order. A tier with `steps` needs one approval per step, each by a
 * holder of that step's roles; a four-eyes tier needs two by holders of the tier's roles; any other
 * tier needs one. Approvers are always distinct people.
 */
export function approvalSteps(tier: TierSpec): ApprovalStep[] {
  if (tier.steps && tier.steps.length > 0) return tier.steps;
  const step = { name: tier.name, roles: tier.roles };
  return tier.fourEyes ? [step, step] : [step];
}

/** The approval step the next decision at the current tier is for (0-based), capped at the last. */
export function currentStep(c: Pick<CaseContext, 'tier' | 'tiers' | 'approvals'>): {
  index: number;
  of: number;
  step: ApprovalStep;
} {
  const steps = approvalSteps(currentTier(c));
  const index = Math.min(c.approvals.length, steps.length - 1);
  return { index, of: steps.length, step: steps[index]! };
}

function samePlannerFields(a: Plan, b: Plan): boolean {
  return (
    a.id === b.id &&
    a.planner === b.planner &&
    a.confidence === b.confidence &&
    a.rationale === b.rationale &&
    JSON.stringify(a.risk) === JSON.stringify(b.risk)
  );
}

/**
 * The rules a reviewer command must satisfy, as pure predicates over the case. The machine's guards
 * use them, and the runtime uses {@link explainCaseRejection} to name the one that failed.
 */
export const caseRules = {
  /** Holds a role of the current tier (may see its queue and escalate). */
  hasTierRole: (c: CaseContext, r: Reviewer) => r.roles.some((role) => currentTier(c).roles.includes(role)),
  /** Holds a role of the approval step the case waits for (may claim and decide). */
  hasStepRole: (c: CaseContext, r: Reviewer) => r.roles.some((role) => currentStep(c).step.roles.includes(role)),
  notRequester: (c: CaseContext, r: Reviewer) => c.requestedBy === null || c.requestedBy !== r.id,
  notPreviousApprover: (c: CaseContext, r: Reviewer) => !c.approvals.includes(r.id),
  isClaimant: (c: CaseContext, r: Reviewer) => c.claim?.reviewer === r.id,
  hasNextTier: (c: CaseContext) => c.tier < c.tiers.length,
  /** This approval is not the tier's last: the case goes back to the queue for the next step. */
  needsMoreApprovals: (c: CaseContext) => c.approvals.length + 1 < approvalSteps(currentTier(c)).length,
  /** An edit resolves the case only on a tier that needs one approval; elsewhere it restarts the approvals. */
  editCompletesApprovals: (c: CaseContext) => approvalSteps(currentTier(c)).length === 1,
  /** The edit keeps the plan's actions (types, order) and changes at least one argument. */
  editIsArgumentsOnly: (c: CaseContext, actions: readonly PlannedAction[]) =>
    actions.length === c.plan.actions.length &&
    actions.every((a, i) => a.type === c.plan.actions[i]!.type) &&
    samePlannerFields(c.plan, c.proposedPlan),
  editChangesSomething: (c: CaseContext, actions: readonly PlannedAction[]) =>
    actions.some((a, i) => JSON.stringify(a.args) !== JSON.stringify(c.plan.actions[i]!.args)),
};

/** What an edit changed, leaf by leaf: `actions.0.args.amount: 1500 → 15`. */
export function diffActions(before: readonly PlannedAction[], after: readonly PlannedAction[]): CaseEdit['diff'] {
  const out: CaseEdit['diff'] = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    const plain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
    if (plain(a) && plain(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[k], b[k], `${path}.${k}`);
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      out.push({ path, ...(a === undefined ? {} : { from: a }), ...(b === undefined ? {} : { to: b }) });
    }
  };
  after.forEach((a, i) => walk(before[i]?.args, a.args, `actions.${i}.args`));
  return out;
}

function reviewerOf(event: CaseEvent): Reviewer | null {
  return 'reviewer' in event ? event.reviewer : null;
}

function entry(
  context: CaseContext,
  at: number,
  kind: CaseHistoryEntry['kind'],
  by?: string,
  note?: string,
): CaseHistoryEntry[] {
  return [...context.history, { at, kind, tier: context.tier, ...(by ? { by } : {}), ...(note ? { note } : {}) }];
}

function resolve(
  context: CaseContext,
  at: number,
  outcome: CaseOutcome,
  decidedBy: string[],
  reason?: string,
): CaseResolution {
  const edits = context.edits ?? [];
  return {
    caseId: context.caseId,
    outcome,
    plan: context.plan,
    tier: context.tier,
    decidedBy,
    at,
    ...(reason ? { reason } : {}),
    ...(edits.length ? { edits } : {}),
  };
}

function editOf(context: CaseContext, event: CaseEvent): { plan: Plan; edit: CaseEdit } | null {
  if (event.type !== 'modify') return null;
  const plan = { ...context.plan, actions: event.actions };
  const edit: CaseEdit = {
    by: event.reviewer.id,
    at: event.at,
    tier: context.tier,
    note: event.comment,
    diff: diffActions(context.plan.actions, event.actions),
  };
  if (context.approvals.length > 0) edit.discardedApprovals = [...context.approvals];
  return { plan, edit };
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
      return (
        !!r &&
        caseRules.hasStepRole(context, r) &&
        caseRules.notRequester(context, r) &&
        caseRules.notPreviousApprover(context, r)
      );
    },
    isClaimant: ({ context, event }) => {
      const r = reviewerOf(event);
      return !!r && caseRules.isClaimant(context, r) && caseRules.hasStepRole(context, r);
    },
    reviewerMayEscalate: ({ context, event }) => {
      const r = reviewerOf(event);
      return !!r && caseRules.hasTierRole(context, r) && caseRules.notRequester(context, r);
    },
    hasNextTier: ({ context }) => caseRules.hasNextTier(context),
    needsMoreApprovals: ({ context }) => caseRules.needsMoreApprovals(context),
    editCompletesApprovals: ({ context }) => caseRules.editCompletesApprovals(context),
    /** The edit changes arguments only, and at least one. */
    editIsValid: ({ context, event }) =>
      event.type === 'modify' &&
      caseRules.editIsArgumentsOnly(context, event.actions) &&
      caseRules.editChangesSomething(context, event.actions),
    /** A reviewer edited the plan in force; its last approval resolves the case as modified. */
    planWasModified: ({ context }) => context.modified,
    ackDeadlinePassed: ({ context, event }) => event.type === 'timer.ack' && context.timers.ack === event.dueAt,
    resolveDeadlinePassed: ({ context, event }) =>
      event.type === 'timer.resolve' && context.timers.resolve === event.dueAt,
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
      // For a lease that ran out, `by` names whose lease it was; the audit records it as the runtime's doing.
      return {
        claim: null,
        timers,
        history: entry(
          context,
          event.at,
          kind,
          context.claim?.reviewer,
          event.type === 'release' ? event.reason : undefined,
        ),
      };
    }),
    /** An approval that is not the tier's last: the case returns to the queue for the next step. */
    recordApproval: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const { lease: _gone, ...timers } = context.timers;
      const approvals = [...context.approvals, r.id];
      const steps = approvalSteps(currentTier(context)).length;
      const comment = event.type === 'approve' && event.comment ? `: ${event.comment}` : '';
      return {
        approvals,
        claim: null,
        timers,
        history: entry(context, event.at, 'approved', r.id, `approval ${approvals.length} of ${steps}${comment}`),
      };
    }),
    /**
     * An edit on a tier that needs more than one approval: the plan changes, earlier approvals are
     * discarded (they approved another plan), and the edit counts as the first approval of the new
     * plan when its author holds the first step's roles.
     */
    recordEdit: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const { plan, edit } = editOf(context, event)!;
      const { lease: _gone, ...timers } = context.timers;
      const first = approvalSteps(currentTier(context))[0]!;
      const approvals = r.roles.some((role) => first.roles.includes(role)) ? [r.id] : [];
      const discarded = edit.discardedApprovals?.length
        ? `; discards the approval of ${edit.discardedApprovals.join(', ')}`
        : '';
      return {
        plan,
        modified: true,
        modificationNote: edit.note,
        edits: [...(context.edits ?? []), edit],
        approvals,
        claim: null,
        timers,
        history: entry(context, event.at, 'modified', r.id, `${edit.note}${discarded}`),
      };
    }),
    approve: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const approvers = [...context.approvals, r.id];
      const outcome: CaseOutcome = context.modified ? 'modified' : 'approved';
      const history = entry(context, event.at, 'approved', r.id, event.type === 'approve' ? event.comment : undefined);
      return {
        approvals: approvers,
        claim: null,
        timers: {},
        history,
        resolution: resolve(context, event.at, outcome, approvers, context.modificationNote ?? undefined),
      };
    }),
    /** An edit on a tier that needs one approval: the edit is that approval, and resolves the case. */
    applyModification: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const { plan, edit } = editOf(context, event)!;
      const edits = [...(context.edits ?? []), edit];
      const next: CaseContext = { ...context, plan, edits };
      return {
        plan,
        modified: true,
        modificationNote: edit.note,
        edits,
        approvals: [r.id],
        claim: null,
        timers: {},
        history: entry(context, event.at, 'modified', r.id, edit.note),
        resolution: resolve(next, event.at, 'modified', [r.id], edit.note),
      };
    }),
    reject: assign(({ context, event }) => {
      const r = reviewerOf(event)!;
      const reason = event.type === 'reject' ? event.reason : undefined;
      return {
        claim: null,
        timers: {},
        history: entry(context, event.at, 'rejected', r.id, reason),
        resolution: resolve(context, event.at, 'rejected', [r.id], reason),
      };
    }),
    escalate: assign(({ context, event }) => {
      const tier = context.tier + 1;
      const spec = context.tiers[tier - 1]!;
      const note =
        event.type === 'escalate'
          ? event.reason
          : event.type === 'timer.ack'
            ? 'acknowledge deadline missed'
            : 'resolve deadline missed';
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
      const note =
        event.type === 'timer.ack'
          ? 'acknowledge deadline of the last tier missed'
          : 'resolve deadline of the last tier missed';
      return {
        claim: null,
        timers: {},
        history: entry(context, event.at, 'expired', undefined, note),
        resolution: resolve(context, event.at, 'expired', [], note),
      };
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
      proposedPlan: input.proposedPlan ?? input.plan,
      // Edits made at earlier tiers are shown (`edits`), but this case's decision is its own: an
      // approval of an edited plan here is `approved`, an edit here `modified`.
      modified: false,
      modificationNote: null,
      edits: input.edits ?? [],
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
      trace: input.trace ?? null,
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
        escalate: {
          guard: and(['reviewerMayEscalate', 'hasNextTier']),
          target: 'queued',
          reenter: true,
          actions: 'escalate',
        },
      },
    },
    claimed: {
      on: {
        release: { guard: 'isClaimant', target: 'queued', actions: 'dropClaim' },
        renew: { guard: 'isClaimant', actions: 'renewLease' },
        'timer.lease': { guard: 'leaseExpired', target: 'queued', actions: 'dropClaim' },
        approve: [
          { guard: and(['isClaimant', 'needsMoreApprovals']), target: 'queued', actions: 'recordApproval' },
          { guard: and(['isClaimant', 'planWasModified']), target: 'modified', actions: 'approve' },
          { guard: 'isClaimant', target: 'approved', actions: 'approve' },
        ],
        modify: [
          {
            guard: and(['isClaimant', 'editIsValid', 'editCompletesApprovals']),
            target: 'modified',
            actions: 'applyModification',
          },
          { guard: and(['isClaimant', 'editIsValid']), target: 'queued', actions: 'recordEdit' },
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
  output: ({ context }) =>
    context.resolution ?? resolve(context, context.enteredTierAt, 'expired', [], 'no resolution recorded'),
});

/**
 * Why a command would be refused in this snapshot, as a rule name and a sentence, or null when the
 * machine accepts it. Mirrors the guards so a reviewer sees which rule stopped them.
 */
export function explainCaseRejection(
  state: string,
  context: CaseContext,
  event: CaseEvent,
): { rule: string; reason: string; forbidden: boolean } | null {
  const r = reviewerOf(event);
  if (!r) return null;
  const tier = currentTier(context);
  if (['approved', 'modified', 'rejected', 'expired'].includes(state))
    return { rule: 'case-closed', reason: `the case is already ${state}`, forbidden: false };
  if (!caseRules.hasTierRole(context, r))
    return {
      rule: 'tier-role',
      reason: `tier ${context.tier} (${tier.name}) needs one of the roles ${tier.roles.join(', ')}`,
      forbidden: true,
    };
  if (event.type === 'escalate') {
    if (!caseRules.notRequester(context, r))
      return {
        rule: 'separation-of-duties',
        reason: 'the requester of an action never reviews or escalates it',
        forbidden: true,
      };
    if (!caseRules.hasNextTier(context))
      return { rule: 'last-tier', reason: 'the case is at its last tier', forbidden: false };
    if (state === 'claimed' && !caseRules.isClaimant(context, r))
      return {
        rule: 'not-claimant',
        reason: `only the claimant (${context.claim?.reviewer}) may escalate a claimed case`,
        forbidden: false,
      };
    return null;
  }
  if (event.type.startsWith('timer.')) return null;
  const { index, of, step } = currentStep(context);
  if (!caseRules.hasStepRole(context, r))
    return {
      rule: 'step-role',
      reason: `approval ${index + 1} of ${of} at tier ${context.tier} (${step.name}) needs one of the roles ${step.roles.join(', ')}`,
      forbidden: true,
    };
  if (event.type === 'claim') {
    if (state !== 'queued')
      return {
        rule: 'already-claimed',
        reason: `the case is claimed by ${context.claim?.reviewer ?? 'someone'}`,
        forbidden: false,
      };
    if (!caseRules.notRequester(context, r))
      return { rule: 'separation-of-duties', reason: 'the requester of an action never reviews it', forbidden: true };
    if (!caseRules.notPreviousApprover(context, r))
      return {
        rule: 'four-eyes',
        reason: `you already approved this plan; approval ${index + 1} of ${of} needs a different person`,
        forbidden: true,
      };
    return null;
  }
  if (state !== 'claimed') return { rule: 'not-claimed', reason: 'claim the case first', forbidden: false };
  if (!caseRules.isClaimant(context, r))
    return { rule: 'not-claimant', reason: `the case is claimed by ${context.claim?.reviewer}`, forbidden: false };
  if (event.type === 'modify') {
    if (!caseRules.editIsArgumentsOnly(context, event.actions))
      return {
        rule: 'planner-fields',
        reason:
          "a reviewer may change the arguments of the plan's actions, not the actions themselves, their order, or the planner's rationale, confidence and risk",
        forbidden: false,
      };
    if (!caseRules.editChangesSomething(context, event.actions))
      return { rule: 'no-change', reason: 'the edit changes no argument; approve the plan instead', forbidden: false };
  }
  return null;
}
