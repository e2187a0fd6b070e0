/**
 * Unit tests of the agent episode machine, driven event by event through `createActor`. The gate and
 * the expiry fallback are stubs bound with `agentMachineFor`; time exists only as the `at` / `dueAt`
 * fields of the events sent.
 *
 * Every actor is created with `cov.inspect`, and the last `describe` asserts that the tests together
 * entered every state and took every declared transition of the machine (run the whole file; a `-t`
 * filter makes those two coverage tests fail by design).
 */
import { createActor, type Actor } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import type { FreshnessConfig, PolicyConfig, RetryConfig } from '../../src/contracts/model-config.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import type { CaseOutcome, CaseResolution } from '../../src/contracts/review-case.ts';
import { agentMachine, agentMachineFor, type AgentContext, type AgentEvent } from '../../src/machines/agent.ts';
import type { FailureInfo } from '../../src/machines/effects.ts';
import {
  Coverage,
  T0,
  auto,
  declaredTransitions,
  deny,
  mkAction,
  mkObservation,
  mkPlan,
  review,
  stateIds,
} from './fixtures.ts';

const cov = new Coverage();

const EPISODE = 'ep-1';
const RETRY: RetryConfig = { maxAttempts: 3, backoffMs: 100, maxBackoffMs: 250 };
const SAFE_ACTION = mkAction('notify', { template: 'review-expired' });
const EXPIRY_DENY: PolicyConfig['onExpiry'] = { fallback: 'deny' };
const EXPIRY_SAFE: PolicyConfig['onExpiry'] = { fallback: 'safeAction', action: SAFE_ACTION };

const PLAN_1 = mkPlan('plan-1');
const PLAN_3 = mkPlan('plan-3', [
  mkAction('refund', { amount: 10 }),
  mkAction('close', { count: 1 }),
  mkAction('notify', { to: 'customer' }),
]);
const PLAN_2 = mkPlan('plan-2', [mkAction('refund', { amount: 10 }), mkAction('notify', { to: 'customer' })]);
const MODIFIED_PLAN = mkPlan('plan-1.modified', [mkAction('refund', { amount: 20 })]);

const transient = (message = 'upstream timed out'): FailureInfo => ({ message, code: 'timeout', transient: true });
const permanent = (message = 'upstream said no'): FailureInfo => ({ message, code: 'bad-request', transient: false });

type AgentActor = Actor<ReturnType<typeof agentMachineFor>>;

/** A started agent plus helpers that answer its current effect request. */
class Agent {
  readonly gateCalls: Plan[] = [];
  readonly actor: AgentActor;
  /** The clock of this test: every helper advances it by 10 ms unless told the time. */
  now = T0;

  constructor(
    opts: {
      decisions?: GateDecision[];
      onExpiry?: PolicyConfig['onExpiry'];
      retry?: RetryConfig;
      freshness?: FreshnessConfig;
    } = {},
  ) {
    const queue = [...(opts.decisions ?? [auto()])];
    const machine = agentMachineFor({
      gate: (plan) => {
        this.gateCalls.push(plan);
        // Each call takes the next decision; the last one is sticky.
        return queue.length > 1 ? queue.shift()! : queue[0]!;
      },
      onExpiry: opts.onExpiry ?? EXPIRY_DENY,
      ...(opts.freshness ? { freshness: opts.freshness } : {}),
    });
    this.actor = createActor(machine, {
      input: { episodeId: EPISODE, model: 'test-model', signal: { ticket: 42 }, retry: opts.retry ?? RETRY },
      inspect: cov.inspect,
    }).start();
  }

  get snap() {
    return this.actor.getSnapshot();
  }
  get ctx(): AgentContext {
    return this.snap.context;
  }
  get state(): string {
    return String(this.snap.value);
  }
  get effectId(): string {
    const effect = this.ctx.effect;
    if (!effect) throw new Error(`no effect requested in state ${this.state}`);
    return effect.id;
  }

  tick(at?: number): number {
    this.now = at ?? this.now + 10;
    return this.now;
  }

