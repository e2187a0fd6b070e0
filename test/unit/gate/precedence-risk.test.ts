import { describe, expect, it } from 'vitest';
import { PolicyConfig } from '../../../src/contracts/index.ts';
import { evaluateGate, riskOf, tierForRisk } from '../../../src/policy/index.ts';
import { actions, policyInput, policy, model, mkPlan, mkObs, refund, gate, rule, checkInvariants } from './fixtures.ts';

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
