import type { ActorStatus } from '../contracts/ack.ts';
import type { AuditDraft, AuditEntry } from '../base/audit-log.ts';

export type ActorKind = 'agent' | 'case';

/** The durable record of one actor: its latest persisted snapshot and where it stands. */
export interface ActorRecord {
  id: string;
  kind: ActorKind;
  model: string;
  /** Sequence number of the last journaled event; also the actor's version for optimistic concurrency. */
  seq: number;
  status: ActorStatus;
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

/** Something that could not be delivered, kept so an operator can look at it and replay it. */
export interface DeadLetter {
  id: string;
  at: number;
  actorId: string;
  event: { type: string; [k: string]: unknown };
  reason: string;
  code: string;
}

/** A message to deliver to another actor once the commit that produced it is durable. */
export interface OutboxMessage {
  id: string;
  to: string;
  event: { type: string; at: number; [k: string]: unknown };
}

export interface LiveEntry {
  id: string;
  kind: ActorKind;
  model: string;
  /** An effect was pending at the last commit: recovery loads the actor eagerly to re-issue it. */
  hot: boolean;
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
  /** Linked into the hash chain by the store, in commit order, when the batch is written. */
  audit?: AuditDraft[];
  commandId?: string;
  /** The actor has an effect pending after this commit. */
  hot?: boolean;
  /**
   * `false`: the actor's record (its snapshot) is not rewritten; only the journal entry and the rest
   * are written, so the durable record lags behind the journal and whoever loads the actor replays
   * the journal after the record's `seq`. Only sent to stores with {@link Store.journalTail}.
   * @default true
   */
  checkpoint?: boolean;
  /** `false`: the live-index entry (status, hot) is the same as the last one written. @default true */
  liveChanged?: boolean;
}

/**
 * Persistence for the runtime: latest snapshot per actor, journal per actor, a timer index, an outbox
 * and the audit log. Implementations group commits for throughput; `commit` resolves only once the
 * write is durable (see docs/architecture.md, "Durability").
 */
export interface Store {
  /**
   * The store accepts commits with `checkpoint: false` (journal entry only): records may lag behind
   * the journal, and the runtime rebuilds an actor from its record plus the journal after it.
   */
  readonly journalTail?: boolean;
  /**
   * Commits become durable in the order they were made, across actors, and a failed write fails
   * every commit queued behind it (group commit into one log). The runtime relies on it to hand a
   * case's resolution to a resident agent before the case's commit is durable. Stores that commit
   * each actor on its own (JetStream, with compare-and-set per actor) leave it unset.
   */
  readonly orderedCommits?: boolean;
  commit(c: Commit): Promise<void>;
  load(id: string): Promise<ActorRecord | undefined>;
  /** Actors that have not finished. */
  liveActors(): AsyncIterable<ActorRecord>;
  /** Ids of unfinished actors, with whether they had an effect pending (those are loaded at start). */
  liveIndex(): AsyncIterable<LiveEntry>;
  actors(kind?: ActorKind): AsyncIterable<ActorRecord>;
  /** The actor's journal, in order, from seq `from` (default 0) on. */
  journal(id: string, from?: number): AsyncIterable<JournalEntry>;
  /**
   * Deletes an actor's journal entries with seq ≤ `throughSeq` (all of them by default); the
   * actor's record, the audit log and everything else stay. Retention's compaction uses it
   * (docs/governance.md). Resolves with the number of entries deleted, once durable.
   */
  deleteJournal(id: string, throughSeq?: number): Promise<number>;
  /**
   * Replaces the record of a *finished* actor (retention scrubs the personal data out of it,
   * docs/governance.md); an active actor's record changes only through commits
   * (`store.actor_active`). Resolves once durable.
   */
  replaceFinishedRecord(rec: ActorRecord): Promise<void>;
  outbox(): AsyncIterable<OutboxMessage>;
  hasCommand(commandId: string): Promise<boolean>;
  /** Timers due at or before `until`, earliest first. */
  dueTimers(until: number, limit?: number): AsyncIterable<TimerEntry>;
  /** The earliest indexed deadline after `after`. */
  nextTimerAfter(after: number): Promise<number | undefined>;
  /** Removes a delivered outbox message. */
  ackOutbox(id: string): Promise<void>;
  audit(from?: number): AsyncIterable<AuditEntry>;
  /** Appends audit entries that belong to no actor transition (logins, refused commands). */
  appendAudit(drafts: AuditDraft[]): Promise<void>;
  lastAudit(): Promise<AuditEntry | undefined>;
  getMeta<T>(key: string): Promise<T | undefined>;
  putMeta(key: string, value: unknown): Promise<void>;
  deleteMeta(key: string): Promise<void>;
  putDeadLetter(letter: DeadLetter): Promise<void>;
  deadLetters(): AsyncIterable<DeadLetter>;
  deleteDeadLetter(id: string): Promise<void>;
  /** Called synchronously with the actors whose writes were lost in a failed batch. */
  onBatchFailed?: ((actorIds: Set<string>) => void) | undefined;
  /** Writes everything queued and waits for it. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
