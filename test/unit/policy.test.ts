import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GateDecision, Observation, Plan, PolicyConfig, type DataClass } from '../../src/contracts/index.ts';
import { evaluateGate, riskOf, tierForRisk, type GatePolicy } from '../../src/policy/index.ts';

// ---------------------------------------------------------------------------------------------------
// Inline policy and action catalog
// ---------------------------------------------------------------------------------------------------

const actions: GatePolicy['actions'] = {
  refund: { description: 'refund money', risk: 0.2, compensation: 'reverse-refund' },
  notify: { description: 'send a message', risk: 0, compensation: null },
  close: { description: 'close tickets', risk: 0.1, compensation: 'reopen' },
  wipe: { description: 'delete the account', risk: 0.1, compensation: null },
  transfer: { description: 'move money', risk: 0.5, compensation: 'reverse-transfer' },
  // `legacy` is allowed by the policy but has no catalog entry: its inherent risk counts as 1.
};

const policyInput = {
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

const policy = PolicyConfig.parse(policyInput);
const model: GatePolicy = { policy, actions };
const MAX_TIER = policy.tierRiskBounds.length;
/** Fewest property runs that must exercise each conditional check (none may hold vacuously). */
const MIN_EXERCISED = 10;

function withPolicy(overrides: Partial<typeof policyInput>): GatePolicy {
  return { policy: PolicyConfig.parse({ ...policyInput, ...overrides }), actions };
}

type Act = { type: string; args?: Record<string, unknown> };

function mkPlan(opts: { actions?: Act[]; confidence?: number; score?: number } = {}): Plan {
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

function mkObs(dataClasses: DataClass[] = ['internal']): Observation {
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

const refund = (amount: unknown): Act => ({ type: 'refund', args: { amount } });

function gate(opts: Parameters<typeof mkPlan>[0] = {}, dataClasses?: DataClass[], m: GatePolicy = model): GateDecision {
  return evaluateGate(mkPlan(opts), mkObs(dataClasses), m);
}

function rule(d: GateDecision, ruleId: string) {
  return d.rules.find((r) => r.ruleId === ruleId);
}

/** Invariants every decision must satisfy, whatever the input. */
function checkInvariants(d: GateDecision, m: GatePolicy = model): void {
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

// ---------------------------------------------------------------------------------------------------

describe('evaluateGate: each rule', () => {
  it('auto when every rule passes', () => {
    const d = gate({ actions: [refund(50)], confidence: 0.9, score: 0.1 });
    expect(d.outcome).toBe('auto');
    expect(d.ruleId).toBe('auto');
    expect(d.tier).toBe(0);
    expect(d.riskScore).toBe(0.2); // raised to refund's inherent risk
    expect(d.confidence).toBe(0.9);
    expect(d.policyVersion).toBe('policy-test-1');
    expect(d.reasons).toHaveLength(1);
    expect(d.rules.map((r) => [r.ruleId, r.result])).toEqual([
      ['allow-list', 'pass'],
      ['denied-actions', 'pass'],
      ['limit:refund.amount', 'pass'],
      ['risk-threshold', 'pass'],
      ['confidence-threshold', 'pass'],
      ['data-class', 'pass'],
    ]);
    checkInvariants(d);
  });

  it('allow-list: an action not on the list is denied', () => {
    const d = gate({ actions: [refund(50), { type: 'mint' }], confidence: 1, score: 0 });
    expect(d.outcome).toBe('deny');
    expect(d.ruleId).toBe('allow-list');
    expect(d.tier).toBe(0);
    expect(rule(d, 'allow-list')).toMatchObject({ result: 'deny' });
    expect(rule(d, 'allow-list')!.detail).toContain("'mint'");
    expect(d.rules.filter((r) => r.ruleId === 'allow-list')).toHaveLength(1);
    checkInvariants(d);
  });

  it('allow-list: every offending action is reported', () => {
    const d = gate({ actions: [{ type: 'mint' }, { type: 'burn' }] });
    const al = d.rules.filter((r) => r.ruleId === 'allow-list');
    expect(al.map((r) => r.result)).toEqual(['deny', 'deny']);
    expect(al[0]!.detail).toContain("'mint'");
    expect(al[1]!.detail).toContain("'burn'");
    checkInvariants(d);
  });

  it('denied action: denied whatever the confidence and risk', () => {
    const d = gate({ actions: [{ type: 'wipe' }], confidence: 1, score: 0 });
    expect(d.outcome).toBe('deny');
    expect(d.ruleId).toBe('denied-action:wipe');
    expect(d.tier).toBe(0);
    expect(rule(d, 'allow-list')).toMatchObject({ result: 'pass' });
    expect(d.reasons).toEqual([rule(d, 'denied-action:wipe')!.detail]);
    checkInvariants(d);
  });

  it('limit denyAbove: denied', () => {
    const d = gate({ actions: [refund(5000)] });
    expect(d.outcome).toBe('deny');
    expect(d.ruleId).toBe('limit:refund.amount');
    expect(rule(d, 'limit:refund.amount')).toMatchObject({ result: 'deny' });
    expect(rule(d, 'limit:refund.amount')!.detail).toContain('1000');
    checkInvariants(d);
  });

  it('limit denyAbove without reviewAbove', () => {
    expect(gate({ actions: [{ type: 'transfer', args: { amount: 10_001 } }] })).toMatchObject({
      outcome: 'deny',
      ruleId: 'limit:transfer.amount',
    });
    const ok = gate({ actions: [{ type: 'transfer', args: { amount: 10_000 } }] });
    expect(rule(ok, 'limit:transfer.amount')).toMatchObject({ result: 'pass' });
  });

  it('limit reviewAbove: review at the limit reviewTier (default 1)', () => {
    const d = gate({ actions: [refund(150)] });
    expect(d.outcome).toBe('review');
    expect(d.ruleId).toBe('limit:refund.amount');
    expect(d.tier).toBe(1);
    expect(rule(d, 'limit:refund.amount')).toMatchObject({ result: 'review', tier: 1 });
    checkInvariants(d);
  });

  it('limit reviewAbove: the configured reviewTier is used', () => {
    const d = gate({ actions: [{ type: 'close', args: { count: 11 } }] });
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'limit:close.count', tier: 3 });
    expect(rule(d, 'limit:close.count')).toMatchObject({ result: 'review', tier: 3 });
    checkInvariants(d);
  });

  it('limit reviewAbove: a reviewTier beyond the last tier is capped to the last tier', () => {
    const d = gate({ actions: [{ type: 'notify', args: { recipients: 51 } }] });
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'limit:notify.recipients', tier: MAX_TIER });
    checkInvariants(d);
  });

  it('limit boundaries: equal to reviewAbove passes, equal to denyAbove reviews', () => {
    expect(rule(gate({ actions: [refund(100)] }), 'limit:refund.amount')).toMatchObject({ result: 'pass' });
    expect(gate({ actions: [refund(100)] }).outcome).toBe('auto');
    expect(gate({ actions: [refund(100.01)] }).outcome).toBe('review');
    expect(gate({ actions: [refund(1000)] })).toMatchObject({ outcome: 'review', ruleId: 'limit:refund.amount' });
    expect(gate({ actions: [refund(1000.01)] })).toMatchObject({ outcome: 'deny', ruleId: 'limit:refund.amount' });
  });

  it('limit: a non-numeric or missing argument goes to review', () => {
    for (const amount of ['150', '5000', null, undefined, { value: 5 }, [5], true]) {
      const d = gate({ actions: [{ type: 'refund', args: amount === undefined ? {} : { amount } }] });
      expect(d.outcome, JSON.stringify(amount)).toBe('review');
      expect(d.ruleId).toBe('limit:refund.amount');
      expect(rule(d, 'limit:refund.amount')).toMatchObject({ result: 'review', tier: 1 });
      expect(rule(d, 'limit:refund.amount')!.detail).toContain('not a finite number');
      checkInvariants(d);
    }
    // The limit's own reviewTier applies.
    expect(gate({ actions: [{ type: 'close', args: { count: 'many' } }] })).toMatchObject({
      outcome: 'review',
      tier: 3,
    });
  });

  it('limit: every matching action is checked, and limits of absent actions are not reported', () => {
    const d = gate({ actions: [refund(10), refund(5000)] });
    const limits = d.rules.filter((r) => r.ruleId === 'limit:refund.amount');
    expect(limits.map((r) => r.result)).toEqual(['pass', 'deny']);
    expect(d.outcome).toBe('deny');
    expect(rule(d, 'limit:close.count')).toBeUndefined();
  });

  it('risk-ceiling: risk above denyAboveRisk is denied', () => {
    const d = gate({ score: 0.95 });
    expect(d).toMatchObject({ outcome: 'deny', ruleId: 'risk-ceiling', tier: 0, riskScore: 0.95 });
    expect(rule(d, 'risk-threshold')).toBeUndefined();
    checkInvariants(d);
    // At the ceiling: review at the last tier, not deny.
    expect(gate({ score: 0.9 })).toMatchObject({ outcome: 'review', ruleId: 'risk-threshold', tier: 3 });
  });

  it('risk-ceiling defaults to 1: nothing is denied for risk alone', () => {
    const m = withPolicy({ denyAboveRisk: undefined });
    expect(m.policy.denyAboveRisk).toBe(1);
    expect(gate({ score: 1 }, undefined, m)).toMatchObject({ outcome: 'review', ruleId: 'risk-threshold', tier: 3 });
  });

  it('risk-threshold: review at the tier whose band holds the risk', () => {
    const cases: [number, number][] = [
      [0.31, 1],
      [0.4, 1],
      [0.5, 1],
      [0.51, 2],
      [0.7, 2],
      [0.71, 3],
      [0.85, 3],
    ];
    for (const [score, tier] of cases) {
      const d = gate({ score });
      expect(d, `score ${score}`).toMatchObject({
        outcome: 'review',
        ruleId: 'risk-threshold',
        tier,
        riskScore: score,
      });
      expect(rule(d, 'risk-threshold')).toMatchObject({ result: 'review', tier });
      checkInvariants(d);
    }
    // At the auto limit: passes.
    expect(gate({ score: 0.3 }).outcome).toBe('auto');
  });

  it('confidence-threshold: below minAutoConfidence goes to review', () => {
    const d = gate({ confidence: 0.7 });
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'confidence-threshold', tier: 1, confidence: 0.7 });
    expect(rule(d, 'confidence-threshold')).toMatchObject({ result: 'review', tier: 1 });
    checkInvariants(d);
    // At the threshold: passes.
    expect(gate({ confidence: 0.8 }).outcome).toBe('auto');
  });

  it('confidence-threshold: the review tier follows the risk tier', () => {
    // risk 0.25 ≤ maxAutoRisk, but bounds put it in tier 2 under this policy.
    const m = withPolicy({ tierRiskBounds: [0.2, 0.7, 1] });
    const d = gate({ confidence: 0.7, score: 0.25 }, undefined, m);
    expect(rule(d, 'risk-threshold')).toMatchObject({ result: 'pass' });
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'confidence-threshold', tier: 2 });
  });

  it('confidence-threshold: below lowConfidenceTier2Below goes to tier 2', () => {
    const d = gate({ confidence: 0.49 });
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'confidence-threshold', tier: 2 });
    expect(rule(d, 'confidence-threshold')).toMatchObject({ tier: 2 });
    checkInvariants(d);
    // At the low bound: not "below", so tier 1.
    expect(gate({ confidence: 0.5 })).toMatchObject({ outcome: 'review', tier: 1 });
    // Without the setting, low confidence stays at the risk tier.
    expect(gate({ confidence: 0.1 }, undefined, withPolicy({ lowConfidenceTier2Below: undefined }))).toMatchObject({
      outcome: 'review',
      tier: 1,
    });
  });

  it('confidence-threshold: tier 2 only when a second tier exists', () => {
    const m = withPolicy({ tierRiskBounds: [1] });
    const d = gate({ confidence: 0.1 }, undefined, m);
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'confidence-threshold', tier: 1 });
    checkInvariants(d, m);
  });

  it('data-class: an observation with a review class goes to review', () => {
    const d = gate({}, ['internal', 'sensitive']);
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'data-class', tier: 1 });
    expect(rule(d, 'data-class')).toMatchObject({ result: 'review', tier: 1 });
    expect(rule(d, 'data-class')!.detail).toContain('sensitive');
    checkInvariants(d);
    // Its tier follows the risk tier.
    expect(gate({ score: 0.6, confidence: 0.9 }, ['sensitive'])).toMatchObject({ outcome: 'review', tier: 2 });
    // Classes outside reviewDataClasses do not trigger it.
    const plain = gate({}, ['public', 'internal', 'confidential']);
    expect(plain.outcome).toBe('auto');
    expect(rule(plain, 'data-class')).toMatchObject({ result: 'pass' });
  });
});

