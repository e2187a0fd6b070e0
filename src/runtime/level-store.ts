import { Level } from 'level';
import { AuditChain, type AuditDraft, type AuditEntry } from './audit-log.ts';
import { HandoffError } from '../contracts/errors.ts';
import { Rng } from './rng.ts';
import type { ActorKind, ActorRecord, Commit, DeadLetter, JournalEntry, LiveEntry, OutboxMessage, Store, TimerEntry } from './store.ts';

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

const pad = (n: number, width: number) => String(n).padStart(width, '0');
const K = {
  actor: (id: string) => `a:${id}`,
  journal: (id: string, seq: number) => `j:${id}:${pad(seq, 10)}`,
  live: (id: string) => `l:${id}`,
  timer: (t: TimerEntry) => `t:${pad(t.dueAt, 15)}:${t.actorId}:${t.name}`,
  outbox: (id: string) => `o:${id}`,
  command: (id: string) => `c:${id}`,
  audit: (seq: number) => `x:${pad(seq, 12)}`,
  meta: (k: string) => `m:${k}`,
};

export interface LevelStoreOptions {
  /** Upper bound of operations written in one batch. @default 20000 */
  maxBatchOps?: number;
  /** fsync each batch (survives power loss, at a large cost in throughput). @default false */
  sync?: boolean;
  /** Fault injection: probability that a batch write fails (all its commits reject). @default 0 */
  faultRate?: number;
  /** Seed of the fault draws. @default 1 */
  faultSeed?: number;
}

/** A write to the store failed; nothing of the failed batch was written. Retrying may succeed. */
export class StoreWriteError extends HandoffError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store.write_failed', message, {}, options);
  }
}

/**
 * The embedded store: one LevelDB in the data folder. Commits are grouped: every commit queued while a
 * batch is being written goes into the next batch, and several updates of the same actor within one
 * batch are coalesced into its latest snapshot (the journal keeps every event). A commit's promise
 * resolves when its batch is written.
 */
export class LevelStore implements Store {
  readonly db: Level<string, unknown>;
  #opts: Required<LevelStoreOptions>;
  #faults: Rng;
  #pending = new Map<string, Op>();
  /** Audit drafts of the next batch, in commit order; linked into the chain when it is written. */
  #auditDrafts: AuditDraft[] = [];
  #chain!: AuditChain;
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #writing: Promise<void> | null = null;
  #scheduled = false;
  #closed = false;
  /** Fault injection stops while closing: a lost write at shutdown has no retry. */
  #closing = false;
  /**
   * Told, synchronously, which actors had writes in a failed batch or queued behind it, before any
   * of their callers hear of it: their in-memory state is ahead of the store and must not be used.
   */
  onBatchFailed: ((actorIds: Set<string>) => void) | undefined;
  /** Batches written and operations in them, for benchmarks and the progress display. */
  readonly stats = { batches: 0, ops: 0, commits: 0 };

  private constructor(db: Level<string, unknown>, opts: LevelStoreOptions) {
    this.db = db;
    this.#opts = { maxBatchOps: opts.maxBatchOps ?? 20_000, sync: opts.sync ?? false, faultRate: opts.faultRate ?? 0, faultSeed: opts.faultSeed ?? 1 };
    this.#faults = new Rng(this.#opts.faultSeed);
  }

  static async open(dir: string, opts: LevelStoreOptions = {}): Promise<LevelStore> {
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    const store = new LevelStore(db, opts);
    store.#chain = new AuditChain(await store.lastAudit());
    return store;
  }

