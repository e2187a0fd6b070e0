/** What a mutant is: its kind, the machine it changes, its coverage target and how it mutates. */
import type { AnyStateMachine } from 'xstate';

export type MutantKind =
  | 'guard-negated'
  | 'guard-true'
  | 'guard-false'
  | 'action-noop'
  | 'timer-never-armed'
  | 'timer-never-cleared'
  | 'timer-late'
  | 'gate-threshold'
  | 'gate-rule-off'
  | 'gate-outcome'
  | 'hand-written';

export type MachineKind = 'agent' | 'case' | 'gate';

export interface Mutant {
  name: string;
  machine: MachineKind;
  kind: MutantKind;
  /**
   * The coverage key of what is mutated (`agent.guard.effectIsCurrent`, `case.timer.lease`, `gate`):
   * only the paths that exercised it in the original run can kill the mutant. Null: every path.
   */
  target: string | null;
  description: string;
  /** Machine mutants: the mutated machine. */
  mutate?(m: AnyStateMachine, lib: Record<string, unknown>): AnyStateMachine;
  /** Gate mutants: the mutated gate function. */
  gate?(evaluate: EvaluateGate): EvaluateGate;
}
export type EvaluateGate = (plan: any, observation: any, model: any) => any;
/** Records a gate call's arguments (gate mutants are checked against them before any path runs). */
export type GateCall = [plan: unknown, observation: unknown, model: unknown];