describe('evaluateGate: regressions', () => {
  it('a NaN or infinite limit argument goes to review, never auto', () => {
    for (const amount of [Number.NaN, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY]) {
      const d = gate({ actions: [refund(amount)], confidence: 0.95, score: 0.05 });
      expect(d.outcome).toBe('review');
      expect(rule(d, 'limit:refund.amount')).toMatchObject({ result: 'review' });
    }
  });

  it('thresholds compare the exact risk, not the rounded one', () => {
    expect(
      gate({ actions: [{ type: 'notify', args: { recipients: 1 } }], score: 0.3004, confidence: 0.95 }).outcome,
    ).toBe('review');
    expect(
      gate({ actions: [{ type: 'notify', args: { recipients: 1 } }], score: 0.9004, confidence: 0.95 }).outcome,
    ).toBe('deny');
  });

  it('lower confidence never lowers the tier below the risk tier', () => {
    const m = withPolicy({ maxAutoRisk: 0.9, tierRiskBounds: [0.1, 0.2, 1] });
    const low = evaluateGate(
      mkPlan({ actions: [{ type: 'notify', args: { recipients: 1 } }], score: 0.5, confidence: 0.3 }),
      mkObs(),
      m,
    );
    const mid = evaluateGate(
      mkPlan({ actions: [{ type: 'notify', args: { recipients: 1 } }], score: 0.5, confidence: 0.7 }),
      mkObs(),
      m,
    );
    expect(low.tier).toBeGreaterThanOrEqual(mid.tier);
  });
});