  commit(c: Commit): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    this.stats.commits++;
    const a = c.actor;
    this.#put(K.actor(a.id), a);
    this.#put(K.journal(a.id, c.journal.seq), c.journal);
    if (a.status === 'active') this.#put(K.live(a.id), { kind: a.kind, model: a.model, hot: c.hot ?? false });
    else this.#del(K.live(a.id));
    for (const t of c.timersCleared ?? []) this.#del(K.timer(t));
    for (const t of c.timersSet ?? []) this.#put(K.timer(t), t);
    for (const m of c.outboxPut ?? []) this.#put(K.outbox(m.id), m);
    for (const id of c.outboxDone ?? []) this.#del(K.outbox(id));
    if (c.audit) for (const d of c.audit) this.#auditDrafts.push(d);
    if (c.commandId) this.#put(K.command(c.commandId), { actor: a.id, seq: c.journal.seq });
    return this.#enqueue();
  }

  appendAudit(drafts: AuditDraft[]): Promise<void> {
    for (const d of drafts) this.#auditDrafts.push(d);
    return this.#enqueue();
  }

  /** Writes a value outside the actor keyspaces (e.g. the simulated world's ledger), group-committed. */
  putAux(space: string, key: string, value: unknown): Promise<void> {
    this.#put(`${space}:${key}`, value);
    return this.#enqueue();
  }

  async getAux<T>(space: string, key: string): Promise<T | undefined> {
    const pending = this.#pending.get(`${space}:${key}`);
    if (pending) return pending.type === 'put' ? (pending.value as T) : undefined;
    return (await this.db.get(`${space}:${key}`)) as T | undefined;
  }

  async *auxValues<T>(space: string): AsyncIterable<T> {
    for await (const value of this.db.values({ gt: `${space}:`, lt: `${space};` })) yield value as T;
  }

  deleteMeta(key: string): Promise<void> {
    this.#del(K.meta(key));
    return this.#enqueue();
  }

  putMeta(key: string, value: unknown): Promise<void> {
    this.#put(K.meta(key), value);
    return this.#enqueue();
  }

  #put(key: string, value: unknown): void {
    this.#pending.delete(key);
    this.#pending.set(key, { type: 'put', key, value });
  }
  #del(key: string): void {
    this.#pending.delete(key);
    this.#pending.set(key, { type: 'del', key });
  }

  #enqueue(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#writing && !this.#scheduled) {
      this.#scheduled = true;
      // Let the current turn of the event loop add its commits to the batch.
      setImmediate(() => {
        this.#scheduled = false;
        void this.#drain();
      });
    }
    return p;
  }

  async #drain(): Promise<void> {
    if (this.#writing) return;
    while (this.#pending.size > 0 || this.#auditDrafts.length > 0) {
      const head = this.#chain.head();
      const audit = this.#auditDrafts.map((d) => this.#chain.link(d));
      this.#auditDrafts = [];
      const ops = [...this.#pending.values(), ...audit.map((e): Op => ({ type: 'put', key: K.audit(e.seq), value: e }))];
      const waiters = this.#waiters;
      this.#pending = new Map();
      this.#waiters = [];
      this.#writing =
        this.#opts.faultRate > 0 && !this.#closing && this.#faults.next() < this.#opts.faultRate
          ? Promise.reject(new StoreWriteError(`injected store fault: batch of ${ops.length} operations not written`))
          : this.db.batch(ops as never, { sync: this.#opts.sync } as never);
      try {
        await this.#writing;
        this.stats.batches++;
        this.stats.ops += ops.length;
        for (const w of waiters) w.resolve();
      } catch (err) {
        // Nothing of the batch was written: the chain continues from the last entry on disk.
        this.#chain.reset(head);
        // Whatever was queued behind the failed batch may derive from what it lost (an actor's next
        // snapshot includes the lost event's changes, but not its journal entry or timer index
        // entries): fail it too, so every actor involved restarts from what is durable.
        const behind = this.#waiters;
        const actors = new Set<string>();
        for (const op of [...ops, ...this.#pending.values()]) if (op.key.startsWith('a:')) actors.add(op.key.slice(2));
        this.#pending = new Map();
        this.#auditDrafts = [];
        this.#waiters = [];
        this.onBatchFailed?.(actors);
        for (const w of waiters) w.reject(err);
        for (const w of behind) w.reject(err);
      } finally {
        this.#writing = null;
      }
    }
    // Waiters registered with no ops (nothing to write) still need an answer.
    const idle = this.#waiters;
    this.#waiters = [];
    for (const w of idle) w.resolve();
  }

  async flush(): Promise<void> {
    if (this.#pending.size === 0 && this.#auditDrafts.length === 0 && !this.#writing && this.#waiters.length === 0) return;
    await this.#enqueue();
  }

  async load(id: string): Promise<ActorRecord | undefined> {
    return (await this.db.get(K.actor(id))) as ActorRecord | undefined;
  }

  async *liveActors(): AsyncIterable<ActorRecord> {
    for await (const key of this.db.keys({ gt: 'l:', lt: 'l;' })) {
      const rec = await this.load(key.slice(2));
      if (rec) yield rec;
    }
  }

  async *actors(kind?: ActorKind): AsyncIterable<ActorRecord> {
    for await (const value of this.db.values({ gt: 'a:', lt: 'a;' })) {
      const rec = value as ActorRecord;
      if (!kind || rec.kind === kind) yield rec;
    }
  }

  async *liveIndex(): AsyncIterable<LiveEntry> {
    for await (const [key, value] of this.db.iterator({ gt: 'l:', lt: 'l;' })) {
      const v = value as Omit<LiveEntry, 'id'>;
      yield { id: key.slice(2), kind: v.kind, model: v.model, hot: v.hot ?? true };
    }
  }

  putDeadLetter(letter: DeadLetter): Promise<void> {
    return this.putAux('d', letter.id, letter);
  }
  deadLetters(): AsyncIterable<DeadLetter> {
    return this.auxValues<DeadLetter>('d');
  }
  deleteDeadLetter(id: string): Promise<void> {
    this.#del(`d:${id}`);
    return this.#enqueue();
  }

  async *journal(id: string): AsyncIterable<JournalEntry> {
    for await (const value of this.db.values({ gt: `j:${id}:`, lt: `j:${id};` })) yield value as JournalEntry;
  }

  async *outbox(): AsyncIterable<OutboxMessage> {
    for await (const value of this.db.values({ gt: 'o:', lt: 'o;' })) yield value as OutboxMessage;
  }

  async hasCommand(commandId: string): Promise<boolean> {
    return (await this.db.get(K.command(commandId))) !== undefined;
  }

  async *dueTimers(until: number, limit = Infinity): AsyncIterable<TimerEntry> {
    let n = 0;
    for await (const value of this.db.values({ gt: 't:', lte: `t:${pad(until, 15)}:\uffff` })) {
      if (n++ >= limit) return;
      yield value as TimerEntry;
    }
  }

  async nextTimerAfter(after: number): Promise<number | undefined> {
    for await (const value of this.db.values({ gt: `t:${pad(after, 15)}:\uffff`, lt: 't;', limit: 1 })) return (value as TimerEntry).dueAt;
    return undefined;
  }

  ackOutbox(id: string): Promise<void> {
    this.#del(K.outbox(id));
    return this.#enqueue();
  }

  async *audit(from = 1): AsyncIterable<AuditEntry> {
    for await (const value of this.db.values({ gte: K.audit(from), lt: 'x;' })) yield value as AuditEntry;
  }

  async lastAudit(): Promise<AuditEntry | undefined> {
    for await (const value of this.db.values({ gt: 'x:', lt: 'x;', reverse: true, limit: 1 })) return value as AuditEntry;
    return undefined;
  }

  async getMeta<T>(key: string): Promise<T | undefined> {
    return (await this.db.get(K.meta(key))) as T | undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing = true;
    await this.flush();
    this.#closed = true;
    await this.db.close();
  }
}
