import type { Logger } from 'pino';
import type { Ack } from '../contracts/ack.ts';
import type { AgentEvent } from '../machines/agent.ts';
import type { CaseEvent } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { Cell, RuntimeEvent } from './cell.ts';
import type { Clock } from '../base/clock.ts';
import type { ActorKind, ActorRecord, OutboxMessage, Store } from './store.ts';

/** Counters for progress displays and benchmarks. */
export interface RuntimeStats {
  events: number;
  effects: number;
  rejected: number;
  crashes: number;
  restarts: number;
  restored: number;
  evicted: number;
  rehydrated: number;
  deadLetters: number;
  storeFailures: number;
}

/**
 * What the runtime's parts (effects, outbox, supervision) use of the actor host (`hosting.ts`): one
 * interface, so the parts depend on it and not on each other or on the host's class.
 */
export interface Host {
  readonly store: Store;
  readonly clock: Clock;
  readonly log: Logger;
  readonly stats: RuntimeStats;
  /** Resident actors by id. */
  readonly cells: ReadonlyMap<string, Cell>;
  /** The runtime is closing or closed. */
  readonly stopped: boolean;
  /** Counts one unit of work in progress (see `Runtime.whenIdle`); each `begin` is paired with a `settle`. */
  begin(): void;
  settle(): void;
  model(name: string): LoadedModel;
  /** The resident cell, or the record of a finished actor, or undefined. Loads passivated actors. */
  cell(id: string): Promise<Cell | ActorRecord | undefined>;
  /** The durable record brought up to the journal (for actors that are not resident). */
  currentRecord(id: string): Promise<ActorRecord | undefined>;
  send(actorId: string, event: AgentEvent | CaseEvent): Promise<Ack>;
  spawn(kind: ActorKind, id: string, model: LoadedModel, input: unknown): Promise<Ack>;
  /** Stops a resident actor and forgets it, without any write (if it is still this cell). */
  drop(cell: Cell): void;
  /** Restarts an actor from its last durable snapshot after `delayMs`. */
  scheduleRestart(id: string, reason: string, delayMs?: number): void;
  deadLetter(actorId: string, event: RuntimeEvent, reason: string, code: string): Promise<void>;
  /** Hands a durable outbox message to its actor or channel. */
  deliver(msg: OutboxMessage): void;
  /** An operator decided a case about `msg.to` (a suspended actor, or a target with a handler). */
  operatorDecision(msg: OutboxMessage): Promise<void>;
}
