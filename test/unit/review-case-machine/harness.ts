/**
 * The review case machine's test harness: tiers, reviewers, a started case that takes commands and
 * timers, and the coverage tracker every actor reports to (review-case-machine.test.ts checks it).
 */
import { createActor, type Actor } from 'xstate';
import { expect } from 'vitest';
import type { CaseInput, TierSpec } from '../../../src/contracts/review-case.ts';
import type { Reviewer } from '../../../src/contracts/reviewer-command.ts';
import {
  explainCaseRejection,
  reviewCaseMachine,
  type CaseContext,
  type CaseEvent,
} from '../../../src/machines/review-case.ts';
import { Coverage, T0, mkAction, mkObservation, mkPlan, review } from '../fixtures.ts';

export const cov = new Coverage();

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
export const LEASE_MS = 45_000;
export const PLAN = mkPlan('plan-1');
export const NEW_PLAN = mkPlan('plan-1', [mkAction('refund', { amount: 20 })]);
export const DECISION = review(1);

export const R = {
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

export function caseInput(overrides: Partial<CaseInput> = {}): CaseInput {
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
export type Command = 'claim' | 'release' | 'renew' | 'approve' | 'modify' | 'reject' | 'escalate';

export function command(type: Command, reviewer: Reviewer, at: number): CaseEvent {
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
export class Case {
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

export function expectClosed(c: Case, state: string) {
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
