import { Level } from 'level';
import pino, { type Logger } from 'pino';
import { AuditChain, type AuditDraft, type AuditEntry } from '../base/audit-log.ts';
import { HandoffError } from '../contracts/errors.ts';
import {
  K,
  LIVE_CHUNK,
  noSpace,
  pad,
  StoreWriteError,
  syncFromEnv,
  type EncodedOp,
  type LevelStoreOptions,
  type Op,
  type PrivateBatch,
  type StoreUnavailableError,
} from './level-format.ts';
import { actorsInOrder, loadMany, SpaceFilters, unreferencedBlobs } from './level-filters.ts';
import { corruptError, corruptionBehind, watchReads, writeWhenSpace } from './level-faults.ts';
import {
  BlobError,
  BlobPacker,
  blobGroupKey,
  blobGroupOf,
  blobsByRef,
  newSink,
  hasBlobRefs,
  unpackLegacyRecord,
  type PackSink,
} from './record-codec.ts';
import { Rng } from '../base/rng.ts';
import { failpoint } from '../base/failpoints.ts';
import { openStoreLevel } from '../security/sealed-level.ts';
import { HeadWitness, headProblem, readHeadFile, StoreDamagedError, type StoreHead } from '../base/data-folder.ts';
import type {
  ActorKind,
  ActorRecord,
  Commit,
  DeadLetter,
  JournalEntry,
  LiveEntry,
  OutboxMessage,
  Store,
  TimerEntry,
} from './store.ts';

export { StoreUnavailableError, StoreWriteError, type LevelStoreOptions } from './level-format.ts';

/**
 * The embedded store: one LevelDB in the data folder. Commits are grouped: every commit queued while a
 * batch is being written goes into the next batch, and several updates of the same actor within one
 * batch are coalesced into its latest snapshot (the journal keeps every event). A commit's promise
 * resolves when its batch is written.
 */
export class LevelStore implements Store {
  readonly db: Level<string, unknown>;
  /** The data folder. */
  readonly dir: string;
  /**
   * The database's head against its HANDOFF-HEAD file at open: `problem` when the database is behind
   * it (lost acknowledged writes). Only reported with `lostWrites: 'report'`; otherwise open refused.
   */
  headCheck: { lastAudit: number; file: StoreHead | undefined; problem: string | undefined } = {
    lastAudit: 0,
    file: undefined,
    problem: undefined,
  };
  /** The HANDOFF-HEAD file (data-folder.ts). */
  #head: HeadWitness;
  /** The first corruption LevelDB reported: the store takes no more writes (see {@link onDamaged}). */
  #damage: HandoffError | undefined;
  /**
   * Told once, at the first corruption any read meets: the process should stop (a damaged database
   * is not run on; `handoff doctor`). Until then the store refuses every commit with the same error.
   */
  onDamaged: ((err: HandoffError) => void) | undefined;
  /** Set while the disk is full (see {@link StoreUnavailableError}). */
  #unavailable: StoreUnavailableError | undefined;
  #log: Pick<Logger, 'error' | 'warn'>;
  /** Commits may leave the record behind the journal (`checkpoint: false`); see {@link Commit.checkpoint}. */
  readonly journalTail = true;
  /** One batch at a time, in commit order; a failed batch fails everything queued behind it. */
  readonly orderedCommits = true;
  /** Actors with writes in the next batch (told to `onBatchFailed` if it fails). */
  #batchActors = new Set<string>();
  /** The stored form of records and journal entries (large objects stored once per actor: `record-codec.ts`). */
  #blobs = new BlobPacker();
  /** Objects registered as stored by the next batch's blobs (forgotten if it fails). */
  #batchBlobs: object[] = [];
  /** Key spaces answered "absent" from memory (level-filters.ts). */
  #filters: SpaceFilters;
  #opts: Required<Omit<LevelStoreOptions, 'keyring' | 'logger' | 'lostWrites'>>;
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

