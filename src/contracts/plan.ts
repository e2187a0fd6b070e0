import { z } from 'zod';

export const PlannedAction = z.object({
  /** Action type, one of the model's actions. */
  type: z.string().min(1),
  /** Arguments, validated against the action's own zod schema by the model. */
  args: z.record(z.string(), z.unknown()),
  description: z.string().optional(),
});
export type PlannedAction = z.infer<typeof PlannedAction>;

export const RiskFactor = z.object({
  name: z.string().min(1),
  /** Contribution in [0, 1]. */
  value: z.number().min(0).max(1),
  note: z.string().optional(),
});

export const RiskInputs = z.object({
  /** Overall risk in [0, 1] as the planner assessed it. */
  score: z.number().min(0).max(1),
  factors: z.array(RiskFactor),
});
export type RiskInputs = z.infer<typeof RiskInputs>;

/** What the planner proposes: ordered actions, how sure it is, why, and what drives the risk. */
export const Plan = z.object({
  id: z.string().min(1),
  planner: z.string().min(1),
  actions: z.array(PlannedAction).min(1, 'a plan has at least one action'),
  confidence: z.number().min(0).max(1),
  rationale: z.string().min(1),
  risk: RiskInputs,
  /** Observation fields the planner relied on (dotted paths into `observation.fields`). */
  citedInputs: z.array(z.string()).default([]),
});
export type Plan = z.infer<typeof Plan>;
