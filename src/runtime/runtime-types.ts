import type { InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import type { Planner } from '../actors/planners/planner.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { World } from '../models/define.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { Transport } from '../transport/transport.ts';
import type { CircuitBreakerOptions } from '../base/circuit-breaker.ts';
import type { Clock } from '../base/clock.ts';
import type { FaultSpec } from '../base/faults.ts';
import type { ActorKind, ActorRecord, DeadLetter, OutboxMessage, Store } from './store.ts';
import type { SupervisionStrategy } from './supervisor.ts';

/** Options of {@link Runtime.open}. */
export interface RuntimeOptions {
  store: Store;
  /** The outside world actions act on (the pilots use the simulated {@link LevelWorld}). */
  world: World;
  models: LoadedModel[];
  /** @default systemClock */
  clock?: Clock;
  /** @default a pino logger at `warn`, with sensitive fields of every model redacted */
  logger?: Logger;
  /** @default a new {@link MemoryTransport} (the embedded default) */
  transport?: Transport;
  /** Namespace of subjects on the transport. @default 'default' */
  namespace?: string;
  /** Seed for the stable draws handed to models (simulated failures). @default 'handoff' */
  seed?: string;
  /** Planner per model name. @default the model's rule-based planner */
  planners?: Record<string, Planner>;
  /**
   * Replaces a model's gate (e.g. a gate that tightens when reviewers keep overriding the agent).
   * @default the model's policy gate, `model.gate`
   */
  gateFor?: (model: LoadedModel) => LoadedModel['gate'];
  /** Transient failures injected into perceive / plan / execute / compensate (tests, `--faults`). */
  faults?: FaultSpec;
  /** Restart strategy per actor kind. @default see {@link DEFAULT_STRATEGY} */
  supervision?: Partial<Record<ActorKind, Partial<SupervisionStrategy>>>;
  /** Circuit breaker per action type. @default 5 consecutive failures, 30 s cool-down */
  circuitBreaker?: CircuitBreakerOptions;
  /**
   * Passivation: at most this many actors stay in memory; idle ones beyond it are evicted and
   * rehydrated from the store on their next message or timer. A resident actor takes some 30-40 KB
   * of heap. @default 10000
   */
  maxResident?: number;
  /**
   * Timers due within this horizon (clock ms) are held in memory; later ones stay in the store's
   * timer index and are loaded as the horizon moves. @default 60000
   */
  timerHorizonMs?: number;
  /** XState's inspection events of every hosted actor, with its id (the inspector's stream, `src/inspect`). */
  inspect?: (event: InspectionEvent, actorId: string) => void;
  /** Told of every durable transition, with the state it left and the whole event (tracing and metrics, `src/telemetry`). */
  telemetry?: (t: TransitionTelemetry) => void;
  /**
   * Cluster hook (`src/cluster`): whether this node hosts the actor now (it holds the lease of the
   * actor's group). An actor this node does not own is never loaded or spawned here; the attempt
   * fails with `actor.moved`. @default every actor
   */
  owns?: (actorId: string) => boolean;
  /**
   * Cluster hook (`src/cluster`): effect fencing. `token` is the fencing token (lease revision) under
   * which an effect is dispatched, captured at dispatch; `check` throws (`lease.lost`) when this node
   * can no longer prove it holds the actor's lease under that token. Execute and compensate effects
   * check it before the ledger lookup and at every application (`EffectFence`). @default none
   */
  fencing?: { token(actorId: string): number | undefined; check(actorId: string, token: number): void };
  /**
   * Destinations outside the actor system for outbox messages (webhooks: `src/notify`). What a
   * channel adds to a transition is written in the same commit and delivered at least once.
   * @default none
   */
  channels?: OutboxChannel[];
}

/** A transition as an {@link OutboxChannel} sees it, before it is written. */
export interface ChannelTransition {
  id: string;
  kind: ActorKind;
  model: LoadedModel;
  seq: number;
  event: { type: string; at: number; [k: string]: unknown };
  state: string;
  status: ActorRecord['status'];
  /** The context before the event (undefined at creation) and after it. */
  prev: AgentContext | CaseContext | undefined;
  context: AgentContext | CaseContext;
}

/**
 * A destination outside the actor system for outbox messages (webhooks, `src/notify`). The messages
 * it adds to a commit are written atomically with the transition, handed to `deliver` once durable,
 * and handed again at every start until the channel removes them with `store.ackOutbox`.
 */
export interface OutboxChannel {
  /** Outbox messages whose `to` starts with this belong to the channel, e.g. `webhook:`. */
  readonly prefix: string;
  /** Messages to write with this transition. It runs on the write path: quick, and it must not throw. */
  messagesFor(t: ChannelTransition): OutboxMessage[];
  deliver(msg: OutboxMessage): void;
  /** Delivers one of the channel's dead letters again; throws when it still cannot be delivered. */
  replay(letter: DeadLetter): Promise<void>;
}

export interface ActorView {
  id: string;
  kind: ActorKind;
  model: string;
  seq: number;
  state: string;
  status: ActorRecord['status'];
  context: AgentContext | CaseContext;
}

/** Published on every durable transition, and to in-process listeners. */
export interface TransitionNotice {
  id: string;
  kind: ActorKind;
  model: string;
  seq: number;
  at: number;
  event: string;
  state: string;
  status: ActorRecord['status'];
  /** For cases: what a queue view needs. */
  queue?: {
    queue: string;
    roles: string[];
    tier: number;
    priority: number;
    claimedBy: string | null;
    ackDueAt?: number;
    resolveDueAt?: number;
    openedAt: number;
  };
}

/** What {@link RuntimeOptions.telemetry} is told: the notice, the state left (null at creation), the event, the context after it. */
export interface TransitionTelemetry extends TransitionNotice {
  from: string | null;
  data: { type: string; at: number; [k: string]: unknown };
  context: AgentContext | CaseContext;
}