  /** Sends an event, asserting beforehand that the machine accepts it. */
  send(event: AgentEvent): this {
    expect(this.snap.can(event), `${event.type} should be accepted in ${this.state}`).toBe(true);
    this.actor.send(event);
    return this;
  }

  /** Asserts the event is refused and leaves the snapshot exactly as it was. */
  refuse(event: AgentEvent): this {
    const before = this.snap;
    expect(before.can(event), `${event.type} should be refused in ${this.state}`).toBe(false);
    // A finished actor is stopped: xstate would only warn about the event, so just check `can`.
    if (before.status === 'active') this.actor.send(event);
    const after = this.snap;
    expect(after.value).toEqual(before.value);
    expect(after.context).toEqual(before.context);
    expect(after.status).toBe(before.status);
    return this;
  }

  perceived(at?: number, observation: Observation = mkObservation()): this {
    return this.send({ type: 'perceive.done', effectId: this.effectId, observation, at: this.tick(at) });
  }
  planned(plan: Plan = PLAN_1, at?: number): this {
    return this.send({ type: 'plan.done', effectId: this.effectId, plan, at: this.tick(at) });
  }
  acted(result: unknown = { ok: this.ctx.step }, at?: number): this {
    return this.send({ type: 'action.done', effectId: this.effectId, result, at: this.tick(at) });
  }
  compensated(at?: number): this {
    return this.send({ type: 'compensation.done', effectId: this.effectId, at: this.tick(at) });
  }
  failed(
    type: 'perceive.failed' | 'plan.failed' | 'action.failed' | 'compensation.failed',
    error: FailureInfo,
    at?: number,
  ): this {
    return this.send({ type, effectId: this.effectId, error, at: this.tick(at) });
  }
  retryFired(at?: number): this {
    const dueAt = this.ctx.timers.retry;
    if (dueAt === undefined) throw new Error('no retry timer armed');
    return this.send({ type: 'timer.retry', dueAt, at: at ?? Math.max(dueAt, this.now) });
  }
  caseOpened(at?: number): this {
    const effect = this.ctx.effect;
    if (effect?.kind !== 'openCase' || !effect.caseId) throw new Error(`no openCase effect in ${this.state}`);
    return this.send({ type: 'case.opened', effectId: effect.id, caseId: effect.caseId, at: this.tick(at) });
  }
  resolution(caseId: string, outcome: CaseOutcome, extra: Partial<CaseResolution> = {}): CaseResolution {
    return {
      caseId,
      outcome,
      plan: this.ctx.plan ?? PLAN_1,
      tier: this.ctx.decision?.tier || 1,
      decidedBy: outcome === 'expired' ? [] : ['bob'],
      at: this.tick(),
      ...extra,
    };
  }
  resolved(resolution: CaseResolution): this {
    return this.send({ type: 'case.resolved', resolution, at: resolution.at });
  }

  /** perceive → plan → gate, answering the first two requests. */
  toGate(plan: Plan = PLAN_1): this {
    return this.perceived().planned(plan);
  }
}

/** Asserts the common shape of a final snapshot. */
function expectFinal(agent: Agent, state: string, outcome: AgentContext['outcome']) {
  const snap = agent.snap;
  expect(snap.value).toBe(state);
  expect(snap.status).toBe('done');
  expect(snap.context.outcome).toBe(outcome);
  expect(snap.output).toEqual({ episodeId: EPISODE, outcome, reason: expect.any(String) });
  expect(snap.context.effect).toBeNull();
  expect(snap.context.timers).toEqual({});
  expect(snap.context.endedAt).toBe(agent.now);
  // Nothing moves a finished episode any more.
  const probes: AgentEvent[] = [
    { type: 'perceive.done', effectId: `${EPISODE}:perceive:1`, observation: mkObservation(), at: agent.now + 1 },
    { type: 'action.done', effectId: `${EPISODE}:execute:0:1`, result: null, at: agent.now + 1 },
    { type: 'timer.retry', dueAt: agent.now, at: agent.now + 1 },
    {
      type: 'case.resolved',
      resolution: {
        caseId: `${EPISODE}.case-1`,
        outcome: 'approved',
        plan: PLAN_1,
        tier: 1,
        decidedBy: ['bob'],
        at: agent.now + 1,
      },
      at: agent.now + 1,
    },
  ];
  for (const probe of probes) agent.refuse(probe);
}

