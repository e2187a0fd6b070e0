/** The review case's escalation: by a reviewer, and by missed acknowledge and resolve deadlines. */
import { describe, expect, it } from 'vitest';
import { T0 } from '../fixtures.ts';
import { LEASE_MS, PLAN, R, Case, expectClosed } from './harness.ts';

describe('review case: escalation', () => {
  it('timer.ack in queued escalates to tier 2 with new deadlines from event.at', () => {
    const c = new Case();
    c.refuse({ type: 'timer.ack', dueAt: T0 + 59_999, at: T0 + 60_000 });
    c.fire('ack');
    const at = T0 + 60_000;
    expect(c.state).toBe('queued');
    expect(c.ctx.tier).toBe(2);
    expect(c.ctx.enteredTierAt).toBe(at);
    expect(c.ctx.timers).toEqual({ ack: at + 30_000, resolve: at + 120_000 });
    expect(c.ctx.escalations).toBe(1);
    expect(c.ctx.claim).toBeNull();
    expect(c.ctx.approvals).toEqual([]);
    expect(c.lastHistory()).toEqual({ at, kind: 'escalated', tier: 1, note: 'acknowledge deadline missed' });
    // The tier-1 deadlines are stale now.
    c.refuse({ type: 'timer.ack', dueAt: T0 + 60_000, at: at + 1 });
    c.refuse({ type: 'timer.resolve', dueAt: T0 + 300_000, at: T0 + 300_000 });
    // Tier 2 needs a lead.
    c.cannot('claim', R.bob, 'tier-role', true);
    c.do('claim', R.dave);
    expect(c.state).toBe('claimed');
  });

  it('timer.resolve escalates from queued', () => {
    const c = new Case().do('claim', R.bob, T0 + 1_000).do('release', R.bob, T0 + 2_000);
    c.refuse({ type: 'timer.resolve', dueAt: T0 + 300_001, at: T0 + 300_001 });
    c.fire('resolve');
    expect(c.state).toBe('queued');
    expect(c.ctx.tier).toBe(2);
    expect(c.ctx.timers).toEqual({ ack: T0 + 300_000 + 30_000, resolve: T0 + 300_000 + 120_000 });
    expect(c.lastHistory()).toEqual({ at: T0 + 300_000, kind: 'escalated', tier: 1, note: 'resolve deadline missed' });
  });

  it('timer.resolve escalates from claimed: claim and lease dropped', () => {
    const c = new Case().do('claim', R.bob, T0 + 250_000);
    c.refuse({ type: 'timer.resolve', dueAt: T0 + 299_000, at: T0 + 299_000 });
    c.fire('resolve');
    expect(c.state).toBe('queued');
    expect(c.ctx.tier).toBe(2);
    expect(c.ctx.claim).toBeNull();
    expect(c.ctx.timers).toEqual({ ack: T0 + 300_000 + 30_000, resolve: T0 + 300_000 + 120_000 });
    expect(c.ctx.firstClaimAt).toBe(T0 + 250_000);
    // The former claimant's lease firing is stale, and he cannot decide any more.
    c.refuse({ type: 'timer.lease', dueAt: T0 + 250_000 + LEASE_MS, at: T0 + 300_000 });
    c.cannot('approve', R.bob, 'tier-role', true);
  });

  it('manual escalate by the claimant → queued at the next tier', () => {
    const c = new Case().do('claim', R.bob);
    c.cannot('escalate', R.carol, 'not-claimant', false);
    c.cannot('escalate', R.mallory, 'tier-role', true);
    c.do('escalate', R.bob, T0 + 7_000);
    expect(c.state).toBe('queued');
    expect(c.ctx.tier).toBe(2);
    expect(c.ctx.claim).toBeNull();
    expect(c.ctx.escalations).toBe(1);
    expect(c.ctx.timers).toEqual({ ack: T0 + 7_000 + 30_000, resolve: T0 + 7_000 + 120_000 });
    expect(c.lastHistory()).toEqual({ at: T0 + 7_000, kind: 'escalated', tier: 1, by: 'bob', note: 'needs a lead' });
  });

  it('manual escalate of a queued case by a reviewer of the tier', () => {
    const c = new Case();
    c.cannot('escalate', R.dave, 'tier-role', true);
    c.do('escalate', R.carol);
    expect(c.state).toBe('queued');
    expect(c.ctx.tier).toBe(2);
  });

  it('escalation from the last tier → expired with resolution outcome expired (ack and resolve)', () => {
    const viaAck = new Case();
    viaAck.fire('ack').fire('ack');
    expect(viaAck.ctx.tier).toBe(3);
    expect(viaAck.ctx.escalations).toBe(2);
    const at = viaAck.ctx.timers.ack!;
    viaAck.fire('ack');
    expect(viaAck.ctx.resolution).toEqual({
      caseId: 'ep-1.case-1',
      outcome: 'expired',
      plan: PLAN,
      tier: 3,
      decidedBy: [],
      reason: 'acknowledge deadline of the last tier missed',
      at,
    });
    expect(viaAck.lastHistory()).toEqual({
      at,
      kind: 'expired',
      tier: 3,
      note: 'acknowledge deadline of the last tier missed',
    });
    expectClosed(viaAck, 'expired');

    const viaResolve = new Case({ tier: 3 }).do('claim', R.erin);
    viaResolve.fire('resolve');
    expect(viaResolve.ctx.resolution).toMatchObject({
      outcome: 'expired',
      tier: 3,
      decidedBy: [],
      reason: 'resolve deadline of the last tier missed',
    });
    expectClosed(viaResolve, 'expired');

    const queuedResolve = new Case({ tier: 3 });
    queuedResolve.refuse({ type: 'timer.resolve', dueAt: T0 + 1, at: T0 + 1 });
    queuedResolve.fire('resolve');
    expectClosed(queuedResolve, 'expired');
  });

  it('escalate at the last tier is refused: last-tier', () => {
    const c = new Case({ tier: 3 });
    c.cannot('escalate', R.erin, 'last-tier', false);
    c.do('claim', R.erin);
    c.cannot('escalate', R.erin, 'last-tier', false);
  });
});
