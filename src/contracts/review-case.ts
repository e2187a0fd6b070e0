import { z } from 'zod';
import { EpochMs } from './envelope.ts';
import { GateDecision } from './gate-decision.ts';
import { Observation } from './observation.ts';
import { Plan } from './plan.ts';

/** One escalation tier of a review: who may decide, how fast, and how urgent. */
export const TierSpec = z.object({
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
});
export type TierSpec = z.infer<typeof TierSpec>;

export const CaseOutcome = z.enum(['approved', 'modified', 'rejected', 'expired']);
export type CaseOutcome = z.infer<typeof CaseOutcome>;

export const CaseHistoryEntry = z.object({
  at: EpochMs,
  kind: z.enum(['opened', 'claimed', 'released', 'lease-expired', 'renewed', 'approved', 'modified', 'rejected', 'escalated', 'expired']),
  by: z.string().optional(),
  tier: z.number().int().min(1),
  note: z.string().optional(),
});
export type CaseHistoryEntry = z.infer<typeof CaseHistoryEntry>;

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
  plan: Plan,
  decision: GateDecision,
  observation: Observation,
  openedAt: EpochMs,
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
  decidedBy: z.array(z.string()),
  reason: z.string().optional(),
  at: EpochMs,
});
export type CaseResolution = z.infer<typeof CaseResolution>;
