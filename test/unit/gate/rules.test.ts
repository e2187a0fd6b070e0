import { describe, expect, it } from 'vitest';
import { evaluateGate } from '../../../src/policy/index.ts';
import { MAX_TIER, withPolicy, mkPlan, mkObs, refund, gate, rule, checkInvariants } from './fixtures.ts';

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
