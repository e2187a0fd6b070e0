/** The agent machine waiting for a human: the review case's resolution, expiry and its fallback. */
import { describe, expect, it } from 'vitest';
import { T0, auto, deny, review } from '../fixtures.ts';
import { SAFE_ACTION, EXPIRY_DENY, EXPIRY_SAFE, PLAN_1, PLAN_3, MODIFIED_PLAN, Agent, expectFinal } from './harness.ts';

describe('agent machine: review', () => {
  const CASE_1 = 'ep-1.case-1';
  const CASE_2 = 'ep-1.case-2';

  it('case.opened with the current effect id clears the effect and links the case; a stale one is refused', () => {
    const a = new Agent({ decisions: [review(1)] }).toGate();
    a.refuse({ type: 'case.opened', effectId: 'ep-1:openCase:ep-1.case-1:2', caseId: CASE_1, at: a.now + 1 });
    a.caseOpened();
    expect(a.state).toBe('awaitingReview');
    expect(a.ctx.effect).toBeNull();
    expect(a.ctx.caseIds).toEqual([CASE_1]);
    // Delivered twice: the effect is gone, so the duplicate is refused.
    a.refuse({ type: 'case.opened', effectId: 'ep-1:openCase:ep-1.case-1:1', caseId: CASE_1, at: a.now + 1 });
  });

  it('approved → acting with resolution approved and approvedTier; done → approved', () => {
    const a = new Agent({ decisions: [review(2)] }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'approved', { tier: 2 }));
    expect(a.state).toBe('acting');
    expect(a.ctx.resolution).toBe('approved');
    expect(a.ctx.approvedTier).toBe(2);
    expect(a.ctx.effect).toEqual({ id: 'ep-1:execute:0:1', kind: 'execute', attempt: 1, step: 0 });
    expect(a.gateCalls).toHaveLength(1);
    a.acted();
    expectFinal(a, 'done', 'approved');
    expect(a.ctx.caseIds).toEqual([CASE_1]);
  });

  it('an approval at a higher tier than asked (after escalation) is recorded as approvedTier', () => {
    const a = new Agent({ decisions: [review(1)] }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'approved', { tier: 3, decidedBy: ['erin', 'frank'] }));
    expect(a.ctx.approvedTier).toBe(3);
  });

  it('modified → re-gated; review at tier ≤ approvedTier → acting with the modified plan, outcome modified', () => {
    const a = new Agent({ decisions: [review(2), review(2)] }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'modified', { tier: 2, plan: MODIFIED_PLAN }));
    expect(a.gateCalls).toEqual([PLAN_1, MODIFIED_PLAN]);
    expect(a.state).toBe('acting');
    expect(a.ctx.plan).toEqual(MODIFIED_PLAN);
    expect(a.ctx.resolution).toBe('modified');
    expect(a.ctx.approvedTier).toBe(2);
    a.acted();
    expectFinal(a, 'done', 'modified');
  });

  it('modified → re-gated at a lower tier → acting', () => {
    const a = new Agent({ decisions: [review(2), review(1)] }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'modified', { tier: 2, plan: MODIFIED_PLAN }));
    expect(a.state).toBe('acting');
  });

  it('modified → re-gated auto → acting, outcome still modified', () => {
    const a = new Agent({ decisions: [review(1), auto()] }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'modified', { tier: 1, plan: MODIFIED_PLAN }));
    expect(a.state).toBe('acting');
    expect(a.ctx.resolution).toBe('modified');
    a.acted();
    expectFinal(a, 'done', 'modified');
  });

  it('modified → re-gated deny → denied', () => {
    const a = new Agent({ decisions: [review(1), deny('modified amount over the hard limit')] }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'modified', { tier: 1, plan: MODIFIED_PLAN }));
    expectFinal(a, 'denied', 'denied');
    expect(a.snap.output?.reason).toBe('modified amount over the hard limit');
  });

  it('modified → re-gated at a tier above approvedTier → a second case .case-2; the old case is ignored', () => {
    const a = new Agent({ decisions: [review(1), review(2)] }).toGate().caseOpened();
    const first = a.resolution(CASE_1, 'modified', { tier: 1, plan: MODIFIED_PLAN });
    a.resolved(first);
    expect(a.state).toBe('awaitingReview');
    expect(a.ctx.approvedTier).toBe(1);
    expect(a.ctx.effect).toEqual({ id: 'ep-1:openCase:ep-1.case-2:1', kind: 'openCase', attempt: 1, caseId: CASE_2 });
    a.caseOpened();
    expect(a.ctx.caseIds).toEqual([CASE_1, CASE_2]);
    // The first case's resolution delivered again, or any other resolution of case-1: ignored.
    a.refuse({ type: 'case.resolved', resolution: first, at: a.now + 1 });
    a.refuse({ type: 'case.resolved', resolution: { ...first, outcome: 'approved' }, at: a.now + 1 });
    a.resolved(a.resolution(CASE_2, 'approved', { tier: 2, plan: MODIFIED_PLAN }));
    expect(a.state).toBe('acting');
    expect(a.ctx.approvedTier).toBe(2);
    expect(a.ctx.plan).toEqual(MODIFIED_PLAN);
    a.acted();
    // A reviewer changed the plan; a higher tier then approved the change: the episode counts as modified.
    expectFinal(a, 'done', 'modified');
  });

  // Regression, fixed (src/machines/agent.ts, guard `caseIsCurrent`): while the agent waits for case-2 to be opened,
  // `caseIds.at(-1)` is still case-1, so a late or duplicate resolution of case-1 passes the guard and
  // is taken as the answer to case-2 (here it re-runs the modification and re-gates). Expected: only a
  // resolution of the case being waited on (effect.caseId = case-2) is accepted; got: case-1 accepted.
  it('regression: an old case resolution is ignored also before the new case is opened', () => {
    const a = new Agent({ decisions: [review(1), review(2)] }).toGate().caseOpened();
    const first = a.resolution(CASE_1, 'modified', { tier: 1, plan: MODIFIED_PLAN });
    a.resolved(first);
    expect(a.ctx.effect?.caseId).toBe(CASE_2);
    a.refuse({ type: 'case.resolved', resolution: first, at: a.now + 1 });
  });

  it('a resolution for a case id this agent never asked for is ignored', () => {
    const a = new Agent({ decisions: [review(1)] }).toGate();
    a.refuse({ type: 'case.resolved', resolution: a.resolution('ep-1.case-2', 'approved'), at: a.now + 1 });
    a.refuse({ type: 'case.resolved', resolution: a.resolution('ep-9.case-1', 'approved'), at: a.now + 1 });
    a.caseOpened();
    a.refuse({ type: 'case.resolved', resolution: a.resolution('ep-1.case-0', 'rejected'), at: a.now + 1 });
  });

  it('a resolution that arrives before case.opened is still accepted; the late case.opened is refused', () => {
    const a = new Agent({ decisions: [review(1)] }).toGate();
    const openId = a.effectId;
    a.resolved(a.resolution(CASE_1, 'approved'));
    expect(a.state).toBe('acting');
    expect(a.ctx.caseIds).toEqual([CASE_1]);
    a.refuse({ type: 'case.opened', effectId: openId, caseId: CASE_1, at: a.now + 1 });
    a.acted();
    expectFinal(a, 'done', 'approved');
  });

  it('rejected → rejected', () => {
    const a = new Agent({ decisions: [review(1)] }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'rejected', { reason: 'not our policy' }));
    expectFinal(a, 'rejected', 'rejected');
    expect(a.ctx.caseIds).toEqual([CASE_1]);
    expect(a.snap.output?.reason).toBe('stub gate: review at tier 1');
  });

  it('expired with onExpiry deny → expired', () => {
    const a = new Agent({ decisions: [review(1)], onExpiry: EXPIRY_DENY }).toGate().caseOpened();
    a.resolved(a.resolution(CASE_1, 'expired', { tier: 3 }));
    expectFinal(a, 'expired', 'expired');
  });

  it('expired with onExpiry safeAction → acting the safe action plan; done → outcome expired', () => {
    const a = new Agent({ decisions: [review(2)], onExpiry: EXPIRY_SAFE }).toGate(PLAN_3).caseOpened();
    const at = T0 + 3_600_000;
    a.resolved(a.resolution(CASE_1, 'expired', { tier: 3, at }));
    expect(a.state).toBe('acting');
    expect(a.ctx.resolution).toBe('expired');
    expect(a.ctx.plan).toEqual({
      ...PLAN_3,
      id: 'plan-3.fallback',
      actions: [SAFE_ACTION],
      rationale: expect.stringContaining(new Date(at).toISOString()),
    });
    expect(a.ctx.effect).toEqual({ id: 'ep-1:execute:0:1', kind: 'execute', attempt: 1, step: 0 });
    // The fallback is not gated again.
    expect(a.gateCalls).toHaveLength(1);
    a.acted();
    expectFinal(a, 'done', 'expired');
  });

  it('with onExpiry safeAction, rejected and approved resolutions are unaffected', () => {
    const r = new Agent({ decisions: [review(1)], onExpiry: EXPIRY_SAFE }).toGate().caseOpened();
    r.resolved(r.resolution(CASE_1, 'rejected'));
    expectFinal(r, 'rejected', 'rejected');
    const ok = new Agent({ decisions: [review(1)], onExpiry: EXPIRY_SAFE }).toGate().caseOpened();
    ok.resolved(ok.resolution(CASE_1, 'approved'));
    expect(ok.ctx.resolution).toBe('approved');
    expect(ok.ctx.plan).toEqual(PLAN_1);
  });

  it('case events outside awaitingReview are not accepted', () => {
    const a = new Agent();
    a.refuse({ type: 'case.resolved', resolution: a.resolution(CASE_1, 'approved'), at: a.now + 1 });
    a.toGate();
    expect(a.state).toBe('acting');
    a.refuse({ type: 'case.resolved', resolution: a.resolution(CASE_1, 'approved'), at: a.now + 1 });
    a.refuse({ type: 'case.opened', effectId: a.effectId, caseId: CASE_1, at: a.now + 1 });
  });
});
