/** The agent machine's outcomes, and the freshness rule applied at the gate. */
import { describe, expect, it } from 'vitest';
import type { FreshnessConfig } from '../../../src/contracts/model-config.ts';
import type { Observation } from '../../../src/contracts/observation.ts';
import { T0, auto, deny, mkObservation, review } from '../fixtures.ts';
import { PLAN_1, PLAN_2, MODIFIED_PLAN, permanent, Agent } from './harness.ts';

describe('agent machine: outcomes', () => {
  it('every EpisodeOutcome is reachable and equals the actor output', () => {
    const outcomes = new Map<string, Agent>();
    outcomes.set('autoActed', new Agent().toGate().acted());
    {
      const a = new Agent({ decisions: [review(1)] }).toGate().caseOpened();
      outcomes.set('approved', a.resolved(a.resolution('ep-1.case-1', 'approved')).acted());
    }
    {
      const a = new Agent({ decisions: [review(1), auto()] }).toGate().caseOpened();
      outcomes.set('modified', a.resolved(a.resolution('ep-1.case-1', 'modified', { plan: MODIFIED_PLAN })).acted());
    }
    {
      const a = new Agent({ decisions: [review(1)] }).toGate().caseOpened();
      outcomes.set('rejected', a.resolved(a.resolution('ep-1.case-1', 'rejected')));
    }
    outcomes.set('denied', new Agent({ decisions: [deny()] }).toGate());
    {
      const a = new Agent({ decisions: [review(1)] }).toGate().caseOpened();
      outcomes.set('expired', a.resolved(a.resolution('ep-1.case-1', 'expired')));
    }
    outcomes.set('compensated', new Agent().toGate(PLAN_2).acted().failed('action.failed', permanent()).compensated());
    outcomes.set('failed', new Agent().failed('perceive.failed', permanent()));

    for (const [outcome, a] of outcomes) {
      expect(a.snap.status, outcome).toBe('done');
      expect(a.ctx.outcome, outcome).toBe(outcome);
      expect(a.snap.output?.outcome, outcome).toBe(outcome);
    }
    expect([...outcomes.keys()].sort()).toEqual([
      'approved',
      'autoActed',
      'compensated',
      'denied',
      'expired',
      'failed',
      'modified',
      'rejected',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Freshness (the rule itself: freshness.test.ts; the guarantee as a property: freshness.property.test.ts)
// ---------------------------------------------------------------------------------------------------

describe('agent machine: freshness', () => {
  const MIN = 60_000;
  const limits = (onStale: FreshnessConfig['onStale'], maxReperceives = 1): FreshnessConfig => ({
    sources: { test: { maxAgeMs: 10 * MIN } },
    onStale,
    maxReperceives,
  });
  const observedAt = (at: number): Observation => ({
    ...mkObservation(),
    provenance: { source: 'test', observedAt: new Date(at).toISOString(), transforms: [] },
  });

  it('stale at the gate with onStale reperceive → perceiving again, with new effect ids; fresh data then runs on its own', () => {
    const a = new Agent({ freshness: limits('reperceive') }).perceived(T0 + 1).planned(PLAN_1, T0 + 11 * MIN);
    expect(a.state).toBe('perceiving');
    expect(a.ctx.decision?.ruleId).toBe('freshness.stale');
    expect(a.ctx.reperceived).toBe(1);
    expect(a.ctx.effect).toEqual({ id: 'ep-1:perceive:r1:1', kind: 'perceive', attempt: 1 });
    a.perceived(T0 + 12 * MIN, observedAt(T0 + 12 * MIN));
    expect(a.ctx.effect?.id).toBe('ep-1:plan:r1:1');
    a.planned(PLAN_1, T0 + 13 * MIN);
    expect(a.state).toBe('acting');
    expect(a.ctx.resolution).toBe('auto');
    expect(a.ctx.decision?.rules.find((r) => r.ruleId === 'freshness.fresh')?.result).toBe('pass');
  });

  it('still stale after the last re-perception → review, the reason names the staleness', () => {
    const a = new Agent({ freshness: limits('reperceive', 1) }).perceived(T0).planned(PLAN_1, T0 + 11 * MIN);
    a.perceived(T0 + 12 * MIN).planned(PLAN_1, T0 + 13 * MIN);
    expect(a.state).toBe('awaitingReview');
    expect(a.ctx.decision?.outcome).toBe('review');
    expect(a.ctx.decision?.reasons[0]).toMatch(
      /stale data: the observation from 'test'.*13m 00s old.*limit 10m 00s.*perceived again 1 time/,
    );
  });

  it('an approval arriving after the data went stale is gated again at its time: a new case shows the staleness, its approval acts', () => {
    const a = new Agent({ decisions: [review(1)], freshness: limits('review') })
      .perceived(T0)
      .planned(PLAN_1, T0 + MIN)
      .caseOpened(T0 + MIN);
    expect(a.ctx.decision?.ruleId).toBe('stub-review');
    a.resolved(a.resolution('ep-1.case-1', 'approved', { at: T0 + 30 * MIN }));
    expect(a.state).toBe('awaitingReview');
    expect(a.ctx.effect?.caseId).toBe('ep-1.case-2');
    expect(a.ctx.decision?.ruleId).toBe('freshness.stale');
    a.caseOpened(T0 + 31 * MIN).resolved(a.resolution('ep-1.case-2', 'approved', { at: T0 + 40 * MIN }));
    expect(a.state).toBe('acting');
    expect(a.ctx.resolution).toBe('approved');
    expect(a.ctx.staleAccepted).toBe(true);
  });

  it('a late approval with onStale reperceive perceives again (the approval concerned the old data)', () => {
    const a = new Agent({ decisions: [review(1)], freshness: limits('reperceive') })
      .perceived(T0)
      .planned(PLAN_1, T0 + MIN)
      .caseOpened(T0 + MIN);
    a.resolved(a.resolution('ep-1.case-1', 'approved', { at: T0 + 30 * MIN }));
    expect(a.state).toBe('perceiving');
    expect(a.ctx.resolution).toBeNull();
    expect(a.ctx.approvedTier).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------
// Coverage
// ---------------------------------------------------------------------------------------------------
