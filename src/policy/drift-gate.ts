import type { GateDecision } from '../contracts/gate-decision.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import type { DriftConfig } from '../contracts/planner-config.ts';
import { drawFor } from '../base/rng.ts';
import type { Tightening } from './drift-stats.ts';
import { riskOf, type GatePolicy } from './gate.ts';

/** What the gate asks of the drift monitor (`DriftMonitor` in `drift.ts`). */
export interface DriftView {
  config(model: string): DriftConfig;
  tightening(model: string): Tightening | undefined;
}

type Gate = (plan: Plan, observation: Observation) => GateDecision;

function toReview(decision: GateDecision, ruleId: string, tier: number, detail: string): GateDecision {
  return {
    ...decision,
    outcome: 'review',
    ruleId,
    tier,
    reasons: [detail],
    rules: [...decision.rules, { ruleId, result: 'review', tier, detail }],
  };
}

/**
 * Wraps a model's gate with what the drift monitor knows. While the model is tightened, a plan the
 * base gate would run goes to review (rule `drift-tightened`): every plan in `review-all` mode, or
 * those under the raised confidence / above the lowered risk in `thresholds` mode. Otherwise a share
 * `spotCheckRate` of auto plans, chosen by the plan id's hash, goes to review (rule `drift-spot-check`).
 * Reviews and denials of the base gate pass unchanged.
 */
export function driftGate(
  model: { name: string; config: GatePolicy & object },
  baseGate: Gate,
  monitor: DriftView,
): Gate {
  const maxTier = model.config.policy.tierRiskBounds.length;
  return (plan, observation) => {
    const decision = baseGate(plan, observation);
    if (decision.outcome !== 'auto') return decision;
    const cfg = monitor.config(model.name);
    if (!cfg.enabled) return decision;
    const tier = Math.min(maxTier, cfg.tier);
    const t = monitor.tightening(model.name);
    if (t) {
      const scope = t.rule ? `plans of ${model.name} reviewed under rule ${t.rule}` : `decided plans of ${model.name}`;
      const why = `reviewers overrode ${(t.overrideRate * 100).toFixed(1)}% of the last ${t.samples} ${scope} (limit ${(t.maxOverrideRate * 100).toFixed(0)}%); the gate is tightened until an operator relaxes it`;
      if (cfg.tighten.mode === 'review-all')
        return toReview(decision, 'drift-tightened', tier, `${why}: every plan goes to review`);
      const risk = riskOf(plan, model.config.actions);
      if (plan.confidence < cfg.tighten.minAutoConfidence)
        return toReview(
          decision,
          'drift-tightened',
          tier,
          `${why}: confidence ${plan.confidence} below the tightened threshold ${cfg.tighten.minAutoConfidence}`,
        );
      if (risk > cfg.tighten.maxAutoRisk)
        return toReview(
          decision,
          'drift-tightened',
          tier,
          `${why}: risk ${Math.round(risk * 1000) / 1000} above the tightened limit ${cfg.tighten.maxAutoRisk}`,
        );
    }
    if (cfg.spotCheckRate > 0 && drawFor('drift-spot-check', model.name, plan.id) < cfg.spotCheckRate) {
      return toReview(
        decision,
        'drift-spot-check',
        tier,
        `spot check: ${(cfg.spotCheckRate * 100).toFixed(0)}% of the plans that would run on their own are reviewed, to measure the planner's quality`,
      );
    }
    return decision;
  };
}
