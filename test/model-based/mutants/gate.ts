/** Generated gate mutants: every threshold moved across its boundary, every rule off, the outcome and tier changed. */
import type { Mutant } from './mutant.ts';

interface PolicyLike {
  allowedActions: string[];
  deniedActions: string[];
  minAutoConfidence: number;
  maxAutoRisk: number;
  denyAboveRisk: number;
  tierRiskBounds: number[];
  reviewDataClasses: string[];
  lowConfidenceTier2Below?: number;
  limits: { action: string; arg: string; reviewAbove?: number; denyAbove?: number; reviewTier: number }[];
}

function gatePolicyMutant(
  name: string,
  description: string,
  change: (p: PolicyLike, model: any) => PolicyLike,
): Mutant {
  return {
    name: `gate ${name}`,
    machine: 'gate',
    kind: name.includes(' off') ? 'gate-rule-off' : 'gate-threshold',
    target: 'gate',
    description,
    gate: (evaluate) => (plan, observation, model) =>
      evaluate(plan, observation, { ...model, policy: change(model.policy as PolicyLike, model) }),
  };
}

function gateOutcomeMutant(name: string, description: string, change: (d: any, model: any) => any): Mutant {
  return {
    name: `gate ${name}`,
    machine: 'gate',
    kind: 'gate-outcome',
    target: 'gate',
    description,
    gate: (evaluate) => (plan, observation, model) => change(evaluate(plan, observation, model), model),
  };
}

const EPS = 0.02;
const clamp = (x: number) => Math.min(1, Math.max(0, Math.round(x * 1000) / 1000));

/**
 * Gate mutants: each threshold of the policy moved by ±{@link EPS} (the generated fixtures probe
 * ±0.01 around each), each limit moved by ±10 %, each rule switched off, and the decision's outcome
 * or tier changed. `maxLimits`/`maxTiers`: the most limits and tier bounds of the models under test.
 */
export function gateMutants(maxLimits: number, maxTiers: number): Mutant[] {
  const out: Mutant[] = [];
  for (const [field, label] of [
    ['maxAutoRisk', 'auto risk limit'],
    ['denyAboveRisk', 'risk ceiling'],
    ['minAutoConfidence', 'auto confidence threshold'],
    ['lowConfidenceTier2Below', 'low-confidence tier-2 threshold'],
  ] as const) {
    for (const sign of [1, -1]) {
      out.push(
        gatePolicyMutant(`${field} ${sign > 0 ? '+' : '-'}${EPS}`, `the ${label} moved by ${sign * EPS}`, (p) =>
          p[field] === undefined ? p : { ...p, [field]: clamp(p[field]! + sign * EPS) },
        ),
      );
    }
  }
  for (let i = 0; i < maxTiers - 1; i++) {
    for (const sign of [1, -1]) {
      out.push(
        gatePolicyMutant(
          `tierRiskBounds[${i}] ${sign > 0 ? '+' : '-'}${EPS}`,
          `the risk bound of tier ${i + 1} moved by ${sign * EPS}`,
          (p) => ({ ...p, tierRiskBounds: p.tierRiskBounds.map((b, j) => (j === i ? clamp(b + sign * EPS) : b)) }),
        ),
      );
    }
  }
  for (let i = 0; i < maxLimits; i++) {
    for (const field of ['reviewAbove', 'denyAbove'] as const) {
      for (const factor of [1.1, 0.9]) {
        out.push(
          gatePolicyMutant(`limits[${i}].${field} ×${factor}`, `limit ${i}'s ${field} scaled by ${factor}`, (p) => ({
            ...p,
            limits: p.limits.map((l, j) =>
              j === i && l[field] !== undefined ? { ...l, [field]: l[field]! * factor } : l,
            ),
          })),
        );
      }
    }
    out.push(
      gatePolicyMutant(`limits[${i}] off`, `limit ${i} is not checked`, (p) => ({
        ...p,
        limits: p.limits.filter((_, j) => j !== i),
      })),
    );
    out.push(
      gatePolicyMutant(`limits[${i}].reviewTier -1`, `limit ${i} asks for one tier lower`, (p) => ({
        ...p,
        limits: p.limits.map((l, j) => (j === i ? { ...l, reviewTier: Math.max(1, l.reviewTier - 1) } : l)),
      })),
    );
  }
  out.push(
    gatePolicyMutant('allow-list off', 'every action type is allowed', (p, model) => ({
      ...p,
      allowedActions: Object.keys(model.actions ?? {}),
    })),
    gatePolicyMutant('denied-actions off', 'no action type is denied', (p) => ({ ...p, deniedActions: [] })),
    gatePolicyMutant('risk-ceiling off', 'no risk is too high to deny', (p) => ({ ...p, denyAboveRisk: 1 })),
    gatePolicyMutant('risk-threshold off', 'any risk below the ceiling runs on its own', (p) => ({
      ...p,
      maxAutoRisk: p.denyAboveRisk,
    })),
    gatePolicyMutant('confidence-threshold off', 'any confidence runs on its own', (p) => ({
      ...p,
      minAutoConfidence: 0,
    })),
    gatePolicyMutant('data-class off', 'no data class needs review', (p) => ({ ...p, reviewDataClasses: [] })),
    gatePolicyMutant('low-confidence tier-2 off', 'low confidence asks for tier 1 only', (p) => {
      const { lowConfidenceTier2Below: _off, ...rest } = p;
      return rest;
    }),
    gateOutcomeMutant('deny becomes auto', 'a denied plan runs on its own', (d) =>
      d.outcome === 'deny' ? { ...d, outcome: 'auto', ruleId: 'auto', tier: 0 } : d,
    ),
    gateOutcomeMutant('deny becomes review', 'a denied plan goes to the last tier', (d, m) =>
      d.outcome === 'deny' ? { ...d, outcome: 'review', tier: m.policy.tierRiskBounds.length } : d,
    ),
    gateOutcomeMutant('review becomes auto', 'a plan that needs review runs on its own', (d) =>
      d.outcome === 'review' ? { ...d, outcome: 'auto', ruleId: 'auto', tier: 0 } : d,
    ),
    gateOutcomeMutant('review becomes deny', 'a plan that needs review is denied', (d) =>
      d.outcome === 'review' ? { ...d, outcome: 'deny', tier: 0 } : d,
    ),
    gateOutcomeMutant('auto becomes review', 'a plan within every threshold goes to tier 1', (d) =>
      d.outcome === 'auto' ? { ...d, outcome: 'review', ruleId: 'risk-threshold', tier: 1 } : d,
    ),
    gateOutcomeMutant('review tier -1', 'review one tier lower than asked', (d) =>
      d.outcome === 'review' && d.tier > 1 ? { ...d, tier: d.tier - 1 } : d,
    ),
    gateOutcomeMutant('review tier +1', 'review one tier higher than asked', (d, m) =>
      d.outcome === 'review' && d.tier < m.policy.tierRiskBounds.length ? { ...d, tier: d.tier + 1 } : d,
    ),
  );
  return out;
}
