/**
 * The gate's unit tests share one inline policy and action catalog, plan and observation builders, and
 * the invariants every decision must satisfy (split from test/unit/policy.test.ts by describe block).
 */
import { expect } from 'vitest';
import { GateDecision, Observation, Plan, PolicyConfig, type DataClass } from '../../../src/contracts/index.ts';
import { evaluateGate, type GatePolicy } from '../../../src/policy/index.ts';

export const actions: GatePolicy['actions'] = {
  refund: { description: 'refund money', risk: 0.2, compensation: 'reverse-refund' },
  notify: { description: 'send a message', risk: 0, compensation: null },
  close: { description: 'close tickets', risk: 0.1, compensation: 'reopen' },
  wipe: { description: 'delete the account', risk: 0.1, compensation: null },
  transfer: { description: 'move money', risk: 0.5, compensation: 'reverse-transfer' },
  // `legacy` is allowed by the policy but has no catalog entry: its inherent risk counts as 1.
};

export const policyInput = {
  version: 'policy-test-1',
  allowedActions: ['refund', 'notify', 'close', 'wipe', 'transfer', 'legacy'],
  deniedActions: ['wipe'],
  minAutoConfidence: 0.8,
  maxAutoRisk: 0.3,
  denyAboveRisk: 0.9,
  // Three tiers: risk ≤ 0.5 → 1, ≤ 0.7 → 2, above → 3.
  tierRiskBounds: [0.5, 0.7, 1],
  reviewDataClasses: ['sensitive'],
  lowConfidenceTier2Below: 0.5,
  limits: [
    { action: 'refund', arg: 'amount', reviewAbove: 100, denyAbove: 1000 }, // reviewTier defaults to 1
    { action: 'close', arg: 'count', reviewAbove: 10, reviewTier: 3 },
    { action: 'notify', arg: 'recipients', reviewAbove: 50, reviewTier: 5 }, // above the last tier: capped
    { action: 'transfer', arg: 'amount', denyAbove: 10_000 }, // deny-only limit
  ],
  onExpiry: { fallback: 'deny' },
};

export const policy = PolicyConfig.parse(policyInput);
export const model: GatePolicy = { policy, actions };
export const MAX_TIER = policy.tierRiskBounds.length;
/** Fewest property runs that must exercise each conditional check (none may hold vacuously). */
export const MIN_EXERCISED = 10;

export function withPolicy(overrides: Partial<typeof policyInput>): GatePolicy {
  return { policy: PolicyConfig.parse({ ...policyInput, ...overrides }), actions };
}

export type Act = { type: string; args?: Record<string, unknown> };

export function mkPlan(opts: { actions?: Act[]; confidence?: number; score?: number } = {}): Plan {
  return Plan.parse({
    id: 'plan-1',
    planner: 'test-planner',
    actions: (opts.actions ?? [{ type: 'refund', args: { amount: 50 } }]).map((a) => ({
      type: a.type,
      args: a.args ?? {},
    })),
    confidence: opts.confidence ?? 0.9,
    rationale: 'because',
    risk: { score: opts.score ?? 0.1, factors: [] },
  });
}

export function mkObs(dataClasses: DataClass[] = ['internal']): Observation {
  return Observation.parse({
    id: 'obs-1',
    kind: 'ticket',
    subject: 'customer-1',
    provenance: { source: 'test', observedAt: '2024-05-01T12:00:00Z' },
    classification: dataClasses.includes('sensitive') ? 'sensitive' : 'internal',
    dataClasses,
    fields: {},
  });
}

export const refund = (amount: unknown): Act => ({ type: 'refund', args: { amount } });

export function gate(
  opts: Parameters<typeof mkPlan>[0] = {},
  dataClasses?: DataClass[],
  m: GatePolicy = model,
): GateDecision {
  return evaluateGate(mkPlan(opts), mkObs(dataClasses), m);
}

export function rule(d: GateDecision, ruleId: string) {
  return d.rules.find((r) => r.ruleId === ruleId);
}

/** Invariants every decision must satisfy, whatever the input. */
export function checkInvariants(d: GateDecision, m: GatePolicy = model): void {
  expect(GateDecision.safeParse(d).success).toBe(true);
  expect(d.reasons.length).toBeGreaterThanOrEqual(1);
  expect(d.policyVersion).toBe(m.policy.version);
  const ids = d.rules.map((r) => r.ruleId);
  expect(ids).toContain('allow-list');
  expect(ids).toContain('confidence-threshold');
  expect(ids.includes('risk-threshold') || ids.includes('risk-ceiling')).toBe(true);
  const denies = d.rules.filter((r) => r.result === 'deny');
  const reviews = d.rules.filter((r) => r.result === 'review');
  if (d.outcome === 'deny') {
    expect(d.tier).toBe(0);
    expect(d.ruleId).toBe(denies[0]!.ruleId);
    expect(d.reasons).toEqual(denies.map((r) => r.detail));
  } else if (d.outcome === 'review') {
    expect(denies).toEqual([]);
    expect(d.tier).toBeGreaterThanOrEqual(1);
    expect(d.tier).toBeLessThanOrEqual(m.policy.tierRiskBounds.length);
    expect(reviews.map((r) => r.ruleId)).toContain(d.ruleId);
    expect(d.reasons).toEqual(reviews.map((r) => r.detail));
    for (const r of reviews) expect(r.tier).toBeGreaterThanOrEqual(1);
  } else {
    expect(d.tier).toBe(0);
    expect(d.ruleId).toBe('auto');
    expect(d.rules.every((r) => r.result === 'pass')).toBe(true);
  }
}
