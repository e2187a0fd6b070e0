/**
 * Unit tests of the review case machine, driven event by event through `createActor`. Time exists only
 * as the `at` / `dueAt` fields of the events sent.
 *
 * Every actor is created with `cov.inspect`, and the last `describe` asserts that the tests together
 * entered every state and took every declared transition of the machine (run the whole file; a `-t`
 * filter makes those two coverage tests fail by design).
 */
import { createActor, type Actor } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import type { CaseInput, TierSpec } from '../../src/contracts/review-case.ts';
import type { PlannedAction } from '../../src/contracts/plan.ts';
import type { Reviewer } from '../../src/contracts/reviewer-command.ts';
import {
  explainCaseRejection,
  reviewCaseMachine,
  type CaseContext,
  type CaseEvent,
} from '../../src/machines/review-case.ts';
import { Coverage, T0, declaredTransitions, mkAction, mkObservation, mkPlan, review, stateIds } from './fixtures.ts';

const cov = new Coverage();

const TIERS: TierSpec[] = [
  {
    name: 'frontline',
    queue: 'q-frontline',
    roles: ['frontline'],
    ackMs: 60_000,
    resolveMs: 300_000,
    priority: 1,
    fourEyes: false,
  },
  { name: 'lead', queue: 'q-lead', roles: ['lead'], ackMs: 30_000, resolveMs: 120_000, priority: 2, fourEyes: false },
  {
    name: 'risk-committee',
    queue: 'q-risk',
    roles: ['risk'],
    ackMs: 20_000,
    resolveMs: 60_000,
    priority: 3,
    fourEyes: true,
  },
];
const LEASE_MS = 45_000;
const PLAN = mkPlan('plan-1');
const NEW_PLAN = mkPlan('plan-1', [mkAction('refund', { amount: 20 })]);
const DECISION = review(1);

const R = {
  bob: { id: 'bob', roles: ['frontline'] },
  carol: { id: 'carol', roles: ['frontline'] },
  dave: { id: 'dave', roles: ['lead'] },
  erin: { id: 'erin', roles: ['risk'] },
  frank: { id: 'frank', roles: ['risk'] },
  grace: { id: 'grace', roles: ['risk', 'lead'] },
  /** The requester: holds every role, and still may never review her own request. */
  alice: { id: 'alice', roles: ['frontline', 'lead', 'risk'] },
  mallory: { id: 'mallory', roles: ['viewer'] },
} satisfies Record<string, Reviewer>;

function caseInput(overrides: Partial<CaseInput> = {}): CaseInput {
  return {
    caseId: 'ep-1.case-1',
    episodeId: 'ep-1',
    model: 'test-model',
    tier: 1,
    tiers: TIERS,
    leaseMs: LEASE_MS,
    requestedBy: 'alice',
    plan: PLAN,
    decision: DECISION,
    observation: mkObservation(),
    openedAt: T0,
    ...overrides,
  };
}

type CaseActor = Actor<typeof reviewCaseMachine>;
type Command = 'claim' | 'release' | 'renew' | 'approve' | 'modify' | 'reject' | 'escalate';

function command(type: Command, reviewer: Reviewer, at: number): CaseEvent {
  switch (type) {
    case 'modify':
      return { type, reviewer, actions: NEW_PLAN.actions, comment: 'refund the full amount', at };
    case 'reject':
      return { type, reviewer, reason: 'not covered by policy', at };
    case 'escalate':
      return { type, reviewer, reason: 'needs a lead', at };
    case 'release':
      return { type, reviewer, reason: 'going on break', at };
    default:
      return { type, reviewer, at };
  }
}

/** A started case plus helpers. */
class Case {
  readonly actor: CaseActor;
  now = T0;

  constructor(overrides: Partial<CaseInput> = {}) {
    this.actor = createActor(reviewCaseMachine, { input: caseInput(overrides), inspect: cov.inspect }).start();
    this.now = overrides.openedAt ?? T0;
  }

  get snap() {
    return this.actor.getSnapshot();
  }
  get ctx(): CaseContext {
    return this.snap.context;
  }
  get state(): string {
    return String(this.snap.value);
  }
  tick(at?: number): number {
    this.now = at ?? this.now + 1_000;
    return this.now;
  }

  send(event: CaseEvent): this {
    expect(this.snap.can(event), `${event.type} should be accepted in ${this.state}`).toBe(true);
    expect(
      explainCaseRejection(this.state, this.ctx, event),
      `no rejection reason for an accepted ${event.type}`,
    ).toBeNull();
    this.actor.send(event);
    return this;
  }

