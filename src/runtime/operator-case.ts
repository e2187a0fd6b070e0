import type { GateDecision } from '../contracts/gate-decision.ts';
import { CaseInput, type TierSpec } from '../contracts/review-case.ts';
import { parseContract } from '../contracts/parse.ts';
import type { LoadedModel } from '../models/loader.ts';

/**
 * The input of an operator case: a review case in the model's operator tier about `target` (a
 * suspended actor, a failed compensation, a drift alarm), with one action, `handoff.operator.decide`.
 */
export function operatorCaseInput(
  model: LoadedModel,
  caseId: string,
  target: string,
  observation: unknown,
  rationale: string,
  ruleId: string,
  now: number,
): unknown {
  const tier: TierSpec = model.config.operator ?? {
    name: 'operator',
    queue: 'operators',
    roles: ['operator'],
    ackMs: 30 * 60_000,
    resolveMs: 4 * 3600_000,
    priority: 9,
    fourEyes: false,
  };
  const decision: GateDecision = {
    outcome: 'review',
    ruleId,
    reasons: [rationale],
    tier: 1,
    riskScore: 1,
    confidence: 0,
    policyVersion: model.config.policy.version,
    rules: [],
  };
  return parseContract(
    CaseInput,
    {
      caseId,
      episodeId: target,
      model: model.name,
      tier: 1,
      tiers: [tier],
      leaseMs: model.config.review.leaseMs,
      plan: {
        id: `${caseId}.plan`,
        planner: 'handoff/supervisor',
        actions: [{ type: 'handoff.operator.decide', args: {} }],
        confidence: 0,
        rationale,
        risk: { score: 1, factors: [] },
        citedInputs: [],
      },
      decision,
      observation,
      openedAt: now,
    },
    'CaseInput',
  );
}
