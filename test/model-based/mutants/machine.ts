/** Generated machine mutants: every named guard negated, always true, always false; every action a no-op; every timer never armed, never cleared, late. */
import type { AnyStateMachine } from 'xstate';
import type { Mutant } from './mutant.ts';
import { guardsOf, actionsOf, withGuard, guardOf, mutateTimers } from './surgery.ts';

/**
 * Guard and action mutants of one machine, from the names its implementations declare (`m` built as
 * the runtime builds it: for the agent, with a model's bindings provided).
 */
export function machineMutants(kind: 'agent' | 'case', m: AnyStateMachine): Mutant[] {
  const out: Mutant[] = [];
  for (const name of Object.keys(guardsOf(m)).sort()) {
    const target = `${kind}.guard.${name}`;
    out.push(
      {
        name: `${kind} guard ${name} negated`,
        machine: kind,
        kind: 'guard-negated',
        target,
        description: `guard ${name} answers the opposite`,
        mutate: (x) => withGuard(x, name, (args, params) => !guardOf(x, name)(args, params)),
      },
      {
        name: `${kind} guard ${name} always true`,
        machine: kind,
        kind: 'guard-true',
        target: `${target}=false`,
        description: `guard ${name} always holds`,
        mutate: (x) => withGuard(x, name, () => true),
      },
      {
        name: `${kind} guard ${name} always false`,
        machine: kind,
        kind: 'guard-false',
        target: `${target}=true`,
        description: `guard ${name} never holds`,
        mutate: (x) => withGuard(x, name, () => false),
      },
    );
  }
  for (const name of Object.keys(actionsOf(m)).sort()) {
    out.push({
      name: `${kind} action ${name} no-op`,
      machine: kind,
      kind: 'action-noop',
      target: `${kind}.action.${name}~changes`,
      description: `action ${name} does nothing`,
      mutate: (x) => x.provide({ actions: { [name]: () => undefined } } as never) as AnyStateMachine,
    });
  }
  return out;
}

/** Timer mutants for each timer the original run armed (coverage keys `<machine>.timer.<name>`). */
export function timerMutants(keys: Iterable<string>): Mutant[] {
  const out: Mutant[] = [];
  for (const key of [...new Set(keys)].filter((k) => /^(agent|case)\.timer\./.test(k)).sort()) {
    const [kind, , name] = key.split('.') as ['agent' | 'case', string, string];
    out.push(
      {
        name: `${kind} timer ${name} never armed`,
        machine: kind,
        kind: 'timer-never-armed',
        target: key,
        description: `no action ever sets the ${name} deadline`,
        mutate: (x) =>
          mutateTimers(x, (before, after) => {
            const next = { ...after };
            if (before[name] === undefined) delete next[name];
            else next[name] = before[name];
            return next;
          }),
      },
      {
        name: `${kind} timer ${name} never cleared`,
        machine: kind,
        kind: 'timer-never-cleared',
        target: key,
        description: `an action that clears the ${name} deadline leaves it armed`,
        mutate: (x) =>
          mutateTimers(x, (before, after) =>
            before[name] !== undefined && after[name] === undefined ? { ...after, [name]: before[name] } : after,
          ),
      },
      {
        name: `${kind} timer ${name} late`,
        machine: kind,
        kind: 'timer-late',
        target: key,
        description: `the ${name} deadline is armed twice as far from the event as it should be`,
        mutate: (x) =>
          mutateTimers(x, (before, after, at) => {
            const due = after[name];
            return due !== undefined && due !== before[name] && due > at
              ? { ...after, [name]: at + 2 * (due - at) }
              : after;
          }),
      },
    );
  }
  return out;
}