// ---------------------------------------------------------------------------------------------------

describe('agent machine: perceiving', () => {
  it('starts in perceiving with a perceive request and no timers', () => {
    const a = new Agent();
    expect(a.state).toBe('perceiving');
    expect(a.snap.status).toBe('active');
    expect(a.ctx.effect).toEqual({ id: 'ep-1:perceive:1', kind: 'perceive', attempt: 1 });
    expect(a.ctx.timers).toEqual({});
    expect(a.ctx.startedAt).toBeNull();
    expect(a.ctx.outcome).toBeNull();
  });

  it('perceive.done with the current effect id → planning, observation stored, plan requested', () => {
    const a = new Agent().perceived(T0 + 5);
    expect(a.state).toBe('planning');
    expect(a.ctx.observation).toEqual(mkObservation());
    expect(a.ctx.startedAt).toBe(T0 + 5);
    expect(a.ctx.effect).toEqual({ id: 'ep-1:plan:1', kind: 'plan', attempt: 1 });
  });

  it('a result with a stale or foreign effect id is not accepted and changes nothing', () => {
    const a = new Agent();
    a.refuse({ type: 'perceive.done', effectId: 'ep-1:perceive:0', observation: mkObservation(), at: T0 + 1 });
    a.refuse({ type: 'perceive.failed', effectId: 'other:perceive:1', error: permanent(), at: T0 + 1 });
    // An event of another phase, even with the current id, is not accepted either.
    a.refuse({ type: 'plan.done', effectId: a.effectId, plan: PLAN_1, at: T0 + 1 });
    expect(a.state).toBe('perceiving');
  });

  it('transient failure with attempts left → perceiveBackoff with timers.retry = at + backoff', () => {
    const a = new Agent().failed('perceive.failed', transient(), T0 + 1_000);
    expect(a.state).toBe('perceiveBackoff');
    expect(a.ctx.timers).toEqual({ retry: T0 + 1_000 + 100 });
    expect(a.ctx.attempt).toBe(2);
    expect(a.ctx.effect).toBeNull();
    expect(a.ctx.startedAt).toBe(T0 + 1_000);
  });

  it('a stale timer.retry (wrong dueAt) is ignored; the armed one re-enters perceiving with attempt 2', () => {
    const a = new Agent().failed('perceive.failed', transient(), T0 + 1_000);
    const firstId = 'ep-1:perceive:1';
    a.refuse({ type: 'timer.retry', dueAt: T0 + 1_099, at: T0 + 1_200 });
    a.refuse({ type: 'timer.retry', dueAt: T0 + 1_101, at: T0 + 1_200 });
    // A late result of the failed attempt is not accepted during the backoff.
    a.refuse({ type: 'perceive.done', effectId: firstId, observation: mkObservation(), at: T0 + 1_050 });
    a.retryFired(T0 + 1_100);
    expect(a.state).toBe('perceiving');
    expect(a.ctx.timers).toEqual({});
    expect(a.ctx.effect).toEqual({ id: 'ep-1:perceive:2', kind: 'perceive', attempt: 2 });
    // ...nor after the retry: only the new request's result counts.
    a.refuse({ type: 'perceive.done', effectId: firstId, observation: mkObservation(), at: T0 + 1_150 });
    a.perceived();
    expect(a.state).toBe('planning');
    expect(a.ctx.attempt).toBe(1);
    expect(a.ctx.startedAt).toBe(T0 + 1_000);
  });

  it('backoff is exponential and capped at retry.maxBackoffMs', () => {
    const a = new Agent({ retry: { maxAttempts: 5, backoffMs: 100, maxBackoffMs: 250 } });
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const at = a.tick(a.now + 1_000);
      a.failed('perceive.failed', transient(), at);
      delays.push(a.ctx.timers.retry! - at);
      a.retryFired();
    }
    expect(delays).toEqual([100, 200, 250, 250]);
    expect(a.ctx.effect?.attempt).toBe(5);
    a.failed('perceive.failed', transient('still down'));
    expect(a.ctx.error).toEqual({ ...transient('still down'), phase: 'perceive' });
    expectFinal(a, 'failed', 'failed');
  });

  it('transient failures until attempts are exhausted → failed with error.phase perceive', () => {
    const a = new Agent();
    a.failed('perceive.failed', transient()).retryFired();
    a.failed('perceive.failed', transient()).retryFired();
    expect(a.ctx.effect?.id).toBe('ep-1:perceive:3');
    a.failed('perceive.failed', transient('gave up'));
    expect(a.ctx.error).toEqual({ message: 'gave up', code: 'timeout', transient: true, phase: 'perceive' });
    expectFinal(a, 'failed', 'failed');
    expect(a.snap.output?.reason).toBe('gave up');
  });

  it('a permanent failure → failed at once', () => {
    const a = new Agent().failed('perceive.failed', permanent('no such ticket'), T0 + 7);
    expect(a.ctx.error).toEqual({ ...permanent('no such ticket'), phase: 'perceive' });
    expect(a.ctx.startedAt).toBe(T0 + 7);
    expect(a.ctx.compensateStep).toBe(-1);
    expectFinal(a, 'failed', 'failed');
  });

  it('with maxAttempts 1 a transient failure is final', () => {
    const a = new Agent({ retry: { maxAttempts: 1, backoffMs: 100, maxBackoffMs: 100 } }).failed(
      'perceive.failed',
      transient(),
    );
    expectFinal(a, 'failed', 'failed');
  });
});

