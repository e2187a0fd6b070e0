import type { Actor, AnyMachineSnapshot, AnyStateMachine, StateValue } from 'xstate';
import type { Timers } from '../machines/effects.ts';
import { currentTier, type CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { TransitionNotice } from './runtime-types.ts';
import type { ActorKind } from './store.ts';

/** A resident actor: the live XState actor and what the runtime keeps beside it. */
export interface Cell {
  id: string;
  kind: ActorKind;
  model: LoadedModel;
  actor: Actor<AnyStateMachine>;
  seq: number;
  /** Timers as last committed. */
  timers: Timers;
  /** Id of the effect last dispatched, so it is dispatched once. */
  dispatched: string | null;
  /** Commits and effects of this actor in progress; a busy actor is never passivated. */
  pending: number;
  /** Seq of the last commit that rewrote the actor's record (its snapshot); later ones are journal only. */
  checkpointSeq: number;
  /** The hot flag of the live-index entry as last written; undefined: unknown, write it with the next commit. */
  liveHot: boolean | undefined;
}

/** An event as the runtime journals it: a type, a time, and its fields. */
export type RuntimeEvent = { type: string; at: number; [k: string]: unknown };

/**
 * An agent with an effect in flight is rebuilt from its record plus at most this many journal
 * entries: its commits between rest points write the journal entry only (see docs/durability.md).
 */
export const MAX_JOURNAL_TAIL = 8;

export function stateString(value: StateValue): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([k, v]) => (v === undefined ? k : `${k}.${stateString(v)}`))
    .join(',');
}

const NO_CONTEXT = {};
/**
 * What `actor.getPersistedSnapshot()` returns, without XState's walk of the whole context for actor
 * refs to replace (it visits every nested object of the observation, the plan, the decision... on
 * every checkpoint: 5 to 7% of the CPU of a HITL cycle). The walk returns the context itself when
 * it finds no ref, and the runtime's machines spawn no children and hold data only in their context
 * (zod-checked inputs and events), so the result is the same; an actor that has children takes
 * XState's own path. Everything else (history, output, error) is still XState's.
 */
export function persistedSnapshot(logic: AnyStateMachine, snap: AnyMachineSnapshot): unknown {
  if (Object.keys(snap.children).length > 0) return logic.getPersistedSnapshot(snap);
  const persisted = logic.getPersistedSnapshot({ ...snap, context: NO_CONTEXT } as never) as unknown as {
    context: unknown;
  };
  persisted.context = snap.context;
  return persisted;
}

/** What a case's notice carries for queue views: its tier's queue, roles and priority, its claim and its deadlines. */
export function caseQueueOf(c: CaseContext): NonNullable<TransitionNotice['queue']> {
  const tier = currentTier(c);
  return {
    queue: tier.queue,
    roles: tier.roles,
    tier: c.tier,
    priority: tier.priority,
    claimedBy: c.claim?.reviewer ?? null,
    openedAt: c.openedAt,
    ...(c.timers.ack !== undefined ? { ackDueAt: c.timers.ack } : {}),
    ...(c.timers.resolve !== undefined ? { resolveDueAt: c.timers.resolve } : {}),
  };
}
