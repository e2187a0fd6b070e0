import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Plan, type DataClass } from '../../../src/contracts/index.ts';
import { evaluateGate, riskOf } from '../../../src/policy/index.ts';
import {
  actions,
  policy,
  model,
  MAX_TIER,
  MIN_EXERCISED,
  type Act,
  mkPlan,
  mkObs,
  refund,
  gate,
  checkInvariants,
} from './fixtures.ts';

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