  /** The command (or timer) is refused, explained by `rule` (for reviewer commands), and changes nothing. */
  refuse(event: CaseEvent, rule?: string, forbidden?: boolean): this {
    const before = this.snap;
    expect(before.can(event), `${event.type} should be refused in ${this.state}`).toBe(false);
    if (rule !== undefined) {
      const why = explainCaseRejection(this.state, before.context, event);
      expect(why?.rule).toBe(rule);
      if (forbidden !== undefined) expect(why?.forbidden).toBe(forbidden);
      expect(why?.reason).toEqual(expect.any(String));
    }
    // A finished actor is stopped: xstate would only warn about the event, so just check `can`.
    if (before.status === 'active') this.actor.send(event);
    expect(this.snap.value).toEqual(before.value);
    expect(this.snap.context).toEqual(before.context);
    expect(this.snap.status).toBe(before.status);
    return this;
  }

  do(type: Command, reviewer: Reviewer, at?: number): this {
    return this.send(command(type, reviewer, this.tick(at)));
  }
  cannot(type: Command, reviewer: Reviewer, rule: string, forbidden?: boolean): this {
    return this.refuse(command(type, reviewer, this.now + 1), rule, forbidden);
  }
  fire(timer: 'ack' | 'resolve' | 'lease'): this {
    const dueAt = this.ctx.timers[timer];
    if (dueAt === undefined) throw new Error(`timer ${timer} is not armed`);
    this.now = Math.max(this.now, dueAt);
    return this.send({ type: `timer.${timer}`, dueAt, at: this.now });
  }
  lastHistory() {
    return this.ctx.history.at(-1);
  }
}

function expectClosed(c: Case, state: string) {
  expect(c.state).toBe(state);
  expect(c.snap.status).toBe('done');
  expect(c.ctx.timers).toEqual({});
  expect(c.ctx.claim).toBeNull();
  expect(c.ctx.resolution).not.toBeNull();
  expect(c.snap.output).toEqual(c.ctx.resolution);
  // Commands after a final state are not accepted, and say so.
  for (const type of ['claim', 'release', 'renew', 'approve', 'modify', 'reject', 'escalate'] as const) {
    for (const reviewer of [R.bob, R.dave, R.erin, R.frank]) c.cannot(type, reviewer, 'case-closed', false);
  }
  for (const name of ['ack', 'resolve', 'lease'] as const) c.refuse({ type: `timer.${name}`, dueAt: c.now, at: c.now });
}

// ---------------------------------------------------------------------------------------------------

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

