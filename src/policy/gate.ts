import type { GateDecision, RuleResult } from '../contracts/gate-decision.ts';
import type { ModelConfig, PolicyConfig } from '../contracts/model-config.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';

/** What the gate needs of a model: its policy and the inherent risk of each action type. */
export interface GatePolicy {
  policy: PolicyConfig;
  actions: ModelConfig['actions'];
}

/** The tier (1-based) whose risk band holds `risk`; the last tier takes everything above. */
export function tierForRisk(policy: PolicyConfig, risk: number): number {
  const i = policy.tierRiskBounds.findIndex((bound) => risk <= bound);
  return i === -1 ? policy.tierRiskBounds.length : i + 1;
}

/** Plan risk: the planner's score, raised to the inherent risk of its riskiest action. */
export function riskOf(plan: Plan, actions: GatePolicy['actions']): number {
  let risk = plan.risk.score;
  for (const a of plan.actions) risk = Math.max(risk, actions[a.type]?.risk ?? 1);
  return risk;
}

/**
 * Decides whether a plan runs automatically, goes to human review (and at which tier), or is denied.
 *
 * Pure and deterministic: the same plan, observation and policy always give the same decision. Every
 * rule is evaluated and reported, so the decision explains itself. Precedence: any deny wins (the
 * first deny rule in evaluation order decides); otherwise any review rule sends the plan to review at
 * the highest tier asked for; otherwise the plan runs.
 */
export function evaluateGate(plan: Plan, observation: Observation, model: GatePolicy): GateDecision {
  const { policy } = model;
  const rules: RuleResult[] = [];
  const risk = riskOf(plan, model.actions);
  const riskTier = tierForRisk(policy, risk);
  const maxTier = policy.tierRiskBounds.length;

  for (const action of plan.actions) {
    if (!policy.allowedActions.includes(action.type)) {
      rules.push({
        ruleId: 'allow-list',
        result: 'deny',
        detail: `action '${action.type}' is not on the model's allow-list`,
      });
    }
    if (policy.deniedActions.includes(action.type)) {
      rules.push({
        ruleId: `denied-action:${action.type}`,
        result: 'deny',
        detail: `action '${action.type}' is denied by policy`,
      });
    }
  }
  if (!rules.some((r) => r.ruleId === 'allow-list')) {
    rules.push({ ruleId: 'allow-list', result: 'pass', detail: 'every action is on the allow-list' });
  }
  if (!rules.some((r) => r.ruleId.startsWith('denied-action:'))) {
    rules.push({ ruleId: 'denied-actions', result: 'pass', detail: 'no action type of the plan is denied by policy' });
  }

  for (const limit of policy.limits) {
    for (const action of plan.actions) {
      if (action.type !== limit.action) continue;
      const raw = action.args[limit.arg];
      const ruleId = `limit:${limit.action}.${limit.arg}`;
      if (typeof raw !== 'number' || !Number.isFinite(raw)) {
        rules.push({
          ruleId,
          result: 'review',
          tier: limit.reviewTier,
          detail: `${limit.arg} is not a finite number, cannot check the limit`,
        });
      } else if (limit.denyAbove !== undefined && raw > limit.denyAbove) {
        rules.push({ ruleId, result: 'deny', detail: `${limit.arg} ${raw} exceeds the hard limit ${limit.denyAbove}` });
      } else if (limit.reviewAbove !== undefined && raw > limit.reviewAbove) {
        rules.push({
          ruleId,
          result: 'review',
          tier: limit.reviewTier,
          detail: `${limit.arg} ${raw} exceeds the review limit ${limit.reviewAbove}`,
        });
      } else {
        rules.push({ ruleId, result: 'pass', detail: `${limit.arg} ${raw} within limits` });
      }
    }
  }

  if (risk > policy.denyAboveRisk) {
    rules.push({
      ruleId: 'risk-ceiling',
      result: 'deny',
      detail: `risk ${risk} above the ceiling ${policy.denyAboveRisk}`,
    });
  } else if (risk > policy.maxAutoRisk) {
    rules.push({
      ruleId: 'risk-threshold',
      result: 'review',
      tier: riskTier,
      detail: `risk ${risk} above the auto limit ${policy.maxAutoRisk}`,
    });
  } else {
    rules.push({
      ruleId: 'risk-threshold',
      result: 'pass',
      detail: `risk ${risk} within the auto limit ${policy.maxAutoRisk}`,
    });
  }

  if (plan.confidence < policy.minAutoConfidence) {
    const low = policy.lowConfidenceTier2Below;
    const tier =
      low !== undefined && plan.confidence < low ? Math.max(Math.min(2, maxTier), riskTier) : Math.max(1, riskTier);
    rules.push({
      ruleId: 'confidence-threshold',
      result: 'review',
      tier,
      detail: `confidence ${plan.confidence} below the auto threshold ${policy.minAutoConfidence}`,
    });
  } else {
    rules.push({
      ruleId: 'confidence-threshold',
      result: 'pass',
      detail: `confidence ${plan.confidence} meets ${policy.minAutoConfidence}`,
    });
  }

  const classes = observation.dataClasses.filter((c) => policy.reviewDataClasses.includes(c));
  if (classes.length > 0) {
    rules.push({
      ruleId: 'data-class',
      result: 'review',
      tier: Math.max(1, riskTier),
      detail: `observation carries ${classes.join(', ')} data`,
    });
  } else {
    rules.push({ ruleId: 'data-class', result: 'pass', detail: 'no data class of the observation needs review' });
  }

  // Thresholds compare the exact risk; the decision reports it rounded for people.
  const base = {
    riskScore: Math.round(risk * 1000) / 1000,
    confidence: plan.confidence,
    policyVersion: policy.version,
    rules,
  };
  const deny = rules.find((r) => r.result === 'deny');
  if (deny)
    return {
      ...base,
      outcome: 'deny',
      ruleId: deny.ruleId,
      tier: 0,
      reasons: rules.filter((r) => r.result === 'deny').map((r) => r.detail),
    };

  const reviews = rules.filter((r) => r.result === 'review');
  if (reviews.length > 0) {
    const tier = Math.min(maxTier, Math.max(...reviews.map((r) => r.tier ?? 1)));
    const decisive = reviews.find((r) => (r.tier ?? 1) >= tier) ?? reviews[0]!;
    return { ...base, outcome: 'review', ruleId: decisive.ruleId, tier, reasons: reviews.map((r) => r.detail) };
  }
  return {
    ...base,
    outcome: 'auto',
    ruleId: 'auto',
    tier: 0,
    reasons: ['every rule passed: within thresholds and limits'],
  };
}
