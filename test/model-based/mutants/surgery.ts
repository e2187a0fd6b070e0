/**
 * Machine surgery for mutants: read and replace a machine's guards and actions, change the timers its
 * actions set, drop one transition, and instrument a machine to record the coverage keys of the mutants
 * a run could infect.
 */
import { isDeepStrictEqual } from 'node:util';
import { assign, createMachine, type AnyStateMachine } from 'xstate';

type GuardFn = (args: { context: any; event: any }, params?: unknown) => boolean;
type ActionImpl = ((args: any, params?: unknown) => unknown) & { type?: string; assignment?: unknown };
type Timers = Record<string, number | undefined>;

export function guardsOf(m: AnyStateMachine): Record<string, GuardFn> {
  return (m.implementations.guards ?? {}) as Record<string, GuardFn>;
}

export function actionsOf(m: AnyStateMachine): Record<string, ActionImpl> {
  return (m.implementations.actions ?? {}) as Record<string, ActionImpl>;
}

export function withGuard(m: AnyStateMachine, name: string, fn: GuardFn): AnyStateMachine {
  return m.provide({ guards: { [name]: fn } } as never) as AnyStateMachine;
}

export function guardOf(m: AnyStateMachine, name: string): GuardFn {
  const g = guardsOf(m)[name];
  if (!g) throw new Error(`no guard ${name}`);
  return g;
}

/** What an `assign` computes, as XState would (a function, or an object of values and functions). */
function evaluateAssignment(assignment: unknown, args: any, params: unknown): Record<string, unknown> {
  if (typeof assignment === 'function')
    return (assignment as (a: unknown, p: unknown) => Record<string, unknown>)(args, params) ?? {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries((assignment ?? {}) as Record<string, unknown>))
    out[k] = typeof v === 'function' ? (v as (a: unknown, p: unknown) => unknown)(args, params) : v;
  return out;
}

/**
 * The action with `post` run on what it assigns (and may change it); a non-assign action runs as it
 * is, after `post` saw it called.
 */
export function wrapAction(
  a: ActionImpl,
  post: (args: any, result: Record<string, unknown> | undefined) => Record<string, unknown> | undefined,
): unknown {
  if (typeof a === 'function' && a.type === 'xstate.assign') {
    return assign(
      ((args: any, params: unknown) => post(args, evaluateAssignment(a.assignment, args, params)) ?? {}) as never,
    );
  }
  if (typeof a === 'function') {
    return (args: any, params: unknown) => {
      post(args, undefined);
      return a(args, params);
    };
  }
  return a;
}

function mapActions(
  m: AnyStateMachine,
  post: (name: string, args: any, result: Record<string, unknown> | undefined) => Record<string, unknown> | undefined,
): AnyStateMachine {
  const actions = Object.fromEntries(
    Object.entries(actionsOf(m)).map(([name, a]) => [name, wrapAction(a, (args, result) => post(name, args, result))]),
  );
  return m.provide({ actions } as never) as AnyStateMachine;
}

/**
 * The machine with every guard, action and timer recording, when it runs, the coverage keys of the
 * mutants it could INFECT: `<m>.guard.<g>` (evaluated: negation changes it), `<m>.guard.<g>=true` /
 * `=false` (its answer; "always false" only changes runs where it answered true), `<m>.action.<a>`
 * (ran; a no-op changes the run only where it changed the context, `<m>.action.<a>~changes`) and
 * `<m>.timer.<t>` (an action set or cleared it). The harness is deterministic, so a mutant that
 * changes no guard answer, no assigned value and no deadline along a path runs that path exactly as
 * the original did: only the paths it infects can kill it.
 */
export function instrument(m: AnyStateMachine, kind: 'agent' | 'case', record: (key: string) => void): AnyStateMachine {
  const guards = Object.fromEntries(
    Object.entries(guardsOf(m)).map(([name, g]) => [
      name,
      (args: { context: any; event: any }, params?: unknown) => {
        const answer = g(args, params);
        record(`${kind}.guard.${name}`);
        record(`${kind}.guard.${name}=${!!answer}`);
        return answer;
      },
    ]),
  );
  const withGuards = m.provide({ guards } as never) as AnyStateMachine;
  return mapActions(withGuards, (name, args, result) => {
    record(`${kind}.action.${name}`);
    const context = (args.context ?? {}) as Record<string, unknown>;
    if (!result || Object.entries(result).some(([k, v]) => !isDeepStrictEqual(context[k], v)))
      record(`${kind}.action.${name}~changes`);
    const before = (context.timers ?? {}) as Timers;
    const after = result?.timers as Timers | undefined;
    if (after)
      for (const t of new Set([...Object.keys(before), ...Object.keys(after)]))
        if (before[t] !== after[t]) record(`${kind}.timer.${t}`);
    return result;
  });
}

/** Every action's `timers` passed through `change` (given the context's timers before the action). */
export function mutateTimers(
  m: AnyStateMachine,
  change: (before: Timers, after: Timers, at: number) => Timers,
): AnyStateMachine {
  return mapActions(m, (_name, args, result) => {
    if (!result?.timers) return result;
    return {
      ...result,
      timers: change((args.context?.timers ?? {}) as Timers, result.timers as Timers, Number(args.event?.at ?? 0)),
    };
  });
}

/** Rebuilds the machine without one transition (`state` null: the root's handlers). */
export function drop(m: AnyStateMachine, state: string | null, event: string, index: number): AnyStateMachine {
  const cfg = m.config as { on?: Record<string, unknown>; states: Record<string, { on?: Record<string, unknown> }> };
  const strip = (on: Record<string, unknown> | undefined) => {
    const copy = { ...(on ?? {}) };
    const t = copy[event];
    if (Array.isArray(t)) {
      const rest = t.filter((_, i) => i !== index);
      if (rest.length) copy[event] = rest;
      else delete copy[event];
    } else if (index === 0) delete copy[event];
    else throw new Error(`${state}.${event} has no candidate ${index}`);
    return copy;
  };
  const next =
    state === null
      ? { ...cfg, on: strip(cfg.on) }
      : { ...cfg, states: { ...cfg.states, [state]: { ...cfg.states[state], on: strip(cfg.states[state]?.on) } } };
  return createMachine(next as never, m.implementations as never) as unknown as AnyStateMachine;
}
