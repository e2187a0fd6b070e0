/**
 * Unit tests of the agent episode machine, driven event by event through `createActor`. The gate and
 * the expiry fallback are stubs bound with `agentMachineFor`; time exists only as the `at` / `dueAt`
 * fields of the events sent.
 *
 * The tests are in agent-machine/, by phase; this file runs them all, in this order, then asserts that
 * together they entered every state and took every declared transition of the machine (every actor is
 * created with `cov.inspect`). Run the whole file; a `-t` filter makes those two coverage tests fail by
 * design.
 */
import './agent-machine/perceive-plan-gate.ts';
import './agent-machine/acting.ts';
import './agent-machine/review.ts';
import './agent-machine/outcomes-freshness.ts';
import { getShortestPaths } from 'xstate/graph';
import { describe, expect, it } from 'vitest';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import { agentMachine, agentMachineFor, type AgentEvent } from '../../src/machines/agent.ts';
import type { FailureInfo } from '../../src/machines/effects.ts';
import { T0, auto, declaredTransitions, deny, mkObservation, mkPlan, review, stateIds } from './fixtures.ts';
import { cov, EPISODE, EXPIRY_DENY, EXPIRY_SAFE, PLAN_2 } from './agent-machine/harness.ts';

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
