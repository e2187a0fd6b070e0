/** The agent machine running an approved plan: steps in order, retries, compensation. */
import { describe, expect, it } from 'vitest';
import { T0 } from '../fixtures.ts';
import { EPISODE, PLAN_1, PLAN_3, PLAN_2, transient, permanent, Agent, expectFinal } from './harness.ts';

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
