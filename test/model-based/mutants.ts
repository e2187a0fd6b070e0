/**
 * Mutants for mutation testing of the generated suites (test/model-based/mutation.test.ts).
 *
 * Most are GENERATED, not hand-picked: for the agent and review-case machines, every named guard is
 * negated and replaced by `true` and by `false`, every named action is replaced by a no-op, and every
 * timer the paths arm is never armed, never cleared and armed twice as late; for the gate, every
 * threshold of the policy is moved across its boundary, every rule is switched off, and the
 * decision's outcome and tier are changed. A few HAND-WRITTEN mutants (a dropped transition, a
 * separation-of-duties check forgotten, an escalation that keeps old deadlines, ...) stay beside them
 * as regressions of named bugs.
 *
 * Mutants are applied with `machine.provide` (or a rebuilt config) to the machines the runtime
 * builds, through module hooks (`hookAgentModule`, `hookCaseModule`, `hookGateModule`) that the test
 * installs with `vi.mock`, so the real runtime hosts them. This module must not import the machine or
 * gate modules: during a mutant run they are mocked, and the mocks call into it (nor may mutants/).
 *
 * This file holds the module hooks and the active mutant; the mutants are in mutants/ by category:
 * machine.ts (generated guard, action and timer mutants), gate.ts (generated gate mutants) and
 * hand-written.ts, with surgery.ts (machine rewriting and instrumentation) and mutant.ts (the type).
 */
import { isDeepStrictEqual } from 'node:util';
import type { AnyStateMachine } from 'xstate';
import type { EvaluateGate, GateCall, Mutant } from './mutants/mutant.ts';
import { instrument } from './mutants/surgery.ts';

// ------------------------------------------------------------------------------------------------
// The module hooks and the active mutant
// ------------------------------------------------------------------------------------------------

interface MutationState {
  mutant: Mutant | null;
  /** While set, every guard, action, timer and gate call records its coverage key here. */
  record: ((key: string) => void) | null;
  /** While set, every gate call's arguments are handed here. */
  gateCall?: ((call: GateCall) => void) | null;
}

const STATE: MutationState = ((globalThis as Record<string, unknown>).__handoffMutation ??= {
  mutant: null,
  record: null,
}) as MutationState;

/** Makes `mutant` (null: the original machines) the one the runtime builds from now on. */
export function activate(
  mutant: Mutant | null,
  record: ((key: string) => void) | null = null,
  gateCall: ((call: GateCall) => void) | null = null,
): void {
  STATE.mutant = mutant;
  STATE.record = record;
  STATE.gateCall = gateCall;
}

/** Whether a gate mutant decides any of `calls` differently from the original gate. */
export function gateInfects(mutant: Mutant, original: EvaluateGate, calls: GateCall[]): boolean {
  if (!mutant.gate) return false;
  const mutated = mutant.gate(original);
  return calls.some(
    ([plan, observation, model]) =>
      !isDeepStrictEqual(mutated(plan, observation, model), original(plan, observation, model)),
  );
}

function build(kind: 'agent' | 'case', m: AnyStateMachine, lib: Record<string, unknown>): AnyStateMachine {
  if (STATE.record) return instrument(m, kind, STATE.record);
  const mutant = STATE.mutant;
  return mutant && mutant.machine === kind && mutant.mutate ? mutant.mutate(m, lib) : m;
}

/** The agent machine module with `agentMachineFor` building the active mutant. */
export function hookAgentModule(lib: Record<string, any>): Record<string, unknown> {
  return { ...lib, agentMachineFor: (bindings: unknown) => build('agent', lib.agentMachineFor(bindings), lib) };
}

/** The review-case module with `reviewCaseMachine` read as the active mutant (the runtime reads it per actor). */
export function hookCaseModule(lib: Record<string, any>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...lib };
  const cache = new Map<string, AnyStateMachine>();
  Object.defineProperty(out, 'reviewCaseMachine', {
    enumerable: true,
    get: () => {
      const key = STATE.record ? '#record' : STATE.mutant?.machine === 'case' ? STATE.mutant.name : '';
      if (!key) return lib.reviewCaseMachine;
      if (key === '#record') return build('case', lib.reviewCaseMachine, lib);
      let m = cache.get(key);
      if (!m) cache.set(key, (m = build('case', lib.reviewCaseMachine, lib)));
      return m;
    },
  });
  return out;
}

/** The gate module with `evaluateGate` as the active gate mutant. */
export function hookGateModule(lib: Record<string, any>): Record<string, unknown> {
  const original = lib.evaluateGate as EvaluateGate;
  return {
    ...lib,
    evaluateGate: (plan: unknown, observation: unknown, model: unknown) => {
      STATE.record?.('gate');
      STATE.gateCall?.([structuredClone(plan), structuredClone(observation), model]);
      const mutant = STATE.mutant;
      return mutant?.machine === 'gate' && mutant.gate
        ? mutant.gate(original)(plan, observation, model)
        : original(plan, observation, model);
    },
  };
}

export type { EvaluateGate, GateCall, Mutant } from './mutants/mutant.ts';
export { machineMutants, timerMutants } from './mutants/machine.ts';
export { gateMutants } from './mutants/gate.ts';
export { HAND_WRITTEN } from './mutants/hand-written.ts';
