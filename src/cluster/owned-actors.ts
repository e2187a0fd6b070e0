import type { ActorKind, ActorRecord, Commit, OutboxMessage, TimerEntry } from '../runtime/store.ts';
import { groupOf } from './keys.ts';
import { timerKey } from './store-format.ts';

/** What the JetStream store knows of an actor it writes. */
export interface Tracked {
  id: string;
  group: string;
  kind: ActorKind;
  model: string;
  status: ActorRecord['status'];
  hot: boolean;
  /** Stream sequence of the actor's last ACT message (the expected last sequence of its next write). */
  actSeq: number;
  /**
   * The actor's version (journal seq) as last written: its ACT record's, or a later journal-only
   * commit's.
   */
  seq: number;
  /** The last write's outcome is unknown: fetch the sequence from the server before the next write. */
  stale: boolean;
  timers: TimerEntry[];
  /** Fencing token (lease revision) under which this writer tracks the actor; a commit under another one is refused. */
  lease?: number | undefined;
  /**
   * Stream sequence of the last message on the actor's journal subject (the expected last subject
   * sequence of its next journal-only commit); undefined: not known here, read it from the server.
   */
  jnlSeq?: number | undefined;
}

/**
 * The JetStream store's in-memory indexes of the actors this process owns (all of them in
 * single-writer mode, the adopted groups' in a cluster): live index, timers and outbox. The durable
 * truth is the ACT stream; these are rebuilt from it when a group is adopted.
 */
export class OwnedActors {
  readonly tracked = new Map<string, Tracked>();
  readonly outbox = new Map<string, { group: string; msg: OutboxMessage }>();
  #groups = new Map<string, Set<string>>();
  #timers = new Map<string, TimerEntry>();
  #timerOrder: TimerEntry[] | null = null;
  /**
   * Groups known to have no actor in the store but the ones tracked here (see {@link markFresh}),
   * with the revision of the lease that made them so.
   */
  #fresh = new Map<string, number>();

  get(id: string): Tracked | undefined {
    return this.tracked.get(id);
  }

  set(t: Tracked, prev: Tracked | undefined): void {
    for (const old of prev?.timers ?? []) this.#timers.delete(timerKey(old));
    for (const nt of t.timers) this.#timers.set(timerKey(nt), nt);
    this.#timerOrder = null;
    this.tracked.set(t.id, t);
    let g = this.#groups.get(t.group);
    if (!g) this.#groups.set(t.group, (g = new Set()));
    g.add(t.id);
  }

  untrack(id: string): void {
    const t = this.tracked.get(id);
    if (!t) return;
    for (const old of t.timers) this.#timers.delete(timerKey(old));
    this.#timerOrder = null;
    this.tracked.delete(id);
    this.#groups.get(t.group)?.delete(id);
  }

  applyOutbox(c: Commit, group: string): void {
    for (const m of c.outboxPut ?? []) this.outbox.set(m.id, { group: groupOf(m.to) || group, msg: m });
    for (const mid of c.outboxDone ?? []) this.outbox.delete(mid);
  }

  /**
   * The group's lease was created on a key never written: the store holds none of its actors but the
   * ones this writer commits (and tracks) from now on, so a read of any other is known to find nothing.
   */
  markFresh(group: string, revision: number): void {
    this.#fresh.set(group, revision);
  }

  /** The revision of a fresh group's lease (its first fencing token), while it is known fresh. */
  firstToken(group: string): number | undefined {
    return this.#fresh.get(group);
  }

  /** Whether the store is known to hold no record of `id` (an untracked actor of a fresh group). */
  knownAbsent(id: string): boolean {
    return this.#fresh.size > 0 && !this.tracked.has(id) && this.#fresh.has(groupOf(id));
  }

  /** A write of the group failed (its outcome may be unknown): reads go to the store again. */
  forgetFresh(group: string): void {
    this.#fresh.delete(group);
  }

  /** Stops tracking a group: its actors' timers and outbox leave the indexes. Returns its actors' ids. */
  releaseGroup(group: string): string[] {
    this.#fresh.delete(group);
    const ids = [...(this.#groups.get(group) ?? [])];
    for (const id of ids) this.untrack(id);
    this.#groups.delete(group);
    for (const [id, o] of this.outbox) if (o.group === group) this.outbox.delete(id);
    return ids;
  }

  outboxOf(group: string): OutboxMessage[] {
    return [...this.outbox.values()].filter((o) => o.group === group).map((o) => o.msg);
  }

  groupActors(group: string, activeOnly = false): string[] {
    return [...(this.#groups.get(group) ?? [])].filter(
      (id) => !activeOnly || this.tracked.get(id)?.status === 'active',
    );
  }

  trackedGroups(): string[] {
    return [...this.#groups.keys()].filter((g) => (this.#groups.get(g)?.size ?? 0) > 0);
  }

  groupActive(group: string): boolean {
    for (const id of this.#groups.get(group) ?? []) if (this.tracked.get(id)?.status === 'active') return true;
    return false;
  }

  sortedTimers(): TimerEntry[] {
    this.#timerOrder ??= [...this.#timers.values()].sort((a, b) => a.dueAt - b.dueAt);
    return this.#timerOrder;
  }
}
