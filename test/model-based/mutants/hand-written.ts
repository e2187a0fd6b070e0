/** Hand-written mutants: regressions of named bugs (a dropped transition, a forgotten separation-of-duties check, ...). */
import type { AnyStateMachine } from 'xstate';
import type { Mutant } from './mutant.ts';
import { guardsOf, actionsOf, withGuard, guardOf, wrapAction, drop } from './surgery.ts';

/** The first of `names` the machine has (guards get renamed; a hand-written mutant names its role). */
function pick(m: AnyStateMachine, names: string[]): string {
  const found = names.find((n) => n in guardsOf(m));
  if (!found)
    throw new Error(`hand-written mutant out of date: the machine has none of the guards ${names.join(', ')}`);
  return found;
}

function invert(m: AnyStateMachine, ...names: string[]): AnyStateMachine {
  const name = pick(m, names);
  const g = guardOf(m, name);
  return withGuard(m, name, (args, params) => !g(args, params));
}

function hand(name: string, machine: 'agent' | 'case', description: string, mutate: Mutant['mutate']): Mutant {
  return { name, machine, kind: 'hand-written', target: null, description, mutate };
}

export const HAND_WRITTEN: Mutant[] = [
  hand(
    'agent-no-compensation-on-failure',
    'agent',
    'drop acting --action.failed#2--> compensating: a permanent failure after completed steps is ignored',
    (m) => drop(m, 'acting', 'action.failed', 2),
  ),
  hand(
    'agent-rejection-ignored',
    'agent',
    'drop awaitingReview --case.resolved#2--> rejected: a rejected case leaves the agent waiting',
    (m) => drop(m, 'awaitingReview', 'case.resolved', 2),
  ),
  hand(
    'agent-operator-retry-dropped',
    'agent',
    "drop awaitingOperator --case.resolved#0--> compensating: an operator's approval ends the episode instead of retrying",
    (m) => drop(m, 'awaitingOperator', 'case.resolved', 0),
  ),
  hand(
    'agent-retry-inverted',
    'agent',
    'invert transientWithAttemptsLeft: transient failures fail at once, permanent ones are retried',
    (m) => invert(m, 'transientWithAttemptsLeft'),
  ),
  hand(
    'agent-review-coverage-inverted',
    'agent',
    'invert reviewAlreadyCovers: a modification the reviewer covered is reviewed again, a riskier one runs',
    (m) => invert(m, 'reviewAlreadyCovers'),
  ),
  hand(
    'agent-first-step-compensated',
    'agent',
    'invert nothingExecutedYet: a failure at the first step compensates nothing, later failures fail without compensating',
    (m) => invert(m, 'nothingExecutedYet'),
  ),
  hand(
    'agent-skip-compensation',
    'agent',
    'moreToCompensate always false: only the last completed step is compensated',
    (m) => withGuard(m, 'moreToCompensate', () => false),
  ),
  hand(
    'case-remove-last-tier',
    'case',
    'hasNextTier stops one tier early: a case expires instead of escalating to the last tier',
    (m) => withGuard(m, 'hasNextTier', ({ context }) => context.tier < context.tiers.length - 1),
  ),
  hand(
    'case-four-eyes-inverted',
    'case',
    'invert the more-approvals guard: four-eyes tiers take one approval, others ask for two',
    (m) => invert(m, 'needsMoreApprovals', 'needsSecondApproval'),
  ),
  hand(
    'case-lease-never-expires',
    'case',
    'drop claimed --timer.lease--> queued: a silent reviewer holds the case forever',
    (m) => drop(m, 'claimed', 'timer.lease', 0),
  ),
  hand(
    'case-no-manual-escalation',
    'case',
    'drop queued --escalate--> queued: a queued case cannot be escalated by hand',
    (m) => drop(m, 'queued', 'escalate', 0),
  ),
  hand(
    'case-modification-approved-as-is',
    'case',
    'invert planWasModified: the second approval of a modified plan reports it approved unchanged',
    (m) => invert(m, 'planWasModified'),
  ),
  hand(
    'case-no-separation-of-duties',
    'case',
    'reviewerMayClaim forgets separation of duties: the requester may claim their own request',
    (m) => {
      const g = guardOf(m, 'reviewerMayClaim');
      return withGuard(m, 'reviewerMayClaim', (args, params) =>
        g({ ...args, context: { ...args.context, requestedBy: null } }, params),
      );
    },
  ),
  hand('case-escalation-keeps-deadlines', 'case', 'escalate moves up a tier but keeps the old deadlines', (m) => {
    const escalate = actionsOf(m).escalate;
    if (!escalate) throw new Error('hand-written mutant out of date: the case machine has no escalate action');
    return m.provide({
      actions: {
        escalate: wrapAction(escalate, (args, result) =>
          result ? { ...result, timers: args.context.timers } : result,
        ),
      },
    } as never) as AnyStateMachine;
  }),
];