describe('evaluateGate: precedence', () => {
  it('deny beats review', () => {
    const d = gate({ actions: [{ type: 'wipe' }, refund(150)], confidence: 0.1, score: 0.6 }, ['sensitive']);
    expect(d.outcome).toBe('deny');
    expect(d.ruleId).toBe('denied-action:wipe');
    expect(d.tier).toBe(0);
    // The review rules were still evaluated and reported, but are not reasons.
    expect(d.rules.filter((r) => r.result === 'review').map((r) => r.ruleId)).toEqual([
      'limit:refund.amount',
      'risk-threshold',
      'confidence-threshold',
      'data-class',
    ]);
    expect(d.reasons).toEqual([rule(d, 'denied-action:wipe')!.detail]);
    checkInvariants(d);
  });

  it('the first deny in evaluation order decides, every deny is a reason', () => {
    const d = gate({ actions: [refund(5000), { type: 'mint' }, { type: 'wipe' }], score: 0.1 });
    expect(d.ruleId).toBe('allow-list');
    expect(d.rules.filter((r) => r.result === 'deny').map((r) => r.ruleId)).toEqual([
      'allow-list',
      'denied-action:wipe',
      'limit:refund.amount',
      'risk-ceiling', // `mint` is not in the catalog: risk 1
    ]);
    expect(d.reasons).toHaveLength(4);
    checkInvariants(d);
  });

  it('a risk-ceiling deny beats limit and confidence reviews', () => {
    const d = gate({ actions: [refund(150)], score: 0.99, confidence: 0.2 });
    expect(d).toMatchObject({ outcome: 'deny', ruleId: 'risk-ceiling', tier: 0 });
  });

  it('the highest review tier wins and its rule decides', () => {
    // limit → 1, risk → 2, confidence (low) → 2: the first tier-2 rule decides.
    const a = gate({ actions: [refund(150)], score: 0.6, confidence: 0.3 });
    expect(a).toMatchObject({ outcome: 'review', tier: 2, ruleId: 'risk-threshold' });
    expect(a.reasons).toHaveLength(3);
    checkInvariants(a);

    // confidence (low) → 2 beats limit → 1 and data-class → 1.
    const b = gate({ actions: [refund(150)], score: 0.1, confidence: 0.3 }, ['sensitive']);
    expect(b).toMatchObject({ outcome: 'review', tier: 2, ruleId: 'confidence-threshold' });
    checkInvariants(b);

    // limit → 3 beats risk → 2, even though it is evaluated first.
    const c = gate({ actions: [{ type: 'close', args: { count: 50 } }], score: 0.6, confidence: 0.3 }, ['sensitive']);
    expect(c).toMatchObject({ outcome: 'review', tier: 3, ruleId: 'limit:close.count' });
    checkInvariants(c);

    // data-class → 3 (risk tier) when the risk rule is at the same tier: risk-threshold came first.
    const e = gate({ score: 0.8 }, ['sensitive']);
    expect(e).toMatchObject({ outcome: 'review', tier: 3, ruleId: 'risk-threshold' });
  });

  it('a capped review tier still names the rule that asked for it', () => {
    const d = gate({ actions: [{ type: 'notify', args: { recipients: 99 } }], score: 0.8 });
    // notify limit asks for 5 (capped to 3), risk asks for 3: the limit is first.
    expect(d).toMatchObject({ outcome: 'review', tier: 3, ruleId: 'limit:notify.recipients' });
  });
});

