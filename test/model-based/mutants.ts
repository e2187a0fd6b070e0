/**
 * Mutants of the agent and review-case machines for mutation testing of generated suites: each one
 * is a plausible bug (a dropped transition, an inverted guard, a removed escalation tier, a skipped
 * compensation, ...) made with `machine.provide` or by rebuilding the machine from a mutated config.
 *
 * This module must not import the machine modules: during a mutant run they are mocked, and the
 * mocks call {@link mutantFor} with the original exports.
 */
import { assign, createMachine, type AnyStateMachine } from 'xstate';

export interface Mutant {
  name: string;
  machine: 'agent' | 'case';
  kind: 'drop-transition' | 'invert-guard' | 'remove-escalation-tier' | 'skip-compensation' | 'weaken-guard' | 'wrong-action';
  description: string;
  mutate(m: AnyStateMachine, lib: Record<string, unknown>): AnyStateMachine;
}

type GuardFn = (args: { context: any; event: any }, params?: unknown) => boolean;

function guardOf(m: AnyStateMachine, name: string): GuardFn {
  const g = (m.implementations.guards as Record<string, GuardFn>)[name];
  if (!g) throw new Error(`no guard ${name}`);
  return g;
}

function withGuard(m: AnyStateMachine, name: string, fn: GuardFn): AnyStateMachine {
  return m.provide({ guards: { [name]: fn } } as never) as AnyStateMachine;
}

function invert(m: AnyStateMachine, name: string): AnyStateMachine {
  const g = guardOf(m, name);
  return withGuard(m, name, (args, params) => !g(args, params));
}

/** Rebuilds the machine without one transition (`state` null: the root's handlers). */
function drop(m: AnyStateMachine, state: string | null, event: string, index: number): AnyStateMachine {
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
  const next = state === null ? { ...cfg, on: strip(cfg.on) } : { ...cfg, states: { ...cfg.states, [state]: { ...cfg.states[state], on: strip(cfg.states[state]?.on) } } };
  return createMachine(next as never, m.implementations as never) as unknown as AnyStateMachine;
}

export const MUTANTS: Mutant[] = [
  // ---- agent episode -------------------------------------------------------------------------
  {
    name: 'agent-no-compensation-on-failure',
    machine: 'agent',
    kind: 'drop-transition',
    description: 'drop acting --action.failed#2--> compensating: a permanent failure after completed steps is ignored',
    mutate: (m) => drop(m, 'acting', 'action.failed', 2),
  },
  {
    name: 'agent-rejection-ignored',
    machine: 'agent',
    kind: 'drop-transition',
    description: 'drop awaitingReview --case.resolved#2--> rejected: a rejected case leaves the agent waiting',
    mutate: (m) => drop(m, 'awaitingReview', 'case.resolved', 2),
  },
  {
    name: 'agent-operator-retry-dropped',
    machine: 'agent',
    kind: 'drop-transition',
    description: "drop awaitingOperator --case.resolved#0--> compensating: an operator's approval ends the episode instead of retrying",
    mutate: (m) => drop(m, 'awaitingOperator', 'case.resolved', 0),
  },
  {
    name: 'agent-retry-inverted',
    machine: 'agent',
    kind: 'invert-guard',
    description: 'invert transientWithAttemptsLeft: transient failures fail at once, permanent ones are retried',
    mutate: (m) => invert(m, 'transientWithAttemptsLeft'),
  },
  {
    name: 'agent-review-coverage-inverted',
    machine: 'agent',
    kind: 'invert-guard',
    description: 'invert reviewAlreadyCovers: a modification the reviewer covered is reviewed again, a riskier one runs',
    mutate: (m) => invert(m, 'reviewAlreadyCovers'),
  },
  {
    name: 'agent-first-step-compensated',
    machine: 'agent',
    kind: 'invert-guard',
    description: 'invert nothingExecutedYet: a failure at the first step compensates nothing, later failures fail without compensating',
    mutate: (m) => invert(m, 'nothingExecutedYet'),
  },
  {
    name: 'agent-skip-compensation',
    machine: 'agent',
    kind: 'skip-compensation',
    description: 'moreToCompensate always false: only the last completed step is compensated',
    mutate: (m) => withGuard(m, 'moreToCompensate', () => false),
  },
  // ---- review case ---------------------------------------------------------------------------
  {
    name: 'case-remove-last-tier',
    machine: 'case',
    kind: 'remove-escalation-tier',
    description: 'hasNextTier stops one tier early: a case expires instead of escalating to the last tier',
    mutate: (m) => withGuard(m, 'hasNextTier', ({ context }) => context.tier < context.tiers.length - 1),
  },
  {
    name: 'case-four-eyes-inverted',
    machine: 'case',
    kind: 'invert-guard',
    description: 'invert needsSecondApproval: four-eyes tiers take one approval, others ask for two',
    mutate: (m) => invert(m, 'needsSecondApproval'),
  },
  {
    name: 'case-lease-never-expires',
    machine: 'case',
    kind: 'drop-transition',
    description: 'drop claimed --timer.lease--> queued: a silent reviewer holds the case forever',
    mutate: (m) => drop(m, 'claimed', 'timer.lease', 0),
  },
  {
    name: 'case-no-manual-escalation',
    machine: 'case',
    kind: 'drop-transition',
    description: 'drop queued --escalate--> queued: a queued case cannot be escalated by hand',
    mutate: (m) => drop(m, 'queued', 'escalate', 0),
  },
  {
    name: 'case-modification-approved-as-is',
    machine: 'case',
    kind: 'invert-guard',
    description: 'invert planWasModified: the second approval of a modified plan reports it approved unchanged',
    mutate: (m) => invert(m, 'planWasModified'),
  },
  {
    name: 'case-no-separation-of-duties',
    machine: 'case',
    kind: 'weaken-guard',
    description: 'reviewerMayClaim forgets separation of duties: the requester may claim their own request',
    mutate: (m, lib) => {
      const rules = lib.caseRules as { hasTierRole: (c: unknown, r: unknown) => boolean; notPreviousApprover: (c: unknown, r: unknown) => boolean };
      return withGuard(m, 'reviewerMayClaim', ({ context, event }) => !!event.reviewer && rules.hasTierRole(context, event.reviewer) && rules.notPreviousApprover(context, event.reviewer));
    },
  },
  {
    name: 'case-escalation-keeps-deadlines',
    machine: 'case',
    kind: 'wrong-action',
    description: 'escalate moves up a tier but keeps the old deadlines',
    mutate: (m) =>
      m.provide({
        actions: {
          escalate: assign(({ context, event }: { context: any; event: any }) => ({
            tier: context.tier + 1,
            enteredTierAt: event.at,
            claim: null,
            approvals: [],
            escalations: context.escalations + 1,
            history: [...context.history, { at: event.at, kind: 'escalated', tier: context.tier, ...(event.reviewer ? { by: event.reviewer.id } : {}) }],
          })),
        },
      } as never) as AnyStateMachine,
  },
];

/** The mutator a mocked machine module applies, or null when `name` mutates the other machine. */
export function mutantFor(name: string | undefined, machine: 'agent' | 'case'): Mutant | null {
  if (!name) return null;
  const m = MUTANTS.find((x) => x.name === name);
  if (!m) throw new Error(`unknown mutant ${name}`);
  return m.machine === machine ? m : null;
}