describe('agent machine: planning', () => {
  it('plan.done → gating → (auto) acting; the gate sees the plan', () => {
    const a = new Agent({ decisions: [auto()] }).toGate(PLAN_1);
    expect(a.gateCalls).toEqual([PLAN_1]);
    expect(a.state).toBe('acting');
    expect(a.ctx.plan).toEqual(PLAN_1);
    expect(a.ctx.decision).toEqual(auto());
    expect(a.ctx.resolution).toBe('auto');
  });

  it('stale plan results are not accepted', () => {
    const a = new Agent().perceived();
    a.refuse({ type: 'plan.done', effectId: 'ep-1:perceive:1', plan: PLAN_1, at: a.now + 1 });
    a.refuse({ type: 'plan.failed', effectId: 'ep-1:plan:2', error: permanent(), at: a.now + 1 });
  });

  it('transient failure → planBackoff; stale timer ignored; timer → planning attempt 2', () => {
    const a = new Agent().perceived().failed('plan.failed', transient(), T0 + 500);
    expect(a.state).toBe('planBackoff');
    expect(a.ctx.timers.retry).toBe(T0 + 600);
    a.refuse({ type: 'timer.retry', dueAt: T0 + 700, at: T0 + 700 });
    expect(a.ctx.effect).toBeNull();
    a.retryFired();
    expect(a.state).toBe('planning');
    expect(a.ctx.effect).toEqual({ id: 'ep-1:plan:2', kind: 'plan', attempt: 2 });
    a.failed('plan.failed', transient(), T0 + 1_000);
    expect(a.ctx.timers.retry).toBe(T0 + 1_200);
    a.retryFired().planned();
    expect(a.state).toBe('acting');
  });

  it('attempts exhausted → failed with error.phase plan', () => {
    const a = new Agent().perceived();
    a.failed('plan.failed', transient()).retryFired();
    a.failed('plan.failed', transient()).retryFired();
    a.failed('plan.failed', transient('planner overloaded'));
    expect(a.ctx.error?.phase).toBe('plan');
    expectFinal(a, 'failed', 'failed');
  });

  it('permanent failure → failed with error.phase plan', () => {
    const a = new Agent().perceived().failed('plan.failed', permanent('no plan possible'));
    expect(a.ctx.error).toEqual({ ...permanent('no plan possible'), phase: 'plan' });
    expect(a.snap.output).toEqual({ episodeId: EPISODE, outcome: 'failed', reason: 'no plan possible' });
    expectFinal(a, 'failed', 'failed');
  });
});