describe('riskOf and tierForRisk', () => {
  it('riskOf is the max of the plan score and the inherent risk of every action', () => {
    expect(riskOf(mkPlan({ actions: [{ type: 'notify', args: { recipients: 1 } }], score: 0.05 }), actions)).toBe(0.05);
    expect(riskOf(mkPlan({ actions: [refund(1)], score: 0.05 }), actions)).toBe(0.2);
    expect(riskOf(mkPlan({ actions: [refund(1), { type: 'transfer' }, { type: 'close' }], score: 0.1 }), actions)).toBe(
      0.5,
    );
    expect(riskOf(mkPlan({ actions: [refund(1), { type: 'transfer' }], score: 0.65 }), actions)).toBe(0.65);
  });

  it('an action missing from the catalog counts as risk 1', () => {
    expect(riskOf(mkPlan({ actions: [{ type: 'legacy' }], score: 0 }), actions)).toBe(1);
    expect(riskOf(mkPlan({ actions: [refund(1), { type: 'unknown' }], score: 0 }), actions)).toBe(1);
    expect(riskOf(mkPlan({ actions: [refund(1)], score: 0 }), {})).toBe(1);
    // Allowed but uncatalogued: the gate sees risk 1 and denies above the ceiling.
    const d = gate({ actions: [{ type: 'legacy' }], score: 0, confidence: 1 });
    expect(d).toMatchObject({ outcome: 'deny', ruleId: 'risk-ceiling', riskScore: 1 });
    expect(rule(d, 'allow-list')).toMatchObject({ result: 'pass' });
  });

  it('the decision reports the risk riskOf computes', () => {
    const p = mkPlan({ actions: [refund(1), { type: 'transfer' }], score: 0.1 });
    expect(evaluateGate(p, mkObs(), model).riskScore).toBe(riskOf(p, actions));
  });

  it('tierForRisk maps risk to the band that holds it; the last tier takes the rest', () => {
    const cases: [number, number][] = [
      [0, 1],
      [0.5, 1],
      [0.500001, 2],
      [0.7, 2],
      [0.71, 3],
      [1, 3],
    ];
    for (const [risk, tier] of cases) expect(tierForRisk(policy, risk), `risk ${risk}`).toBe(tier);
    const short = PolicyConfig.parse({ ...policyInput, tierRiskBounds: [0.4, 0.6] });
    expect(tierForRisk(short, 0.9)).toBe(2);
    expect(tierForRisk(short, 0.4)).toBe(1);
  });
});