  private constructor(dir: string, db: Level<string, unknown>, opts: LevelStoreOptions) {
    this.dir = dir;
    this.db = db;
    this.#opts = {
      maxBatchOps: opts.maxBatchOps ?? 20_000,
      sync: opts.sync ?? syncFromEnv(),
      faultRate: opts.faultRate ?? 0,
      faultSeed: opts.faultSeed ?? 1,
      noSpaceRetryMs: opts.noSpaceRetryMs ?? 500,
    };
    this.#faults = new Rng(this.#opts.faultSeed);
    this.#filters = new SpaceFilters(db, ['a', 'c', 'w']);
    this.#head = new HeadWitness(dir, this.#opts.sync);
    this.#log =
      opts.logger ??
      pino({ level: process.env.HANDOFF_LOG_LEVEL ?? 'warn', base: { app: 'handoff' } }, pino.destination(2));
    watchReads(db, (err) => this.#readError(err));
  }

  /** The corruption that damaged this store, if a read met one. */
  get damage(): HandoffError | undefined {
    return this.#damage;
  }

  /**
   * Opens the store in `dir`. A folder whose LevelDB is damaged (no CURRENT, a missing MANIFEST,
   * corruption reported at open) or behind its HANDOFF-HEAD file is refused with `store.damaged`,
   * never repaired by deletion (data-folder.ts; `handoff doctor`).
   */
  static async open(dir: string, opts: LevelStoreOptions = {}): Promise<LevelStore> {
    const sync = opts.sync ?? syncFromEnv();
    const db = await openStoreLevel(dir, opts.keyring);
    const store = new LevelStore(dir, db, { ...opts, sync });
    try {
      const last = await store.lastAudit();
      const file = readHeadFile(dir);
      const atFile = file && last && last.seq > file.auditSeq ? await store.#auditEntry(file.auditSeq) : last;
      const problem = headProblem(last?.seq ?? 0, atFile?.seq === file?.auditSeq ? atFile?.hash : undefined, file);
      store.headCheck = { lastAudit: last?.seq ?? 0, file, problem };
      if (problem && opts.lostWrites !== 'report') throw new StoreDamagedError(dir, problem, { check: 'head' });
      store.#chain = new AuditChain(last);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw store.#readError(err);
    }
    return store;
  }

