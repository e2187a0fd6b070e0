import { z } from 'zod';
import { EpochMs, TraceContext } from './envelope.ts';
import { GateDecision } from './gate-decision.ts';
import { Observation } from './observation.ts';
import { Plan } from './plan.ts';

/** One approval a tier needs, by a holder of one of its roles. */
export const ApprovalStep = z.object({
  name: z.string().min(1),
  roles: z.array(z.string().min(1)).min(1),
});
export type ApprovalStep = z.infer<typeof ApprovalStep>;

/** One escalation tier of a review: who may decide, how fast, and how urgent. */
export const TierSpec = z
  .object({
    name: z.string().min(1),
    queue: z.string().min(1),
    /** Roles allowed to claim and decide at this tier. */
    roles: z.array(z.string().min(1)).min(1),
    /** Time to acknowledge (claim) before escalating, in ms. */
    ackMs: z.number().int().positive(),
    /** Time to resolve (decide) before escalating, in ms, counted from entering the tier. */
    resolveMs: z.number().int().positive(),
    /** Larger is more urgent. */
    priority: z.number().int().min(0),
    /** Two distinct approvers are needed. */
    fourEyes: z.boolean().default(false),
    /**
     * Approvals in order ("a manager, then security"): one per step, each by a distinct holder of the
     * step's roles. Replaces `fourEyes`; every step's roles must be among the tier's roles.
     */
    steps: z
      .array(ApprovalStep)
      .min(2, 'ordered approvals need at least two steps (one approval is the default)')
      .optional(),
  })
  .superRefine((t, ctx) => {
    if (!t.steps) return;
    if (t.fourEyes)
      ctx.addIssue({ code: 'custom', path: ['fourEyes'], message: 'use either fourEyes or steps, not both' });
    t.steps.forEach((s, i) =>
      s.roles.forEach((role, j) => {
        if (!t.roles.includes(role))
          ctx.addIssue({
            code: 'custom',
            path: ['steps', i, 'roles', j],
            message: `role '${role}' is not one of the tier's roles (${t.roles.join(', ')})`,
          });
      }),
    );
  });
export type TierSpec = z.infer<typeof TierSpec>;

export const CaseOutcome = z.enum(['approved', 'modified', 'rejected', 'expired']);
export type CaseOutcome = z.infer<typeof CaseOutcome>;

export const CaseHistoryEntry = z.object({
  at: EpochMs,
  kind: z.enum([
    'opened',
    'claimed',
    'released',
    'lease-expired',
    'renewed',
    'approved',
    'modified',
    'rejected',
    'escalated',
    'expired',
  ]),
  by: z.string().optional(),
  tier: z.number().int().min(1),
  note: z.string().optional(),
});
export type CaseHistoryEntry = z.infer<typeof CaseHistoryEntry>;

/** One change a reviewer made to a plan's arguments. */
export const ArgumentChange = z.object({
  /** Dotted path into the plan: `actions.0.args.amount`. */
  path: z.string().min(1),
  from: z.unknown().optional(),
  to: z.unknown().optional(),
});

/** A reviewer's edit of a plan: who, when, at which tier, why, what changed, and whose approvals it discarded. */
export const CaseEdit = z.object({
  by: z.string().min(1),
  at: EpochMs,
  tier: z.number().int().min(1),
  note: z.string(),
  diff: z.array(ArgumentChange),
  discardedApprovals: z.array(z.string()).optional(),
});
export type CaseEdit = z.infer<typeof CaseEdit>;

/** What the runtime needs to open a review case for an agent's plan. */
export const CaseInput = z.object({
  caseId: z.string().min(1),
  episodeId: z.string().min(1),
  model: z.string().min(1),
  /** 1-based tier the gate asked for. */
  tier: z.number().int().min(1),
  tiers: z.array(TierSpec).min(1),
  leaseMs: z.number().int().positive(),
  requestedBy: z.string().optional(),
  /** The plan to review: the planner's, or an earlier case's edit of it (gated again). */
  plan: Plan,
  /** When `plan` is an edit: the planner's plan, and the edits earlier tiers made (shown, never lost). */
  proposedPlan: Plan.optional(),
  edits: z.array(CaseEdit).optional(),
  decision: GateDecision,
  observation: Observation,
  openedAt: EpochMs,
  /** The episode's trace (see TraceContext). */
  trace: TraceContext.optional(),
});
export type CaseInput = z.infer<typeof CaseInput>;

/** The resolution a case sends back to its agent. */
export const CaseResolution = z.object({
  caseId: z.string().min(1),
  outcome: CaseOutcome,
  /** The plan to execute: the original, or the reviewer's modified one. */
  plan: Plan,
  /** Tier at which the decision was taken (the highest risk it may cover). */
  tier: z.number().int().min(1),
  /** The approvers of the plan that runs (approvals an edit discarded are not among them). */
  decidedBy: z.array(z.string()),
  reason: z.string().optional(),
  /** The reviewers' edits of the planner's plan, in order. */
  edits: z.array(CaseEdit).optional(),
  at: EpochMs,
});
export type CaseResolution = z.infer<typeof CaseResolution>;