describe('agent machine: gating', () => {
  it('deny → denied, reason from the decision', () => {
    const a = new Agent({ decisions: [deny('refunds above the hard limit')] }).toGate();
    expect(a.ctx.decision?.outcome).toBe('deny');
    expectFinal(a, 'denied', 'denied');
    expect(a.snap.output?.reason).toBe('refunds above the hard limit');
  });

  it('auto → acting, resolution auto', () => {
    const a = new Agent({ decisions: [auto()] }).toGate();
    expect(a.state).toBe('acting');
    expect(a.ctx.resolution).toBe('auto');
    expect(a.ctx.approvedTier).toBe(0);
  });

  it('review → awaitingReview with an openCase request for <episodeId>.case-1', () => {
    const a = new Agent({ decisions: [review(2)] }).toGate();
    expect(a.state).toBe('awaitingReview');
    expect(a.ctx.decision).toEqual(review(2));
    expect(a.ctx.effect).toEqual({
      id: 'ep-1:openCase:ep-1.case-1:1',
      kind: 'openCase',
      attempt: 1,
      caseId: 'ep-1.case-1',
    });
    expect(a.ctx.caseIds).toEqual([]);
    expect(a.ctx.resolution).toBeNull();
  });
});

describe('agent machine: acting', () => {
  it('a multi-action plan executes its steps in order (effect.step 0, 1, 2) → done, autoActed', () => {
    const a = new Agent().toGate(PLAN_3);
    const seen: Array<[number | undefined, string]> = [];
    for (let i = 0; i < 3; i++) {
      seen.push([a.ctx.effect?.step, a.effectId]);
      expect(a.state).toBe('acting');
      expect(a.ctx.step).toBe(i);
      a.acted({ n: i });
    }
    expect(seen).toEqual([
      [0, 'ep-1:execute:0:1'],
      [1, 'ep-1:execute:1:1'],
      [2, 'ep-1:execute:2:1'],
    ]);
    expect(a.ctx.results).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect(a.ctx.step).toBe(3);
    expectFinal(a, 'done', 'autoActed');
    expect(a.snap.output).toEqual({ episodeId: EPISODE, outcome: 'autoActed', reason: 'stub gate: auto' });
  });

  it('a result of an earlier step is not accepted for the next step', () => {
    const a = new Agent().toGate(PLAN_3);
    const step0 = a.effectId;
    a.acted();
    a.refuse({ type: 'action.done', effectId: step0, result: 'dup', at: a.now + 1 });
    a.refuse({ type: 'action.failed', effectId: step0, error: permanent(), at: a.now + 1 });
    expect(a.ctx.results).toHaveLength(1);
  });

  it('transient action failure → actBackoff; stale timer ignored; retried with attempt 2 for the same step', () => {
    const a = new Agent().toGate(PLAN_2).acted();
    a.failed('action.failed', transient(), T0 + 10_000);
    expect(a.state).toBe('actBackoff');
    expect(a.ctx.timers).toEqual({ retry: T0 + 10_100 });
    a.refuse({ type: 'timer.retry', dueAt: T0 + 10_000, at: T0 + 10_100 });
    a.retryFired();
    expect(a.state).toBe('acting');
    expect(a.ctx.effect).toEqual({ id: 'ep-1:execute:1:2', kind: 'execute', attempt: 2, step: 1 });
    expect(a.ctx.timers).toEqual({});
    a.acted();
    expectFinal(a, 'done', 'autoActed');
  });

  it('action failure at step 0 → failed (nothing to compensate)', () => {
    const a = new Agent().toGate(PLAN_3).failed('action.failed', permanent('card declined'));
    expect(a.ctx.error).toEqual({ ...permanent('card declined'), phase: 'action' });
    expect(a.ctx.compensateStep).toBe(-1);
    expect(a.ctx.results).toEqual([]);
    expectFinal(a, 'failed', 'failed');
  });

  it('transient failures exhausting the attempts at step 0 → failed', () => {
    const a = new Agent().toGate(PLAN_1);
    a.failed('action.failed', transient()).retryFired();
    a.failed('action.failed', transient()).retryFired();
    a.failed('action.failed', transient());
    expect(a.ctx.error?.phase).toBe('action');
    expectFinal(a, 'failed', 'failed');
  });

  it('action failure after two steps → compensating, compensateStep counting down 1, 0 → compensated', () => {
    const a = new Agent().toGate(PLAN_3).acted().acted();
    a.failed('action.failed', permanent('close failed'));
    expect(a.state).toBe('compensating');
    expect(a.ctx.error).toEqual({ ...permanent('close failed'), phase: 'action' });
    expect(a.ctx.compensateStep).toBe(1);
    expect(a.ctx.effect).toEqual({ id: 'ep-1:compensate:1:1', kind: 'compensate', attempt: 1, step: 1 });
    a.compensated();
    expect(a.state).toBe('compensating');
    expect(a.ctx.compensateStep).toBe(0);
    expect(a.ctx.effect).toEqual({ id: 'ep-1:compensate:0:1', kind: 'compensate', attempt: 1, step: 0 });
    a.compensated();
    expect(a.ctx.compensateStep).toBe(-1);
    expectFinal(a, 'compensated', 'compensated');
    expect(a.snap.output?.reason).toBe('close failed');
  });

  it('transient failures exhausting the attempts at step 1 → compensating step 0', () => {
    const a = new Agent().toGate(PLAN_2).acted();
    a.failed('action.failed', transient()).retryFired();
    a.failed('action.failed', transient()).retryFired();
    a.failed('action.failed', transient());
    expect(a.state).toBe('compensating');
    expect(a.ctx.effect).toEqual({ id: 'ep-1:compensate:0:1', kind: 'compensate', attempt: 1, step: 0 });
    a.compensated();
    expectFinal(a, 'compensated', 'compensated');
  });

  it('a stale compensation result is not accepted', () => {
    const a = new Agent().toGate(PLAN_3).acted().acted().failed('action.failed', permanent());
    const first = a.effectId;
    a.compensated();
    a.refuse({ type: 'compensation.done', effectId: first, at: a.now + 1 });
    a.refuse({ type: 'compensation.failed', effectId: first, error: permanent(), at: a.now + 1 });
    expect(a.ctx.compensateStep).toBe(0);
  });

  it('transient compensation failure → compensateBackoff; stale timer ignored; retried for the same step', () => {
    const a = new Agent().toGate(PLAN_3).acted().acted().failed('action.failed', permanent());
    a.failed('compensation.failed', transient(), T0 + 50_000);
    expect(a.state).toBe('compensateBackoff');
    expect(a.ctx.timers).toEqual({ retry: T0 + 50_100 });
    a.refuse({ type: 'timer.retry', dueAt: T0 + 50_200, at: T0 + 50_200 });
    a.retryFired();
    expect(a.state).toBe('compensating');
    expect(a.ctx.effect).toEqual({ id: 'ep-1:compensate:1:2', kind: 'compensate', attempt: 2, step: 1 });
    a.failed('compensation.failed', transient(), T0 + 60_000);
    expect(a.ctx.timers).toEqual({ retry: T0 + 60_200 });
    a.retryFired().compensated();
    expect(a.ctx.effect).toEqual({ id: 'ep-1:compensate:0:1', kind: 'compensate', attempt: 1, step: 0 });
    a.compensated();
    expectFinal(a, 'compensated', 'compensated');
  });

  it('permanent compensation failure → awaitingOperator: an operator case is opened for the failed step', () => {
    const a = new Agent().toGate(PLAN_2).acted().failed('action.failed', permanent('notify failed'));
    a.failed('compensation.failed', permanent('refund cannot be reversed'));
    expect(a.state).toBe('awaitingOperator');
    expect(a.ctx.error).toEqual({ ...permanent('refund cannot be reversed'), phase: 'compensation' });
    expect(a.ctx.effect).toMatchObject({ kind: 'openCase', operator: true, step: 0, caseId: 'ep-1.case-1' });
  });

  it('operator approves → the failed compensation is retried → compensated', () => {
    const a = new Agent().toGate(PLAN_2).acted().failed('action.failed', permanent('notify failed'));
    a.failed('compensation.failed', permanent('ledger refused'));
    a.caseOpened();
    expect(a.ctx.caseIds).toEqual(['ep-1.case-1']);
    const failedId = 'ep-1:compensate:0:1';
    a.resolved(a.resolution('ep-1.case-1', 'approved'));
    expect(a.state).toBe('compensating');
    expect(a.ctx.effect).toMatchObject({ kind: 'compensate', step: 0 });
    expect(a.ctx.error).toBeNull();
    // The retry has an id of its own: a late duplicate of the failure it retries is not taken for its result.
    expect(a.ctx.effect!.id).not.toBe(failedId);
    expect(
      a.snap.can({ type: 'compensation.failed', effectId: failedId, error: permanent('ledger refused'), at: T0 + 1 }),
    ).toBe(false);
    a.compensated();
    expectFinal(a, 'compensated', 'compensated');
  });

  it('operator rejects → failed, the effect stands', () => {
    const a = new Agent().toGate(PLAN_2).acted().failed('action.failed', permanent());
    a.failed('compensation.failed', permanent('refund cannot be reversed'));
    a.caseOpened();
    a.resolved(a.resolution('ep-1.case-1', 'rejected'));
    expectFinal(a, 'failed', 'failed');
    expect(a.snap.output?.reason).toBe('refund cannot be reversed');
  });

  it('compensation attempts exhausted → awaitingOperator', () => {
    const a = new Agent().toGate(PLAN_2).acted().failed('action.failed', permanent());
    a.failed('compensation.failed', transient()).retryFired();
    a.failed('compensation.failed', transient()).retryFired();
    a.failed('compensation.failed', transient('ledger down'));
    expect(a.ctx.error?.phase).toBe('compensation');
    expect(a.state).toBe('awaitingOperator');
  });

  // Regression, fixed (src/machines/agent.ts, action `recordFailure`): it always sets `compensateStep: context.step - 1`,
  // also on `compensation.failed`. So when step 1 has been compensated (compensateStep 0) and the
  // compensation of step 0 then fails for good, the failed episode reports compensateStep 1, i.e. that
  // step 1 still needs undoing although it was undone.
  // Expected: compensateStep stays at the step whose compensation failed (0). Got: 1.
  it('regression: a compensation failure keeps compensateStep at the step that could not be undone', () => {
    const a = new Agent().toGate(PLAN_3).acted().acted().failed('action.failed', permanent());
    a.compensated(); // step 1 undone
    expect(a.ctx.compensateStep).toBe(0);
    a.failed('compensation.failed', permanent());
    expect(a.state).toBe('awaitingOperator');
    expect(a.ctx.compensateStep).toBe(0);
  });
});

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

