import { z } from 'zod';

export const GateOutcome = z.enum(['auto', 'review', 'deny']);
export type GateOutcome = z.infer<typeof GateOutcome>;

export const RuleResult = z.object({
  ruleId: z.string().min(1),
  result: z.enum(['pass', 'review', 'deny']),
  detail: z.string(),
  /** Review tier the rule asks for (1-based), when result is `review`. */
  tier: z.number().int().min(1).optional(),
});
export type RuleResult = z.infer<typeof RuleResult>;

/** The gate's decision, with the rule that decided it and every rule that was evaluated. */
export const GateDecision = z.object({
  outcome: GateOutcome,
  /** The deciding rule: the first deny, else the review rule asking for the highest tier, else `auto`. */
  ruleId: z.string().min(1),
  reasons: z.array(z.string()).min(1),
  /** Review tier (1-based) when outcome is `review`; 0 otherwise. */
  tier: z.number().int().min(0),
  riskScore: z.number().min(0).max(1),
  confidence: z.number().min(0).max(1),
  policyVersion: z.string().min(1),
  rules: z.array(RuleResult),
});
export type GateDecision = z.infer<typeof GateDecision>;
