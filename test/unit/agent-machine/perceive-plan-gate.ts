/** The agent machine from the signal to the gate's decision: perceiving, planning, gating. */
import { describe, expect, it } from 'vitest';
import { T0, auto, deny, mkObservation, review } from '../fixtures.ts';
import { EPISODE, PLAN_1, transient, permanent, Agent, expectFinal } from './harness.ts';

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