describe('agent machine: coverage', () => {
  const ALL_STATES = [
    'perceiving',
    'perceiveBackoff',
    'planning',
    'planBackoff',
    'gating',
    'awaitingReview',
    'acting',
    'actBackoff',
    'compensating',
    'compensateBackoff',
    'awaitingOperator',
    'done',
    'denied',
    'rejected',
    'expired',
    'compensated',
    'failed',
  ];

  it('the machine has exactly the states these tests were written for', () => {
    expect(stateIds(agentMachine)).toEqual([...ALL_STATES].sort());
    expect(stateIds(agentMachineFor({ gate: auto, onExpiry: EXPIRY_DENY }))).toEqual(stateIds(agentMachine));
  });

  it('every state is reachable (xstate/graph shortest paths over a generated event set)', () => {
    for (const onExpiry of [EXPIRY_DENY, EXPIRY_SAFE]) {
      const byPlan: Record<string, GateDecision> = {
        auto: auto(),
        review1: review(1),
        review2: review(2),
        deny: deny(),
      };
      const machine = agentMachineFor({
        gate: (plan) => byPlan[plan.id.replace(/\.fallback$/, '')] ?? auto(),
        onExpiry,
      });
      const at = T0;
      const plans = [mkPlan('auto', PLAN_2.actions), mkPlan('review1'), mkPlan('review2'), mkPlan('deny')];
      const fail = (transient: boolean): FailureInfo => ({ message: 'x', code: 'x', transient });
      const paths = getShortestPaths(machine, {
        input: {
          episodeId: EPISODE,
          model: 'm',
          signal: null,
          retry: { maxAttempts: 2, backoffMs: 1, maxBackoffMs: 1 },
        },
        stopWhen: (s) => s.context.caseIds.length > 2,
        events: (s): AgentEvent[] => {
          const { effect, timers, caseIds } = s.context;
          const events: AgentEvent[] = [];
          if (timers.retry !== undefined) events.push({ type: 'timer.retry', dueAt: timers.retry, at });
          const failures = (
            type: 'perceive.failed' | 'plan.failed' | 'action.failed' | 'compensation.failed',
            effectId: string,
          ): AgentEvent[] => [
            { type, effectId, error: fail(true), at },
            { type, effectId, error: fail(false), at },
          ];
          if (effect?.kind === 'perceive')
            events.push(
              { type: 'perceive.done', effectId: effect.id, observation: mkObservation(), at },
              ...failures('perceive.failed', effect.id),
            );
          if (effect?.kind === 'plan')
            events.push(
              ...plans.map((plan): AgentEvent => ({ type: 'plan.done', effectId: effect.id, plan, at })),
              ...failures('plan.failed', effect.id),
            );
          if (effect?.kind === 'execute')
            events.push(
              { type: 'action.done', effectId: effect.id, result: null, at },
              ...failures('action.failed', effect.id),
            );
          if (effect?.kind === 'compensate')
            events.push(
              { type: 'compensation.done', effectId: effect.id, at },
              ...failures('compensation.failed', effect.id),
            );
          if (effect?.kind === 'openCase')
            events.push({ type: 'case.opened', effectId: effect.id, caseId: effect.caseId!, at });
          const caseId = effect?.caseId ?? caseIds.at(-1);
          if (s.value === 'awaitingOperator' && caseId) {
            for (const outcome of ['approved', 'rejected'] as const)
              events.push({
                type: 'case.resolved',
                resolution: { caseId, outcome, plan: s.context.plan!, tier: 1, decidedBy: [], at },
                at,
              });
          }
          if (s.value === 'awaitingReview' && caseId) {
            for (const outcome of ['approved', 'rejected', 'expired'] as const)
              events.push({
                type: 'case.resolved',
                resolution: { caseId, outcome, plan: s.context.plan!, tier: 1, decidedBy: [], at },
                at,
              });
            for (const plan of plans)
              events.push({
                type: 'case.resolved',
                resolution: { caseId, outcome: 'modified', plan, tier: 1, decidedBy: [], at },
                at,
              });
          }
          return events;
        },
      });
      const reached = new Set(paths.map((p) => String(p.state.value)));
      // Transient states (gating) are passed through within a macrostep, never rest states; with the
      // safeAction fallback an expired review always runs the fallback, so `expired` is unreachable.
      const unreachable = onExpiry.fallback === 'safeAction' ? ['gating', 'expired'] : ['gating'];
      expect([...reached].sort(), `onExpiry ${onExpiry.fallback}`).toEqual(
        ALL_STATES.filter((s) => !unreachable.includes(s)).sort(),
      );
    }
  });

  it('the tests above entered every state of the machine', () => {
    expect(cov.missingStates(agentMachine)).toEqual([]);
    expect([...cov.states].sort()).toEqual(stateIds(agentMachine));
  });

  it('the tests above took every declared transition of the machine', () => {
    expect(cov.missingTransitions(agentMachine)).toEqual([]);
    expect([...cov.transitions].filter((t) => !declaredTransitions(agentMachine).includes(t))).toEqual([]);
  });
});
