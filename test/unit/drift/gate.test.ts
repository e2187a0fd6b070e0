import { beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/contracts/plan.ts';
import { DriftMonitor, driftGate } from '../../../src/policy/drift.ts';
import { model, mkPlan, obs } from './fixtures.ts';

describe('driftGate', () => {
  let auto: Plan;
  beforeAll(() => {
    auto = mkPlan('p-auto', 0.95);
  });

  it('passes auto plans while the model is not tightened, spot-checks a deterministic share of them', async () => {
    const m = await DriftMonitor.open({ models: [model], overrides: { refunds: { spotCheckRate: 0.25 } } });
    const gate = driftGate(model, model.gate, m);
    expect(model.gate(auto, obs).outcome).toBe('auto');
    let spot = 0;
    for (let i = 0; i < 400; i++) {
      const d = gate({ ...auto, id: `ep-${i}.plan-1` }, obs);
      if (d.outcome === 'review') {
        spot++;
        expect(d.ruleId).toBe('drift-spot-check');
      }
      expect(gate({ ...auto, id: `ep-${i}.plan-1` }, obs).outcome).toBe(d.outcome); // same plan, same decision
    }
    expect(spot / 400).toBeGreaterThan(0.18);
    expect(spot / 400).toBeLessThan(0.32);
  });

  it('review-all: once tightened every auto plan goes to review with the figures as the reason; denials stay denials', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { window: 5, minSamples: 3, spotCheckRate: 0 } },
    });
    for (let i = 0; i < 3; i++)
      m.record('refunds', {
        caseId: `y${i}.case-1`,
        rule: 'confidence-threshold',
        outcome: 'modified',
        confidence: 0.7,
        at: i,
      });
    const gate = driftGate(model, model.gate, m);
    const d = gate(auto, obs);
    expect(d).toMatchObject({ outcome: 'review', ruleId: 'drift-tightened', tier: 1 });
    expect(d.reasons[0]).toMatch(/overrode 100\.0% of the last 3 decided plans of refunds \(limit 30%\)/);
    const tooMuch = mkPlan('p-deny', 0.99, [
      {
        type: 'issueRefund',
        args: { orderId: 'ORD-00000001', amount: 2500, currency: 'EUR', iban: 'DE89370400440532013000' },
      },
    ]);
    expect(gate(tooMuch, obs).outcome).toBe('deny');
  });

  it('thresholds mode: raises minAutoConfidence and lowers maxAutoRisk for that model only', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: {
        refunds: {
          window: 5,
          minSamples: 3,
          spotCheckRate: 0,
          tighten: { mode: 'thresholds', minAutoConfidence: 0.97, maxAutoRisk: 0.15 },
        },
      },
    });
    for (let i = 0; i < 3; i++)
      m.record('refunds', {
        caseId: `z${i}.case-1`,
        rule: 'confidence-threshold',
        outcome: 'rejected',
        confidence: 0.7,
        at: i,
      });
    const gate = driftGate(model, model.gate, m);
    expect(gate(mkPlan('a', 0.95), obs)).toMatchObject({ outcome: 'review', ruleId: 'drift-tightened' });
    expect(gate(mkPlan('b', 0.98), obs).outcome).toBe('auto'); // declineRefund: inherent risk 0.1 ≤ 0.15
    const refund = mkPlan('c', 0.99, [
      {
        type: 'issueRefund',
        args: { orderId: 'ORD-00000001', amount: 20, currency: 'EUR', iban: 'DE89370400440532013000' },
      },
    ]);
    expect(gate(refund, obs).reasons[0]).toMatch(/risk 0\.2 above the tightened limit 0\.15/);
  });
});
