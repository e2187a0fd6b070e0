/** The review case from opening to a decision: opening, claim, release, renew, the lease, decisions. */
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { explainCaseRejection, reviewCaseMachine } from '../../../src/machines/review-case.ts';
import { T0 } from '../fixtures.ts';
import { LEASE_MS, PLAN, NEW_PLAN, DECISION, R, caseInput, command, Case, expectClosed } from './harness.ts';

describe('review case: opening', () => {
  it('starts queued with ack and resolve deadlines from openedAt', () => {
    const c = new Case();
    expect(c.state).toBe('queued');
    expect(c.snap.status).toBe('active');
    expect(c.ctx.timers).toEqual({ ack: T0 + 60_000, resolve: T0 + 300_000 });
    expect(c.ctx.tier).toBe(1);
    expect(c.ctx.enteredTierAt).toBe(T0);
    expect(c.ctx.requestedBy).toBe('alice');
    expect(c.ctx.claim).toBeNull();
    expect(c.ctx.firstClaimAt).toBeNull();
    expect(c.ctx.approvals).toEqual([]);
    expect(c.ctx.escalations).toBe(0);
    expect(c.ctx.plan).toEqual(PLAN);
    expect(c.ctx.proposedPlan).toEqual(PLAN);
    expect(c.ctx.modified).toBe(false);
    expect(c.ctx.resolution).toBeNull();
    expect(c.ctx.history).toEqual([{ at: T0, kind: 'opened', tier: 1, note: DECISION.reasons.join('; ') }]);
  });

  it('opens at the tier the gate asked for, with that tier’s deadlines', () => {
    const c = new Case({ tier: 2, openedAt: T0 + 5 });
    expect(c.ctx.tier).toBe(2);
    expect(c.ctx.timers).toEqual({ ack: T0 + 5 + 30_000, resolve: T0 + 5 + 120_000 });
  });

  it('an unconfigured tier puts the actor in error', () => {
    const actor = createActor(reviewCaseMachine, { input: caseInput({ tier: 4 }) });
    actor.subscribe({ error: () => {} });
    actor.start();
    expect(actor.getSnapshot().status).toBe('error');
    expect(String(actor.getSnapshot().error)).toMatch(/tier 4 is not configured/);
  });
});

describe('review case: claim, release, renew, lease', () => {
  it('claim by a reviewer with the tier role → claimed; lease armed, ack cleared, firstClaimAt set', () => {
    const c = new Case().do('claim', R.bob, T0 + 10_000);
    expect(c.state).toBe('claimed');
    expect(c.ctx.claim).toEqual({ reviewer: 'bob', at: T0 + 10_000 });
    expect(c.ctx.firstClaimAt).toBe(T0 + 10_000);
    expect(c.ctx.timers).toEqual({ resolve: T0 + 300_000, lease: T0 + 10_000 + LEASE_MS });
    expect(c.lastHistory()).toEqual({ at: T0 + 10_000, kind: 'claimed', tier: 1, by: 'bob' });
  });

  it('claim by a reviewer without the tier role is refused: tier-role, forbidden', () => {
    const c = new Case();
    c.cannot('claim', R.mallory, 'tier-role', true);
    c.cannot('claim', R.dave, 'tier-role', true); // a lead, but this is the frontline tier
    expect(explainCaseRejection('queued', c.ctx, command('claim', R.dave, T0))?.reason).toMatch(/frontline/);
  });

  it('claim by the requester is refused: separation-of-duties, forbidden', () => {
    new Case().cannot('claim', R.alice, 'separation-of-duties', true);
  });

  it('without a requester anyone with the tier role may claim', () => {
    const c = new Case({ requestedBy: undefined });
    expect(c.ctx.requestedBy).toBeNull();
    c.do('claim', R.alice);
    expect(c.state).toBe('claimed');
  });

  it('a claimed case cannot be claimed again: already-claimed, not forbidden', () => {
    const c = new Case().do('claim', R.bob);
    c.cannot('claim', R.carol, 'already-claimed', false);
    c.cannot('claim', R.bob, 'already-claimed', false);
  });

  it('release by the claimant → queued; release by anyone else is refused (not-claimant)', () => {
    const c = new Case().do('claim', R.bob, T0 + 10_000);
    c.cannot('release', R.carol, 'not-claimant', false);
    c.cannot('release', R.dave, 'tier-role', true);
    c.do('release', R.bob, T0 + 20_000);
    expect(c.state).toBe('queued');
    expect(c.ctx.claim).toBeNull();
    expect(c.ctx.timers).toEqual({ resolve: T0 + 300_000 });
    expect(c.lastHistory()).toEqual({ at: T0 + 20_000, kind: 'released', tier: 1, by: 'bob', note: 'going on break' });
    // Queued again: commands that need a claim say so.
    c.cannot('release', R.bob, 'not-claimed', false);
    c.cannot('renew', R.bob, 'not-claimed', false);
    c.cannot('approve', R.bob, 'not-claimed', false);
    c.cannot('modify', R.bob, 'not-claimed', false);
    c.cannot('reject', R.bob, 'not-claimed', false);
    // The next claim keeps the first claim time (MTTA).
    c.do('claim', R.carol, T0 + 30_000);
    expect(c.ctx.claim).toEqual({ reviewer: 'carol', at: T0 + 30_000 });
    expect(c.ctx.firstClaimAt).toBe(T0 + 10_000);
  });

  it('renew by the claimant extends the lease from the renewal time; others may not renew', () => {
    const c = new Case().do('claim', R.bob, T0 + 10_000);
    c.cannot('renew', R.carol, 'not-claimant', false);
    c.do('renew', R.bob, T0 + 40_000);
    expect(c.state).toBe('claimed');
    expect(c.ctx.timers.lease).toBe(T0 + 40_000 + LEASE_MS);
    expect(c.ctx.claim).toEqual({ reviewer: 'bob', at: T0 + 10_000 });
    expect(c.lastHistory()).toEqual({ at: T0 + 40_000, kind: 'renewed', tier: 1, by: 'bob' });
  });

  it('timer.lease with the armed dueAt → queued with a lease-expired entry; a stale one is ignored', () => {
    const c = new Case().do('claim', R.bob, T0 + 10_000);
    const firstLease = c.ctx.timers.lease!;
    c.do('renew', R.bob, T0 + 40_000);
    // The firing for the lease before the renewal is stale.
    c.refuse({ type: 'timer.lease', dueAt: firstLease, at: firstLease });
    c.refuse({ type: 'timer.ack', dueAt: T0 + 60_000, at: T0 + 60_000 }); // ack was cleared by the claim
    c.fire('lease');
    expect(c.state).toBe('queued');
    expect(c.ctx.claim).toBeNull();
    expect(c.ctx.timers).toEqual({ resolve: T0 + 300_000 });
    expect(c.lastHistory()).toEqual({ at: T0 + 40_000 + LEASE_MS, kind: 'lease-expired', tier: 1, by: 'bob' });
    // No lease any more: a repeated firing is refused.
    c.refuse({ type: 'timer.lease', dueAt: T0 + 40_000 + LEASE_MS, at: c.now });
    c.do('claim', R.carol);
    expect(c.state).toBe('claimed');
  });
});

