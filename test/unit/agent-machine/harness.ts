/**
 * The agent machine's test harness: a started agent that answers its effect requests, the plans and
 * policies the tests use, and the coverage tracker every actor reports to (agent-machine.test.ts checks it).
 */
import { createActor, type Actor } from 'xstate';
import { expect } from 'vitest';
import type { GateDecision } from '../../../src/contracts/gate-decision.ts';
import type { FreshnessConfig, PolicyConfig, RetryConfig } from '../../../src/contracts/model-config.ts';
import type { Observation } from '../../../src/contracts/observation.ts';
import type { Plan } from '../../../src/contracts/plan.ts';
import type { CaseOutcome, CaseResolution } from '../../../src/contracts/review-case.ts';
import { agentMachineFor, type AgentContext, type AgentEvent } from '../../../src/machines/agent.ts';
import type { FailureInfo } from '../../../src/machines/effects.ts';
import { Coverage, T0, auto, mkAction, mkObservation, mkPlan } from '../fixtures.ts';

export const cov = new Coverage();

export const EPISODE = 'ep-1';
const RETRY: RetryConfig = { maxAttempts: 3, backoffMs: 100, maxBackoffMs: 250 };
export const SAFE_ACTION = mkAction('notify', { template: 'review-expired' });
export const EXPIRY_DENY: PolicyConfig['onExpiry'] = { fallback: 'deny' };
export const EXPIRY_SAFE: PolicyConfig['onExpiry'] = { fallback: 'safeAction', action: SAFE_ACTION };

export const PLAN_1 = mkPlan('plan-1');
export const PLAN_3 = mkPlan('plan-3', [
  mkAction('refund', { amount: 10 }),
  mkAction('close', { count: 1 }),
  mkAction('notify', { to: 'customer' }),
]);
export const PLAN_2 = mkPlan('plan-2', [mkAction('refund', { amount: 10 }), mkAction('notify', { to: 'customer' })]);
export const MODIFIED_PLAN = mkPlan('plan-1.modified', [mkAction('refund', { amount: 20 })]);

export const transient = (message = 'upstream timed out'): FailureInfo => ({
  message,
  code: 'timeout',
  transient: true,
});
export const permanent = (message = 'upstream said no'): FailureInfo => ({
  message,
  code: 'bad-request',
  transient: false,
});

type AgentActor = Actor<ReturnType<typeof agentMachineFor>>;

/** A started agent plus helpers that answer its current effect request. */
export class Agent {
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
export function expectFinal(agent: Agent, state: string, outcome: AgentContext['outcome']) {
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