describe('review case: four-eyes (tier 3)', () => {
  it('first approval → queued with approvals [r1]; r1 cannot claim again; a second reviewer completes it', () => {
    const c = new Case({ tier: 3 }).do('claim', R.erin, T0 + 1_000).do('approve', R.erin, T0 + 2_000);
    expect(c.state).toBe('queued');
    expect(c.snap.status).toBe('active');
    expect(c.ctx.approvals).toEqual(['erin']);
    expect(c.ctx.claim).toBeNull();
    expect(c.ctx.resolution).toBeNull();
    expect(c.ctx.timers).toEqual({ resolve: T0 + 60_000 });
    expect(c.lastHistory()).toEqual({ at: T0 + 2_000, kind: 'approved', tier: 3, by: 'erin', note: 'approval 1 of 2' });
    c.cannot('claim', R.erin, 'four-eyes', true);
    c.cannot('claim', R.alice, 'separation-of-duties', true);
    c.do('claim', R.frank, T0 + 3_000).do('approve', R.frank, T0 + 4_000);
    expect(c.ctx.resolution).toEqual({
      caseId: 'ep-1.case-1',
      outcome: 'approved',
      plan: PLAN,
      tier: 3,
      decidedBy: ['erin', 'frank'],
      at: T0 + 4_000,
    });
    expectClosed(c, 'approved');
  });

  it('the first approval survives the second reviewer’s release and lease expiry', () => {
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('approve', R.erin);
    c.do('claim', R.frank).do('release', R.frank);
    c.do('claim', R.grace).fire('lease');
    expect(c.ctx.approvals).toEqual(['erin']);
    c.cannot('claim', R.erin, 'four-eyes', true);
    c.do('claim', R.frank).do('approve', R.frank);
    expect(c.ctx.resolution?.decidedBy).toEqual(['erin', 'frank']);
  });

  it('modify then approve → outcome modified with the modified plan', () => {
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('modify', R.erin, T0 + 2_000);
    expect(c.state).toBe('queued');
    expect(c.ctx.plan).toEqual(NEW_PLAN);
    expect(c.ctx.modified).toBe(true);
    expect(c.ctx.approvals).toEqual(['erin']);
    expect(c.lastHistory()).toMatchObject({ kind: 'modified', by: 'erin' });
    c.do('claim', R.frank).do('approve', R.frank, T0 + 4_000);
    expect(c.ctx.resolution).toMatchObject({
      caseId: 'ep-1.case-1',
      outcome: 'modified',
      plan: NEW_PLAN,
      tier: 3,
      decidedBy: ['erin', 'frank'],
      at: T0 + 4_000,
    });
    expect(c.ctx.resolution?.reason).toBeTruthy();
    expect(c.ctx.proposedPlan).toEqual(PLAN);
    expect(c.snap.output?.outcome).toBe('modified');
    // The final state *name* is checked by the regression test below; here only the closed case's behaviour.
    expectClosed(c, c.state);
  });

  // Regression, fixed (src/machines/review-case.ts, state `claimed`, `approve` transitions): after a four-eyes
  // modification (`modify` by r1 → queued, `claim` + `approve` by r2), the second `approve` takes
  // `{ target: 'approved', actions: 'approve' }`; the `approve` action computes outcome 'modified'
  // from `context.modified`, but the machine still ends in state 'approved'. Expected: state
  // 'modified' (every other path ends in the state named by resolution.outcome). Got: state
  // 'approved' with output.outcome 'modified' — the runtime persists and shows state 'approved'.
  it('regression: four-eyes modify then approve ends in the state named by its outcome (modified)', () => {
    const c = new Case({ tier: 3 })
      .do('claim', R.erin)
      .do('modify', R.erin)
      .do('claim', R.frank)
      .do('approve', R.frank);
    expect(c.ctx.resolution?.outcome).toBe('modified');
    expect(c.state).toBe('modified');
  });

  // Four eyes cannot be bypassed by a modification: the second reviewer's edit discards the first
  // approval (it approved another plan), and the edited plan needs its own second approver.
  it('approve then modify → back to the queue; the edit needs a second, different approver', () => {
    const c = new Case({ tier: 3 })
      .do('claim', R.erin)
      .do('approve', R.erin)
      .do('claim', R.frank)
      .do('modify', R.frank, T0 + 3_000);
    expect(c.state).toBe('queued');
    expect(c.ctx.resolution).toBeNull();
    expect(c.ctx.approvals).toEqual(['frank']);
    expect(c.ctx.edits).toEqual([
      {
        by: 'frank',
        at: T0 + 3_000,
        tier: 3,
        note: 'refund the full amount',
        diff: [{ path: 'actions.0.args.amount', from: 50, to: 20 }],
        discardedApprovals: ['erin'],
      },
    ]);
    c.cannot('claim', R.frank, 'four-eyes', true);
    // Erin approved the old plan; she may approve the new one.
    c.do('claim', R.erin).do('approve', R.erin);
    expect(c.ctx.resolution).toMatchObject({
      outcome: 'modified',
      plan: NEW_PLAN,
      decidedBy: ['frank', 'erin'],
      reason: 'refund the full amount',
    });
    expectClosed(c, 'modified');
  });

  it('the second reviewer may still reject', () => {
    const c = new Case({ tier: 3 })
      .do('claim', R.erin)
      .do('approve', R.erin)
      .do('claim', R.frank)
      .do('reject', R.frank);
    expect(c.ctx.resolution).toMatchObject({ outcome: 'rejected', decidedBy: ['frank'] });
    expectClosed(c, 'rejected');
  });

  it('a single rejection at a four-eyes tier is final', () => {
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('reject', R.erin);
    expectClosed(c, 'rejected');
  });

  it('four-eyes reached by escalation: approvals start empty at tier 3', () => {
    const c = new Case({ tier: 2 }).do('claim', R.grace).do('escalate', R.grace);
    expect(c.ctx.tier).toBe(3);
    expect(c.ctx.approvals).toEqual([]);
    // grace escalated but did not approve, so she may be one of the two approvers.
    c.do('claim', R.grace).do('approve', R.grace).do('claim', R.erin).do('approve', R.erin);
    expect(c.ctx.resolution?.decidedBy).toEqual(['grace', 'erin']);
  });

  // Regression, fixed (src/machines/review-case.ts, action `recordFirstApproval`): at a four-eyes tier the first
  // reviewer's `modify` comment (mandatory in ModifyCommand: "say why the plan was changed") is dropped:
  // the history entry gets the fixed note 'first of two approvals' and the final resolution (built by
  // `approve`) has no `reason`. Without four-eyes the same comment lands in history and resolution.reason.
  // Expected: the comment appears in the history entry of the modification. Got: 'first of two approvals'.
  it('regression: a four-eyes modification keeps the modifier’s comment in the audit history', () => {
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('modify', R.erin);
    expect(c.ctx.history.some((h) => h.kind === 'modified' && h.note?.includes('refund the full amount'))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// Guards and explainCaseRejection agree; coverage
// ---------------------------------------------------------------------------------------------------

const REVIEWERS = Object.values(R);
const COMMANDS: Command[] = ['claim', 'release', 'renew', 'approve', 'modify', 'reject', 'escalate'];

/** Every reachable snapshot, by a breadth-first walk over commands of every reviewer and every armed timer. */
function reachableSnapshots() {
  const at = T0 + 1;
  const paths = getShortestPaths(reviewCaseMachine, {
    input: caseInput(),
    // History grows with every renewal; leave it out so that the walk is finite.
    serializeState: (s) =>
      JSON.stringify({ value: s.value, context: { ...s.context, history: s.context.history.length > 0 } }),
    events: (s): CaseEvent[] => {
      const events: CaseEvent[] = [];
      for (const type of COMMANDS) for (const reviewer of REVIEWERS) events.push(command(type, reviewer, at));
      for (const name of ['ack', 'resolve', 'lease'] as const) {
        const dueAt = s.context.timers[name];
        if (dueAt !== undefined) events.push({ type: `timer.${name}`, dueAt, at: dueAt });
      }
      return events;
    },
  });
  return paths.map((p) => p.state);
}

describe('review case: review integrity (edits, separation of duties, ordered steps)', () => {
  const edit = (reviewer: Reviewer, actions: PlannedAction[], at = T0 + 9_000): CaseEvent => ({
    type: 'modify',
    reviewer,
    actions,
    comment: 'edit',
    at,
  });

  it('the requester may not escalate their own case, queued or by any other path (separation-of-duties)', () => {
    const c = new Case();
    c.cannot('escalate', R.alice, 'separation-of-duties', true);
    c.do('claim', R.bob);
    c.cannot('escalate', R.alice, 'separation-of-duties', true);
  });

  it('an edit may change arguments only: another action type, a dropped or an added action are refused (planner-fields)', () => {
    const c = new Case().do('claim', R.bob);
    c.refuse(edit(R.bob, [mkAction('payout', { amount: 20 })]), 'planner-fields', false);
    c.refuse(edit(R.bob, []), 'planner-fields', false);
    c.refuse(
      edit(R.bob, [mkAction('refund', { amount: 20 }), mkAction('refund', { amount: 1 })]),
      'planner-fields',
      false,
    );
  });

  it('an edit that changes nothing is refused (no-change): approve instead', () => {
    const c = new Case().do('claim', R.bob);
    c.refuse(edit(R.bob, PLAN.actions), 'no-change', false);
  });

  it('the planner’s rationale, confidence and risk survive every edit; the edit is a diff with its author', () => {
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('modify', R.erin, T0 + 2_000);
    expect(c.ctx.plan.rationale).toBe(PLAN.rationale);
    expect(c.ctx.plan.confidence).toBe(PLAN.confidence);
    expect(c.ctx.plan.risk).toEqual(PLAN.risk);
    expect(c.ctx.proposedPlan).toEqual(PLAN);
    expect(c.ctx.edits.map((e) => [e.by, e.diff])).toEqual([
      ['erin', [{ path: 'actions.0.args.amount', from: 50, to: 20 }]],
    ]);
  });

  it('an edit after an edit discards the first editor’s approval too; decidedBy names only approvers of the plan that runs', () => {
    const again = mkPlan('plan-1', [mkAction('refund', { amount: 5 })]);
    const c = new Case({ tier: 3 }).do('claim', R.erin).do('modify', R.erin).do('claim', R.frank);
    c.send(edit(R.frank, again.actions, c.tick()));
    expect(c.state).toBe('queued');
    expect(c.ctx.approvals).toEqual(['frank']);
    expect(c.ctx.edits.at(-1)?.discardedApprovals).toEqual(['erin']);
    c.do('claim', R.erin).do('approve', R.erin);
    expect(c.ctx.resolution).toMatchObject({ outcome: 'modified', plan: again, decidedBy: ['frank', 'erin'] });
    expect(c.ctx.resolution?.edits?.map((e) => e.by)).toEqual(['erin', 'frank']);
  });

  describe('ordered steps: a manager, then security', () => {
    const ORDERED: TierSpec[] = [
      {
        name: 'production access',
        queue: 'q-access',
        roles: ['manager', 'security'],
        ackMs: 60_000,
        resolveMs: 300_000,
        priority: 1,
        fourEyes: false,
        steps: [
          { name: 'manager', roles: ['manager'] },
          { name: 'security', roles: ['security'] },
        ],
      },
    ];
    const P = {
      mia: { id: 'mia', roles: ['manager'] },
      sam: { id: 'sam', roles: ['security'] },
      sue: { id: 'sue', roles: ['security'] },
      both: { id: 'both', roles: ['manager', 'security'] },
    } satisfies Record<string, Reviewer>;
    const ordered = () => new Case({ tiers: ORDERED, tier: 1 });

    it('security may not act before the manager (step-role); the manager’s approval hands the case to security', () => {
      const c = ordered();
      c.cannot('claim', P.sam, 'step-role', true);
      c.do('claim', P.mia).do('approve', P.mia);
      expect(c.state).toBe('queued');
      expect(c.ctx.approvals).toEqual(['mia']);
      c.cannot('claim', P.mia, 'step-role', true);
      c.do('claim', P.sam).do('approve', P.sam);
      expect(c.ctx.resolution).toMatchObject({ outcome: 'approved', decidedBy: ['mia', 'sam'] });
    });

    it('one person holding both roles approves one step only (separation of duties across steps)', () => {
      const c = ordered().do('claim', P.both).do('approve', P.both);
      c.cannot('claim', P.both, 'four-eyes', true);
      c.do('claim', P.sue).do('approve', P.sue);
      expect(c.ctx.resolution?.decidedBy).toEqual(['both', 'sue']);
    });

    it('an edit by security sends the edited plan back to the manager', () => {
      const c = ordered().do('claim', P.mia).do('approve', P.mia).do('claim', P.sam).do('modify', P.sam);
      expect(c.state).toBe('queued');
      expect(c.ctx.approvals).toEqual([]);
      expect(c.ctx.edits.at(-1)?.discardedApprovals).toEqual(['mia']);
      c.cannot('claim', P.sue, 'step-role', true);
      c.do('claim', P.mia).do('approve', P.mia).do('claim', P.sam).do('approve', P.sam);
      expect(c.ctx.resolution).toMatchObject({ outcome: 'modified', decidedBy: ['mia', 'sam'], plan: NEW_PLAN });
    });

    it('an edit by the manager counts as the manager’s approval', () => {
      const c = ordered().do('claim', P.mia).do('modify', P.mia);
      expect(c.ctx.approvals).toEqual(['mia']);
      c.do('claim', P.sam).do('approve', P.sam);
      expect(c.ctx.resolution).toMatchObject({ outcome: 'modified', decidedBy: ['mia', 'sam'] });
    });
  });
});

describe('review case: guards and explanations', () => {
  it('every reachable state is reachable and explainCaseRejection is null exactly when a command is accepted', () => {
    const snapshots = reachableSnapshots();
    expect(new Set(snapshots.map((s) => String(s.value)))).toEqual(new Set(stateIds(reviewCaseMachine)));
    let checked = 0;
    for (const s of snapshots) {
      for (const type of COMMANDS) {
        for (const reviewer of REVIEWERS) {
          const event = command(type, reviewer, T0 + 2);
          const why = explainCaseRejection(String(s.value), s.context, event);
          expect(
            why === null,
            `${String(s.value)} / tier ${s.context.tier} / ${type} by ${reviewer.id}: ${why?.rule}`,
          ).toBe(s.can(event));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(1_000);
  });
});

describe('review case: coverage', () => {
  it('the machine has exactly the states these tests were written for', () => {
    expect(stateIds(reviewCaseMachine)).toEqual(['approved', 'claimed', 'expired', 'modified', 'queued', 'rejected']);
  });

  it('the tests above entered every state of the machine', () => {
    expect(cov.missingStates(reviewCaseMachine)).toEqual([]);
  });

  it('the tests above took every declared transition of the machine', () => {
    expect(cov.missingTransitions(reviewCaseMachine)).toEqual([]);
    expect([...cov.transitions].filter((t) => !declaredTransitions(reviewCaseMachine).includes(t))).toEqual([]);
  });
});