  async #auditEntry(seq: number): Promise<AuditEntry | undefined> {
    return (await this.db.get(K.audit(seq))) as AuditEntry | undefined;
  }

  /** The error of a failed read, with LevelDB's corruption named as such; the first one damages the store. */
  #readError(err: unknown): unknown {
    const damage = corruptError(this.dir, err);
    if (!damage) return err;
    if (!this.#damage) {
      this.#damage = damage;
      this.onDamaged?.(damage);
    }
    return corruptError(this.dir, err);
  }

  #corruptionBehind(err: unknown, id: string | undefined): Promise<unknown> {
    return corruptionBehind(this.db, this.dir, err, id, (e) => this.#readError(e));
  }

  /** The disk is full and writes are held: new commands get this error. */
  get unavailable(): StoreUnavailableError | undefined {
    return this.#unavailable;
  }

  commit(c: Commit): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    if (this.#damage) return Promise.reject(this.#damage);
    // Disk full: new commands are refused (the actor restarts from what is durable); the rest is held.
    if (this.#unavailable && c.commandId) return Promise.reject(this.#unavailable);
    this.stats.commits++;
    const a = c.actor;
    this.#batchActors.add(a.id);
    const sink = newSink(pad(c.journal.seq, 10));
    if (c.checkpoint !== false) this.#put(K.actor(a.id), this.#blobs.pack(a.id, a, sink));
    this.#put(K.journal(a.id, c.journal.seq), this.#blobs.pack(a.id, c.journal, sink));
    this.#putBlobs(a.id, sink);
    if (c.liveChanged !== false) {
      if (a.status === 'active') this.#put(K.live(a.id), { kind: a.kind, model: a.model, hot: c.hot ?? false });
      else this.#del(K.live(a.id));
    }
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
    if (this.#filters.absent(`${space}:${key}`, this.#closing)) return undefined;
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

  #putBlobs(id: string, sink: PackSink): void {
    if (sink.n === 0) return;
    this.#put(blobGroupKey(K.actor(id), sink.group), sink.members);
    for (const o of sink.registered) this.#batchBlobs.push(o);
  }

  #put(key: string, value: unknown): void {
    this.#filters.add(key);
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
      const chainHead = this.#chain.head();
      const audit = this.#auditDrafts.map((d) => this.#chain.link(d));
      this.#auditDrafts = [];
      const last = audit.at(-1);
      const ops = [
        ...this.#pending.values(),
        ...audit.map((e): Op => ({ type: 'put', key: K.audit(e.seq), value: e })),
      ];
      const waiters = this.#waiters;
      const batchActors = this.#batchActors;
      const batchBlobs = this.#batchBlobs;
      this.#pending = new Map();
      this.#waiters = [];
      this.#batchActors = new Set();
      this.#batchBlobs = [];
      failpoint('before-commit');
      this.#writing =
        this.#opts.faultRate > 0 && !this.#closing && this.#faults.next() < this.#opts.faultRate
          ? Promise.reject(new StoreWriteError(`injected store fault: batch of ${ops.length} operations not written`))
          : this.#write(ops);
      let failure: unknown;
      try {
        await this.#writing;
      } catch (err) {
        failure = err;
      }
      // Out of space: nothing of the batch was written; it is held and written again when space
      // returns, and everything queued behind it waits (no actor restarts, no repeated errors).
      // LevelDB fails every write after its background work met corruption: the store is damaged.
      if (failure !== undefined) failure = this.#readError(failure);
      const full = failure === undefined ? undefined : noSpace(failure);
      if (full !== undefined && !this.#closing) {
        failure = await writeWhenSpace(
          {
            dir: this.dir,
            db: this.db,
            log: this.#log,
            retryMs: this.#opts.noSpaceRetryMs,
            closing: () => this.#closing,
            write: (o) => this.#write(o),
            unavailable: (e) => (this.#unavailable = e),
          },
          ops,
          full,
        );
      }
      try {
        if (failure !== undefined) throw failure;
        failpoint('after-commit');
        if (last)
          this.#head.written(
            { v: 1, auditSeq: last.seq, auditHash: last.hash, at: new Date().toISOString() },
            this.#closing,
          );
        this.stats.batches++;
        this.stats.ops += ops.length;
        for (const w of waiters) w.resolve();
      } catch (err) {
        // Nothing of the batch was written: the chain continues from the last entry on disk.
        this.#chain.reset(chainHead);
        // The blobs of the failed batch and of those behind it were not written.
        this.#blobs.forget(batchBlobs);
        this.#blobs.forget(this.#batchBlobs);
        this.#batchBlobs = [];
        // Whatever was queued behind the failed batch may derive from what it lost (an actor's next
        // snapshot includes the lost event's changes, but not its journal entry or timer index
        // entries): fail it too, so every actor involved restarts from what is durable.
        const behind = this.#waiters;
        // Every actor with a write in the batch or behind it (a journal entry alone counts: its record
        // may not be rewritten by every commit).
        const actors = batchActors;
        for (const id of this.#batchActors) actors.add(id);
        this.#batchActors = new Set();
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

  /**
   * Hands a batch to LevelDB with its values already JSON-encoded, through abstract-level's private
   * `_batch` (the contract `classic-level` and `SealedLevel` implement) rather than the public
   * `batch()`. The public path normalises every operation (option merging, encodings, hooks) at a
   * cost measured here at about 15 to 20 µs per operation in the running store, more than encoding
   * and writing it: going around it made durable episodes 25 to 50% faster and HITL cycles 40% faster
   * (BENCHMARKS.md, 2026-12-03). The bytes are what `valueEncoding: 'json'` writes, so reads are
   * unchanged. What the public path would check is held here: the store writes only while open,
   * and adds its keys to the filters itself.
   */
  async #write(ops: Op[]): Promise<void> {
    const encoded = ops.map((op): EncodedOp => {
      if (op.type === 'del') return { type: 'del', key: op.key, keyEncoding: 'utf8' };
      if (op.value === undefined || op.value === null) throw new Error(`store: no value to write under ${op.key}`);
      return { type: 'put', key: op.key, value: JSON.stringify(op.value), keyEncoding: 'utf8', valueEncoding: 'utf8' };
    });
    return (this.db as unknown as PrivateBatch)._batch(encoded, { sync: this.#opts.sync });
  }

  async flush(): Promise<void> {
    if (this.#pending.size === 0 && this.#auditDrafts.length === 0 && !this.#writing && this.#waiters.length === 0)
      return;
    await this.#enqueue();
  }

  async load(id: string): Promise<ActorRecord | undefined> {
    // A damaged store loads no actor: each would restart, re-issue its effect and fail again.
    if (this.#damage) throw this.#damage;
    if (this.#filters.absent(K.actor(id), this.#closing)) return undefined;
    try {
      // The record and its blobs are adjacent keys: one read.
      const entries = await this.db.iterator({ gte: K.actor(id), lte: blobGroupKey(K.actor(id), '\uffff') }).all();
      if (entries[0]?.[0] !== K.actor(id)) return undefined;
      return this.#unpackRecord(id, entries[0][1], blobsByRef(entries.slice(1).map(([k, v]) => [blobGroupOf(k)!, v])));
    } catch (err) {
      throw await this.#corruptionBehind(err, id);
    }
  }

  #unpackRecord(id: string, stored: unknown, blobs: Map<string, unknown>): ActorRecord {
    return unpackLegacyRecord(this.#unpack(id, stored, blobs) as ActorRecord)!;
  }

  #unpack(id: string, stored: unknown, blobs: Map<string, unknown>, cache?: Map<string, unknown>): unknown {
    try {
      return this.#blobs.unpack(id, stored, (ref) => blobs.get(ref), cache);
    } catch (err) {
      if (err instanceof BlobError) throw new HandoffError('store.corrupt', err.message, { actorId: id });
      throw err;
    }
  }

  /** The stored blob groups of an actor, by group. */
  async #blobGroupsOf(id: string): Promise<Map<string, Record<string, unknown>>> {
    const groups = new Map<string, Record<string, unknown>>();
    for await (const [key, value] of this.db.iterator({
      gt: blobGroupKey(K.actor(id), ''),
      lte: blobGroupKey(K.actor(id), '\uffff'),
    }))
      groups.set(blobGroupOf(key)!, value as Record<string, unknown>);
    return groups;
  }

  /** The stored blobs of an actor, by ref. */
  async #blobsOf(id: string): Promise<Map<string, unknown>> {
    return blobsByRef(await this.#blobGroupsOf(id));
  }

  /**
   * The records of the live actors, in the live index's order, read LIVE_CHUNK at a time with two or
   * three `getMany` calls per chunk (the records, then the blob groups they refer to). One `load()`
   * per actor (an iterator each) took 10 s of mostly iterator set-up for 10,000 open cases, which is
   * what a console or an inspector reads when it starts.
   */
  async *liveActors(): AsyncIterable<ActorRecord> {
    try {
      yield* this.#liveActors();
    } catch (err) {
      throw await this.#corruptionBehind(err, (err as HandoffError).details?.actorId as string | undefined);
    }
  }

  async *#liveActors(): AsyncIterable<ActorRecord> {
    let ids: string[] = [];
    for await (const key of this.db.keys({ gt: 'l:', lt: 'l;' })) {
      ids.push(key.slice(2));
      if (ids.length < LIVE_CHUNK) continue;
      yield* await loadMany(this.db, ids, (id, stored, blobs) => this.#unpackRecord(id, stored, blobs));
      ids = [];
    }
    if (ids.length > 0)
      yield* await loadMany(this.db, ids, (id, stored, blobs) => this.#unpackRecord(id, stored, blobs));
  }

  /** Every actor record (of `kind`) in id order; with `after`, a range read from the first id after it. */
  async *actors(kind?: ActorKind, after?: string): AsyncIterable<ActorRecord> {
    try {
      yield* actorsInOrder(this.db, kind, (id, stored, blobs) => this.#unpackRecord(id, stored, blobs), after);
    } catch (err) {
      throw await this.#corruptionBehind(err, (err as HandoffError).details?.actorId as string | undefined);
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

  async *journal(id: string, from = 0): AsyncIterable<JournalEntry> {
    try {
      yield* this.#journal(id, from);
    } catch (err) {
      throw await this.#corruptionBehind(err, id);
    }
  }

  async *#journal(id: string, from: number): AsyncIterable<JournalEntry> {
    let blobs: Map<string, unknown> | undefined;
    const cache = new Map<string, unknown>();
    for await (const value of this.db.values({ gte: K.journal(id, from), lt: `j:${id};` })) {
      if (!hasBlobRefs(value)) yield value as JournalEntry;
      else yield this.#unpack(id, value, (blobs ??= await this.#blobsOf(id)), cache) as JournalEntry;
    }
  }

  async replaceFinishedRecord(rec: ActorRecord): Promise<void> {
    const current = await this.load(rec.id);
    if (!current || current.status === 'active' || rec.status === 'active' || rec.seq !== current.seq) {
      throw new HandoffError(
        'store.actor_active',
        `${rec.id}: only the record of a finished actor can be replaced, at its last seq`,
        { actorId: rec.id },
      );
    }
    // New blobs (redacted objects) go to a group of their own.
    const groups = await this.#blobGroupsOf(rec.id);
    let k = 1;
    while (groups.has(`${pad(rec.seq, 10)}r${k}`)) k++;
    const sink = newSink(`${pad(rec.seq, 10)}r${k}`);
    this.#put(K.actor(rec.id), this.#blobs.pack(rec.id, rec, sink));
    this.#putBlobs(rec.id, sink);
    await this.#enqueue();
    await this.#collectBlobs(rec.id);
  }

  /** Deletes journal entries of `id` up to `throughSeq`, in the next batch (see {@link Store.deleteJournal}). */
  async deleteJournal(id: string, throughSeq = Number.MAX_SAFE_INTEGER): Promise<number> {
    let n = 0;
    for await (const key of this.db.keys({
      gte: K.journal(id, 0),
      lte: K.journal(id, Math.min(throughSeq, 9_999_999_999)),
    })) {
      this.#del(key);
      n++;
    }
    if (n > 0) {
      await this.#enqueue();
      await this.#collectBlobs(id);
    }
    return n;
  }

  /** Deletes the blobs of a finished actor nothing refers to any more (see {@link unreferencedBlobs}). */
  async #collectBlobs(id: string): Promise<void> {
    const changes = await unreferencedBlobs(this.db, id, await this.#blobGroupsOf(id));
    for (const [key, kept] of changes) {
      if (kept === undefined) this.#del(key);
      else this.#put(key, kept);
    }
    if (changes.length > 0) await this.#enqueue();
  }

  async *outbox(): AsyncIterable<OutboxMessage> {
    for await (const value of this.db.values({ gt: 'o:', lt: 'o;' })) yield value as OutboxMessage;
  }

  async hasCommand(commandId: string): Promise<boolean> {
    const key = K.command(commandId);
    if (this.#pending.get(key)?.type === 'put') return true;
    if (this.#filters.absent(key, this.#closing)) return false;
    return (await this.db.get(key)) !== undefined;
  }

  async *dueTimers(until: number, limit = Infinity): AsyncIterable<TimerEntry> {
    let n = 0;
    for await (const value of this.db.values({ gt: 't:', lte: `t:${pad(until, 15)}:\uffff` })) {
      if (n++ >= limit) return;
      yield value as TimerEntry;
    }
  }

  async nextTimerAfter(after: number): Promise<number | undefined> {
    for await (const value of this.db.values({ gt: `t:${pad(after, 15)}:\uffff`, lt: 't;', limit: 1 }))
      return (value as TimerEntry).dueAt;
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
    for await (const value of this.db.values({ gt: 'x:', lt: 'x;', reverse: true, limit: 1 }))
      return value as AuditEntry;
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
    await this.#head.close();
    await this.db.close();
  }
}