describe('evaluateGate: determinism and explanation', () => {
  const scenarios: [string, Parameters<typeof mkPlan>[0], DataClass[]?][] = [
    ['auto', {}],
    ['allow-list', { actions: [{ type: 'mint' }] }],
    ['denied', { actions: [{ type: 'wipe' }] }],
    ['limit deny', { actions: [refund(2000)] }],
    ['limit review', { actions: [refund(200)] }],
    ['limit non-numeric', { actions: [refund('200')] }],
    ['risk ceiling', { score: 0.99 }],
    ['risk review', { score: 0.6 }],
    ['low confidence', { confidence: 0.2 }],
    ['confidence review', { confidence: 0.6 }],
    ['data class', {}, ['sensitive']],
    [
      'mixed',
      { actions: [refund(500), { type: 'close', args: { count: 3 } }], score: 0.75, confidence: 0.45 },
      ['confidential', 'sensitive'],
    ],
  ];

  for (const [name, opts, classes] of scenarios) {
    it(`${name}: same input twice gives deep-equal output, and the input is untouched`, () => {
      const p = mkPlan(opts);
      const o = mkObs(classes);
      const pSnap = structuredClone(p);
      const oSnap = structuredClone(o);
      const first = evaluateGate(p, o, model);
      const second = evaluateGate(p, o, model);
      expect(second).toEqual(first);
      expect(second).not.toBe(first);
      // A fresh copy of the same input gives the same decision too.
      expect(evaluateGate(structuredClone(p), structuredClone(o), structuredClone(model))).toEqual(first);
      expect(p).toEqual(pSnap);
      expect(o).toEqual(oSnap);
    });

    it(`${name}: lists the evaluated rules, has ≥1 reason, and a valid tier`, () => {
      const d = gate(opts, classes);
      checkInvariants(d);
      // One limit rule per action of a limited type.
      const p = mkPlan(opts);
      const limited = p.actions.flatMap((a) =>
        policy.limits.filter((l) => l.action === a.type).map((l) => `limit:${l.action}.${l.arg}`),
      );
      expect(d.rules.filter((r) => r.ruleId.startsWith('limit:')).map((r) => r.ruleId)).toEqual(limited);
      if (d.outcome === 'review') expect(d.tier).toBeGreaterThanOrEqual(1);
      else expect(d.tier).toBe(0);
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------------

describe('evaluateGate: properties', () => {
  const arbInput = fc.record({
    confidence: fc.double({ min: 0, max: 1, noNaN: true }),
    // Scores on a 1/1000 grid: the gate rounds risk to three decimals.
    score: fc.integer({ min: 0, max: 1000 }).map((k) => k / 1000),
    amount: fc.oneof(fc.double({ min: 0, max: 2000, noNaN: true }), fc.integer({ min: 0, max: 200 })),
    recipients: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
    count: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
    transfer: fc.boolean(),
    wipe: fc.boolean(),
    wipeFirst: fc.boolean(),
    dataClasses: fc.subarray(['public', 'internal', 'confidential', 'sensitive'] as DataClass[]),
  });

  type In = typeof arbInput extends fc.Arbitrary<infer T> ? T : never;

  /**
   * Inputs near the auto side of every threshold: uniform inputs almost never meet all of them at
   * once, so "auto exactly when" needs these to test its "auto" half.
   */
  const arbNearAuto: fc.Arbitrary<In> = fc.record({
    confidence: fc.double({ min: 0.75, max: 1, noNaN: true }),
    score: fc.integer({ min: 0, max: 350 }).map((k) => k / 1000),
    amount: fc.oneof(fc.double({ min: 0, max: 110, noNaN: true }), fc.integer({ min: 95, max: 105 })),
    recipients: fc.option(fc.integer({ min: 45, max: 55 }), { nil: undefined }),
    count: fc.option(fc.integer({ min: 8, max: 12 }), { nil: undefined }),
    transfer: fc.constant(false),
    wipe: fc.constant(false),
    wipeFirst: fc.boolean(),
    dataClasses: fc.subarray(['public', 'internal', 'confidential', 'sensitive'] as DataClass[]),
  });

  function build(i: In): Plan {
    const acts: Act[] = [refund(i.amount)];
    if (i.recipients !== undefined) acts.push({ type: 'notify', args: { recipients: i.recipients } });
    if (i.count !== undefined) acts.push({ type: 'close', args: { count: i.count } });
    if (i.transfer) acts.push({ type: 'transfer', args: { amount: 1 } });
    if (i.wipe) {
      if (i.wipeFirst) acts.unshift({ type: 'wipe' });
      else acts.push({ type: 'wipe' });
    }
    return mkPlan({ actions: acts, confidence: i.confidence, score: i.score });
  }

  it('never auto when confidence, risk or an amount is out of bounds; only deny with a denied action', () => {
    // How many runs exercised each implication (its condition held): none may be vacuous.
    const hits = {
      lowConfidence: 0,
      riskAboveAuto: 0,
      amountAboveReview: 0,
      riskAboveCeiling: 0,
      amountAboveDeny: 0,
      wipe: 0,
    };
    fc.assert(
      fc.property(arbInput, (i) => {
        const p = build(i);
        const d = evaluateGate(p, mkObs(i.dataClasses), model);
        const inherent = Math.max(
          i.score,
          0.2,
          i.transfer ? 0.5 : 0,
          i.count !== undefined ? 0.1 : 0,
          i.wipe ? 0.1 : 0,
        );
        expect(d.riskScore).toBe(riskOf(p, actions));
        expect(d.riskScore).toBe(inherent);

        if (i.confidence < policy.minAutoConfidence) {
          hits.lowConfidence++;
          expect(d.outcome).not.toBe('auto');
        }
        if (inherent > policy.maxAutoRisk) {
          hits.riskAboveAuto++;
          expect(d.outcome).not.toBe('auto');
        }
        if (i.amount > 100) {
          hits.amountAboveReview++;
          expect(d.outcome).not.toBe('auto');
        }
        if (inherent > policy.denyAboveRisk) {
          hits.riskAboveCeiling++;
          expect(d.outcome).toBe('deny');
        }
        if (i.amount > 1000) {
          hits.amountAboveDeny++;
          expect(d.outcome).toBe('deny');
        }
        if (i.wipe) {
          hits.wipe++;
          expect(d.outcome).toBe('deny');
          expect(d.tier).toBe(0);
          expect(d.rules).toContainEqual(expect.objectContaining({ ruleId: 'denied-action:wipe', result: 'deny' }));
        }
      }),
      { numRuns: 500 },
    );
    for (const [name, n] of Object.entries(hits))
      expect(n, `runs where '${name}' held`).toBeGreaterThanOrEqual(MIN_EXERCISED);
  });

  it('auto exactly when every threshold and limit is met', () => {
    let autos = 0;
    let others = 0;
    fc.assert(
      fc.property(fc.oneof(arbInput, arbNearAuto), (i) => {
        const d = evaluateGate(build(i), mkObs(i.dataClasses), model);
        const expectAuto =
          !i.wipe &&
          i.confidence >= policy.minAutoConfidence &&
          d.riskScore <= policy.maxAutoRisk &&
          i.amount <= 100 &&
          (i.recipients === undefined || i.recipients <= 50) &&
          (i.count === undefined || i.count <= 10) &&
          !i.dataClasses.includes('sensitive');
        if (expectAuto) autos++;
        else others++;
        expect(d.outcome === 'auto').toBe(expectAuto);
      }),
      { numRuns: 500 },
    );
    // Both halves of "exactly" were tested.
    expect(autos, 'runs that met every threshold').toBeGreaterThanOrEqual(MIN_EXERCISED);
    expect(others, 'runs that missed one').toBeGreaterThanOrEqual(MIN_EXERCISED);
  });

  it('every decision is a valid, self-explaining GateDecision and is deterministic', () => {
    const outcomes = { auto: 0, review: 0, deny: 0 };
    fc.assert(
      fc.property(fc.oneof(arbInput, arbNearAuto), (i) => {
        const p = build(i);
        const o = mkObs(i.dataClasses);
        const d = evaluateGate(p, o, model);
        checkInvariants(d);
        expect(evaluateGate(p, o, model)).toEqual(d);
        outcomes[d.outcome]++;
        if (d.outcome === 'review') {
          const asked = d.rules.filter((r) => r.result === 'review').map((r) => r.tier ?? 1);
          expect(d.tier).toBe(Math.min(MAX_TIER, Math.max(...asked)));
        } else expect(d.tier).toBe(0);
      }),
      { numRuns: 500 },
    );
    // Every branch of checkInvariants ran.
    expect(outcomes.deny, 'deny decisions').toBeGreaterThanOrEqual(MIN_EXERCISED);
    expect(outcomes.review, 'review decisions').toBeGreaterThanOrEqual(MIN_EXERCISED);
    expect(outcomes.auto, 'auto decisions').toBeGreaterThanOrEqual(MIN_EXERCISED);
  });
});
