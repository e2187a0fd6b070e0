/**
 * Shared builders and a coverage recorder for the machine unit tests. Pure: no I/O, no clock.
 */
import { expect } from 'vitest';
import type { AnyMachineSnapshot, AnyStateMachine, InspectionEvent } from 'xstate';
import { persistedSnapshot } from '../../src/runtime/runtime.ts';
import { declaredTransitions, stateName, transitionKey } from '../../src/testing/machine-walk.ts';
import type { GateDecision } from '../../src/contracts/gate-decision.ts';
import type { Observation } from '../../src/contracts/observation.ts';
import type { Plan, PlannedAction } from '../../src/contracts/plan.ts';

/** A fixed epoch for every test; times are always T0 + some offset. */
export const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

export function mkAction(type: string, args: Record<string, unknown> = {}): PlannedAction {
  return { type, args };
}

export function mkPlan(id = 'plan-1', actions: PlannedAction[] = [mkAction('refund', { amount: 50 })]): Plan {
  return {
    id,
    planner: 'test-planner',
    actions,
    confidence: 0.9,
    rationale: 'because the test says so',
    risk: { score: 0.2, factors: [] },
    citedInputs: [],
  };
}

export function mkObservation(id = 'obs-1', requestedBy = 'alice'): Observation {
  return {
    id,
    kind: 'ticket',
    subject: 'customer wants a refund',
    requestedBy,
    provenance: { source: 'test', observedAt: new Date(T0).toISOString(), transforms: [] },
    classification: 'internal',
    dataClasses: ['internal'],
    fields: { amount: 50 },
  };
}

export function mkDecision(
  outcome: GateDecision['outcome'],
  tier = 0,
  reason = `stub gate: ${outcome}${tier ? ` at tier ${tier}` : ''}`,
): GateDecision {
  return {
    outcome,
    ruleId: `stub-${outcome}`,
    reasons: [reason],
    tier: outcome === 'review' ? tier : 0,
    riskScore: 0.2,
    confidence: 0.9,
    policyVersion: 'test-policy-1',
    rules: [
      {
        ruleId: `stub-${outcome}`,
        result: outcome === 'auto' ? 'pass' : outcome,
        detail: reason,
        ...(outcome === 'review' ? { tier } : {}),
      },
    ],
  };
}

export const auto = (): GateDecision => mkDecision('auto');
export const review = (tier: number): GateDecision => mkDecision('review', tier);
export const deny = (reason = 'stub gate: denied'): GateDecision => mkDecision('deny', 0, reason);

// ---------------------------------------------------------------------------------------------------
// Coverage: which states were entered and which declared transitions actually fired
// ---------------------------------------------------------------------------------------------------

// The walk of a machine's declared transitions is the one `handoff/testing` ships to users.
export { declaredTransitions, transitionKey };

/** The ids of the machine's top-level states. */
export function stateIds(machine: AnyStateMachine): string[] {
  return Object.keys(machine.root.states).sort();
}

/**
 * Records, through xstate's inspection API, every state value an actor passes through (including
 * transient ones such as `gating`, seen only as microsteps) and every declared transition taken.
 * Pass `coverage.inspect` as the `inspect` option of `createActor`.
 */
export class Coverage {
  readonly states = new Set<string>();
  readonly transitions = new Set<string>();

  readonly inspect = (ev: InspectionEvent): void => {
    if (ev.type === '@xstate.snapshot') {
      this.states.add(stateName(ev.snapshot as unknown as { value: unknown }));
      // The runtime's persisted snapshot (no walk of the context) is XState's, at every snapshot of every test.
      const logic = (ev.actorRef as unknown as { logic: AnyStateMachine }).logic;
      const snap = ev.snapshot as unknown as AnyMachineSnapshot;
      if (snap.status !== 'error') expect(persistedSnapshot(logic, snap)).toEqual(logic.getPersistedSnapshot(snap));
    }
    if (ev.type === '@xstate.microstep') {
      this.states.add(stateName(ev.snapshot as unknown as { value: unknown }));
      for (const t of ev._transitions) this.transitions.add(transitionKey(t));
    }
  };

  missingStates(machine: AnyStateMachine): string[] {
    return stateIds(machine).filter((s) => !this.states.has(s));
  }

  missingTransitions(machine: AnyStateMachine): string[] {
    return declaredTransitions(machine).filter((t) => !this.transitions.has(t));
  }
}
