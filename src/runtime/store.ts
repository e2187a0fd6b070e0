import type { AuditEntry } from './audit-log.ts';

export type ActorKind = 'agent' | 'case';

/** The durable record of one actor: its latest persisted snapshot and where it stands. */
export interface ActorRecord {
  id: string;
  kind: ActorKind;
  model: string;
  /** Sequence number of the last journaled event; also the actor's version for optimistic concurrency. */
  seq: number;
  status: 'active' | 'done' | 'error' | 'stopped';
  /** State value as a dotted string, e.g. `awaitingReview`. */
  state: string;
  /** XState persisted snapshot. */
  snapshot: unknown;
  updatedAt: number;
}

/** One accepted event in an actor's journal. Seq 0 is the creation, with the actor's input. */
export interface JournalEntry {
  seq: number;
  at: number;
  event: { type: string; [k: string]: unknown };
  /** State after the event. */
  state: string;
}

/** A message to deliver to another actor once the commit that produced it is durable. */
export interface OutboxMessage {
  id: string;
  to: string;
  event: { type: string; at: number; [k: string]: unknown };
}

export interface TimerEntry {
  actorId: string;
  name: string;
  dueAt: number;
}

/** Everything one accepted event changes, written atomically. */
export interface Commit {
  actor: ActorRecord;
  journal: JournalEntry;
  timersSet?: TimerEntry[];
  timersCleared?: TimerEntry[];
  outboxPut?: OutboxMessage[];
  outboxDone?: string[];
  audit?: AuditEntry[];
  commandId?: string;
}

/**
 * Persistence for the runtime: latest snapshot per actor, journal per actor, a timer index, an outbox
 * and the audit log. Implementations group commits for throughput; `commit` resolves only once the
 * write is durable (see docs/architecture.md, "Durability").
 */
export interface Store {
  commit(c: Commit): Promise<void>;
  load(id: string): Promise<ActorRecord | undefined>;
  /** Actors that have not finished. */
  liveActors(): AsyncIterable<ActorRecord>;
  actors(kind?: ActorKind): AsyncIterable<ActorRecord>;
  journal(id: string): AsyncIterable<JournalEntry>;
  outbox(): AsyncIterable<OutboxMessage>;
  hasCommand(commandId: string): Promise<boolean>;
  /** Timers due at or before `until`, earliest first. */
  dueTimers(until: number, limit?: number): AsyncIterable<TimerEntry>;
  audit(from?: number): AsyncIterable<AuditEntry>;
  /** Appends audit entries that belong to no actor transition (logins, refused commands). */
  appendAudit(entries: AuditEntry[]): Promise<void>;
  lastAudit(): Promise<AuditEntry | undefined>;
  getMeta<T>(key: string): Promise<T | undefined>;
  putMeta(key: string, value: unknown): Promise<void>;
  /** Writes everything queued and waits for it. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
