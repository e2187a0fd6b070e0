import { describe, expect, it } from 'vitest';
import { DriftMonitor, type DriftEvent } from '../../../src/policy/drift.ts';
import { model, MemoryMeta } from './fixtures.ts';

describe('DriftMonitor: figures', () => {
  it('counts override rate per model and rule, calibration buckets and the Brier score; expired cases are not decisions', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { minSamples: 1000, cusumThreshold: 1000 } },
    });
    const rec = (
      i: number,
      rule: string,
      outcome: 'approved' | 'modified' | 'rejected' | 'expired',
      confidence: number,
    ) => m.record('refunds', { caseId: `ep-${i}.case-1`, rule, outcome, confidence, at: i });
    rec(1, 'confidence-threshold', 'approved', 0.75);
    rec(2, 'confidence-threshold', 'approved', 0.65);
    rec(3, 'confidence-threshold', 'modified', 0.55);
    rec(4, 'limit:issueRefund.amount', 'rejected', 0.95);
    rec(5, 'limit:issueRefund.amount', 'expired', 0.9);
    rec(5, 'limit:issueRefund.amount', 'approved', 0.9); // the same case again: ignored
    const r = m.report().models[0]!;
    expect(r.total).toMatchObject({ decided: 4, approved: 2, modified: 1, rejected: 1, expired: 1, overrideRate: 0.5 });
    const byRule = Object.fromEntries(r.rules.map((x) => [x.rule, x]));
    expect(byRule['confidence-threshold']).toMatchObject({ decided: 3, overrideRate: 0.3333 });
    expect(byRule['limit:issueRefund.amount']).toMatchObject({ decided: 1, rejected: 1, expired: 1, overrideRate: 1 });
    // Brier: (0.75-1)² + (0.65-1)² + (0.55-0)² + (0.95-0)² = 0.0625 + 0.1225 + 0.3025 + 0.9025 = 1.39 → /4
    expect(r.total.brier).toBeCloseTo(0.3475, 4);
    const b9 = r.calibration.find((c) => c.bucket === '0.9-1.0')!;
    expect(b9).toMatchObject({ n: 1, approvalRate: 0 });
    const b7 = r.calibration.find((c) => c.bucket === '0.7-0.8')!;
    expect(b7).toMatchObject({ n: 1, approvalRate: 1, meanConfidence: 0.75 });
    expect(r.window).toMatchObject({ samples: 4, overrides: 2, overrideRate: 0.5 });
    expect(r.tightened).toBeNull();
  });

  it('tightens once the window passes the limit (not before minSamples), audits it with the figures, and calls the hook', async () => {
    const audits: unknown[] = [];
    const events: DriftEvent[] = [];
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { maxOverrideRate: 0.3, window: 10, minSamples: 6, cusumThreshold: 1000 } },
      audit: async (d) => void audits.push(...d),
      onTightened: (e) => void events.push(e),
    });
    const outcomes = ['rejected', 'rejected', 'modified', 'approved', 'rejected'] as const;
    outcomes.forEach((o, i) =>
      expect(
        m.record('refunds', {
          caseId: `e${i}.case-1`,
          rule: 'confidence-threshold',
          outcome: o,
          confidence: 0.9,
          at: i,
        }),
      ).toBeUndefined(),
    );
    expect(m.tightening('refunds')).toBeUndefined(); // 5 samples < minSamples
    const event = m.record('refunds', {
      caseId: 'e5.case-1',
      rule: 'confidence-threshold',
      outcome: 'approved',
      confidence: 0.9,
      at: 5,
    });
    expect(event?.tightening).toMatchObject({ samples: 6, overrides: 4, overrideRate: 0.6667, maxOverrideRate: 0.3 });
    await m.flush();
    expect(events).toHaveLength(1);
    expect(audits).toEqual([
      expect.objectContaining({
        kind: 'drift.tightened',
        actor: 'drift/refunds',
        data: expect.objectContaining({ overrideRate: 0.6667, samples: 6, window: 10 }),
      }),
    ]);
    // Once tightened it stays so (no second event) until an operator relaxes it.
    m.record('refunds', {
      caseId: 'e6.case-1',
      rule: 'confidence-threshold',
      outcome: 'rejected',
      confidence: 0.9,
      at: 6,
    });
    await m.flush();
    expect(events).toHaveLength(1);
    expect(await m.relax('refunds', 'ops-1', 'planner rolled back')).toBe(true);
    expect(m.tightening('refunds')).toBeUndefined();
    expect(audits.at(-1)).toMatchObject({ kind: 'drift.relaxed', by: 'ops-1' });
    expect(m.report().models[0]!.window.samples).toBe(0);
  });

  it('per rule, a CUSUM notices a rule whose override rate jumps (spot checks of auto plans), even when the whole window is fine', async () => {
    const m = await DriftMonitor.open({
      models: [model],
      overrides: { refunds: { maxOverrideRate: 0.3, window: 100, minSamples: 20 } },
    });
    for (let i = 0; i < 40; i++)
      m.record('refunds', {
        caseId: `a${i}.case-1`,
        rule: 'confidence-threshold',
        outcome: 'approved',
        confidence: 0.6,
        at: i,
      });
    // p0 = 0.1, p1 = 0.3: an override adds ln 3 = 1.099, an approval ln(0.7/0.9) = -0.251.
    const seq = ['rejected', 'approved', 'rejected', 'rejected'] as const;
    seq.forEach((o, i) =>
      m.record('refunds', {
        caseId: `s${i}.case-1`,
        rule: 'drift-spot-check',
        outcome: o,
        confidence: 0.95,
        at: 40 + i,
      }),
    );
    expect(m.tightening('refunds')).toBeUndefined();
    expect(m.report().models[0]!.rules.find((r) => r.rule === 'drift-spot-check')!.cusum).toBeCloseTo(3.045, 2);
    m.record('refunds', {
      caseId: 's4.case-1',
      rule: 'drift-spot-check',
      outcome: 'modified',
      confidence: 0.95,
      at: 45,
    });
    expect(m.tightening('refunds')).toMatchObject({
      rule: 'drift-spot-check',
      samples: 5,
      overrides: 4,
      overrideRate: 0.8,
    });
    expect(m.tightening('refunds')!.cusum).toBeCloseTo(4.143, 2);
    expect(m.report().models[0]!.window.overrideRate).toBeLessThan(0.3);
  });

  it('the CUSUM stays quiet at an acceptable override rate (10 %) over a long run', async () => {
    const m = await DriftMonitor.open({ models: [model], overrides: { refunds: { maxOverrideRate: 0.3 } } });
    for (let i = 0; i < 1000; i++)
      m.record('refunds', {
        caseId: `q${i}.case-1`,
        rule: 'risk-threshold',
        outcome: i % 10 === 3 ? 'rejected' : 'approved',
        confidence: 0.7,
        at: i,
      });
    expect(m.tightening('refunds')).toBeUndefined();
    expect(m.report().models[0]!.rules[0]!.cusum).toBeLessThan(2);
  });

  it('persists its state in the store meta and picks it up again (tightening survives a restart)', async () => {
    const store = new MemoryMeta();
    const m1 = await DriftMonitor.open({
      store,
      models: [model],
      overrides: { refunds: { window: 5, minSamples: 3, cusumThreshold: 1000 } },
    });
    for (let i = 0; i < 3; i++)
      m1.record('refunds', {
        caseId: `x${i}.case-1`,
        rule: 'risk-threshold',
        outcome: 'rejected',
        confidence: 0.8,
        at: i,
      });
    await m1.close();
    expect(store.data.has('drift')).toBe(true);
    const m2 = await DriftMonitor.open({ store, models: [model] });
    expect(m2.tightening('refunds')).toMatchObject({ overrideRate: 1, samples: 3 });
    expect(m2.report().models[0]!.total.decided).toBe(3);
    // A case recorded before the restart is not counted twice.
    m2.record('refunds', { caseId: 'x2.case-1', rule: 'risk-threshold', outcome: 'rejected', confidence: 0.8, at: 9 });
    expect(m2.report().models[0]!.total.decided).toBe(3);
    expect(DriftMonitor.reportOf((await DriftMonitor.load(store))!).models[0]!.tightened).not.toBeNull();
  });
});