describe('review case: decisions', () => {
  it('approve by the claimant → approved with resolution {approved, decidedBy, tier}', () => {
    const c = new Case().do('claim', R.bob, T0 + 1_000);
    c.cannot('approve', R.carol, 'not-claimant', false);
    c.cannot('approve', R.mallory, 'tier-role', true);
    c.send({ type: 'approve', reviewer: R.bob, comment: 'looks right', at: T0 + 2_000 });
    expect(c.ctx.resolution).toEqual({
      caseId: 'ep-1.case-1',
      outcome: 'approved',
      plan: PLAN,
      tier: 1,
      decidedBy: ['bob'],
      at: T0 + 2_000,
    });
    expect(c.lastHistory()).toEqual({ at: T0 + 2_000, kind: 'approved', tier: 1, by: 'bob', note: 'looks right' });
    expect(c.ctx.approvals).toEqual(['bob']);
    expectClosed(c, 'approved');
  });

  it('modify by the claimant → modified with the new plan', () => {
    const c = new Case().do('claim', R.bob).do('modify', R.bob, T0 + 5_000);
    expect(c.ctx.plan).toEqual(NEW_PLAN);
    expect(c.ctx.proposedPlan).toEqual(PLAN);
    expect(c.ctx.modified).toBe(true);
    expect(c.ctx.resolution).toEqual({
      caseId: 'ep-1.case-1',
      outcome: 'modified',
      plan: NEW_PLAN,
      tier: 1,
      decidedBy: ['bob'],
      reason: 'refund the full amount',
      edits: [
        {
          by: 'bob',
          at: T0 + 5_000,
          tier: 1,
          note: 'refund the full amount',
          diff: [{ path: 'actions.0.args.amount', from: 50, to: 20 }],
        },
      ],
      at: T0 + 5_000,
    });
    expect(c.lastHistory()).toEqual({
      at: T0 + 5_000,
      kind: 'modified',
      tier: 1,
      by: 'bob',
      note: 'refund the full amount',
    });
    expectClosed(c, 'modified');
  });

  it('modify by someone else is refused', () => {
    new Case().do('claim', R.bob).cannot('modify', R.carol, 'not-claimant', false);
  });

  it('reject by the claimant → rejected with the reason', () => {
    const c = new Case().do('claim', R.bob);
    c.cannot('reject', R.carol, 'not-claimant', false);
    c.do('reject', R.bob, T0 + 9_000);
    expect(c.ctx.resolution).toEqual({
      caseId: 'ep-1.case-1',
      outcome: 'rejected',
      plan: PLAN,
      tier: 1,
      decidedBy: ['bob'],
      reason: 'not covered by policy',
      at: T0 + 9_000,
    });
    expect(c.lastHistory()).toMatchObject({ kind: 'rejected', by: 'bob', note: 'not covered by policy' });
    expectClosed(c, 'rejected');
  });
});
