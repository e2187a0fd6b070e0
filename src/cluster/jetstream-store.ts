import { nuid, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { sealingJetStream } from './keys-jetstream.ts';
import type { AuditDraft, AuditEntry } from '../base/audit-log.ts';
import { HandoffError } from '../contracts/errors.ts';
import { StoreWriteError } from '../runtime/level-store.ts';
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
} from '../runtime/store.ts';
import { groupOf, untok } from './keys.ts';
import { AuditStream } from './audit-stream.ts';
import { OwnedActors } from './owned-actors.ts';
import { StreamIO } from './stream-io.ts';
import { JsWire } from './js-wire.ts';
import { DerivedWrites } from './tails.ts';
import { ActorWrites } from './actor-writes.ts';
import { IndexSpace, type AuxVersion } from './index-space.ts';
import {
  decode,
  encode,
  storeSubjects,
  streamNames,
  streamSpecs,
  type ActIndex,
  type ActMsg,
  type JetStreamStoreOptions,
  type JnlMsg,
  type OwnershipGuard,
  type StoreSubjects,
  type StreamNames,
} from './store-format.ts';
import { within } from '../base/within.ts';

export { type JetStreamStoreOptions, type OwnershipGuard } from './store-format.ts';

/**
 * The persistence interface on NATS JetStream, so every node of a cluster sees every actor.
 *
 * Layout, per namespace `<ns>` (stream names upper-cased):
 *
 * | stream | subjects | keeps | holds |
 * |---|---|---|---|
 * | `HO_<NS>_ACT` | `ho.<ns>.act.<group>.<actor>` | last message per subject | each actor's latest record (snapshot), current deadlines, pending derived writes, writer and fencing token |
 * | `HO_<NS>_JNL` | `ho.<ns>.jnl.a.<group>.<actor>`, `ho.<ns>.jnl.x.<id>` | everything (deny delete) | the journal: one message per accepted event, with its audit drafts |
 * | `HO_<NS>_AUD` | `ho.<ns>.aud` | everything (deny delete) | the audit hash chain, linked by one sequencer from the journal |
 * | `HO_<NS>_IDX` | `ho.<ns>.idx.{cmd,out,dl,meta,aux}.…` | last message per subject | command ids, outbox, dead letters, meta, auxiliary spaces (the simulated world's ledger) |
 *
 * **A commit is one message**: the actor's new record goes to its ACT subject with
 * `Nats-Expected-Last-Subject-Sequence` (compare-and-set on the actor: a writer that did not see
 * the latest write is refused) and a `Nats-Msg-Id` (a retry after a timeout or reconnect is not
 * written twice). It resolves once JetStream acknowledged it: the record, the event and its
 * consequences are durable before the caller hears "accepted". Journal entry, command id and
 * outbox changes follow as derived writes (tails); until each is confirmed it is repeated in the
 * actor's next ACT message, so whoever adopts the actor after a crash finds and completes them
 * (check-then-write, idempotent).
 *
 * **Fencing**: with a guard, every write first checks that this node holds the lease of the
 * actor's group (`LeaseLostError` otherwise); a node that adopts a group rewrites each active actor's
 * record (a fence) with compare-and-set, so a former owner still running can no longer write.
 *
 * **Indexes**: the live index, the timer index and the outbox of the actors this process owns are
 * kept in memory (built when a group is adopted, from the ACT messages' index headers, and kept up
 * to date by commits); the durable truth is the ACT stream.
 */
export class JetStreamStore implements Store {
  readonly namespace: string;
  readonly writer: string;
  readonly nc: NatsConnection;
  readonly streams: StreamNames;
  #js!: JetStreamClient;
  #jsm!: JetStreamManager;
  #io!: StreamIO;
  #auditLog!: AuditStream;
  #guard: OwnershipGuard | undefined;
  #opts: {
    replicas: number;
    storage: 'file' | 'memory';
    writeTimeoutMs: number;
    publishTimeoutMs: number;
    duplicateWindowMs: number;
    directReads: boolean;
  };
  #own = new OwnedActors();
  #tracked = this.#own.tracked;
  #outbox = this.#own.outbox;
  #tails!: DerivedWrites;
  #writes!: ActorWrites;
  #index!: IndexSpace;
  #closed = false;
  #closing = false;
  onBatchFailed: ((actorIds: Set<string>) => void) | undefined;
  readonly stats = {
    commits: 0,
    journalOnly: 0,
    fences: 0,
    journalFences: 0,
    conflicts: 0,
    leaseRefusals: 0,
    retries: 0,
    tails: 0,
    repairedTails: 0,
  };
  /**
   * Commits may be journal-only (`checkpoint: false`): the entry is appended to the actor's journal
   * subject with compare-and-set and the ACT record is rewritten only at checkpoints. On in cluster
   * mode (with a guard), where every adoption fences the journal and reloads every active actor;
   * off in single-writer mode, whose recovery reads the hot flag from the ACT records only.
   */
  readonly journalTail: boolean;

  private constructor(opts: JetStreamStoreOptions) {
    this.nc = opts.nc;
    this.namespace = opts.namespace ?? 'default';
    this.writer = opts.writer ?? `w-${nuid.next()}`;
    this.journalTail = opts.journalTail ?? !!opts.guard;
    this.#guard = opts.guard;
    this.#opts = {
      replicas: opts.replicas ?? 1,
      storage: opts.storage ?? 'file',
      writeTimeoutMs: opts.writeTimeoutMs ?? 30_000,
      publishTimeoutMs: opts.publishTimeoutMs ?? 5000,
      duplicateWindowMs: opts.duplicateWindowMs ?? 120_000,
      directReads: opts.directReads ?? (opts.replicas ?? 1) === 1,
    };
    this.streams = streamNames(this.namespace);
    this.#sub = storeSubjects(this.namespace);
  }

  /** Opens the store: creates the namespace's streams if needed (idempotent). */
  static async open(opts: JetStreamStoreOptions): Promise<JetStreamStore> {
    const store = new JetStreamStore(opts);
    const js = jetstream(opts.nc, { timeout: store.#opts.publishTimeoutMs });
    store.#js = opts.keyring ? sealingJetStream(js, opts.keyring) : js;
    store.#jsm = await jetstreamManager(opts.nc, { timeout: store.#opts.publishTimeoutMs });
    store.#io = new StreamIO({
      js: store.#js,
      jsm: store.#jsm,
      wire: new JsWire(opts.nc),
      streams: store.streams,
      opts: store.#opts,
      keyring: opts.keyring,
      log: opts.logger,
      stats: store.stats,
      closed: () => store.#closed,
    });
    store.#tails = new DerivedWrites({
      io: store.#io,
      sub: store.#sub,
      log: opts.logger,
      stats: store.stats,
      closed: () => store.#closed,
      closing: () => store.#closing,
      onJournal: (id, journalSeq, streamSeq) => store.#writes.journalWritten(id, journalSeq, streamSeq),
    });
    store.#index = new IndexSpace(store.#io, store.#sub);
    store.#writes = new ActorWrites({
      writer: store.writer,
      io: store.#io,
      sub: store.#sub,
      guard: store.#guard,
      own: store.#own,
      tails: store.#tails,
      stats: store.stats,
      batchFailed: (ids) => store.onBatchFailed?.(ids),
      journalTail: store.journalTail,
    });
    store.#auditLog = new AuditStream(store.#io, store.#sub, store.writer, opts.logger, opts.keyring);
    await store.#ensureStreams();
    if (opts.trackAll ?? !opts.guard) await store.#writes.trackEverything();
    if (opts.auditSequencer ?? !opts.guard) await store.startAuditSequencer();
    return store;
  }

  // ------------------------------------------------------------------------------------------------
  // Subjects and streams
  // ------------------------------------------------------------------------------------------------

  #sub: StoreSubjects;

  async #ensureStreams(): Promise<void> {
    const specs = streamSpecs(this.namespace, this.#opts);
    for (const spec of specs) {
      try {
        const info = await this.#jsm.streams.info(spec.name);
        if (spec.allow_direct && !info.config.allow_direct)
          await this.#jsm.streams.update(spec.name, { ...info.config, allow_direct: true });
      } catch {
        try {
          await this.#jsm.streams.add(spec);
        } catch (err) {
          // Another node created it meanwhile.
          await this.#jsm.streams.info(spec.name).catch(() => {
            throw err;
          });
        }
      }
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Commits and adoption (actor-writes.ts)
  // ------------------------------------------------------------------------------------------------

  commit(c: Commit): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreWriteError('store is closed'));
    return this.#writes.commit(c);
  }

  /** See {@link ActorWrites.adoptGroup}. */
  adoptGroup(group: string): Promise<{ active: string[]; hot: string[]; outbox: OutboxMessage[] }> {
    return this.#writes.adoptGroup(group);
  }

  /**
   * The group's lease was created on a key never written (`Lease.fresh`): nobody has written its
   * actors, so loading one this store does not track needs no read (see {@link OwnedActors.markFresh}).
   */
  markFresh(group: string, revision: number): void {
    this.#own.markFresh(group, revision);
  }

  /**
   * A fresh group's first fencing token (the revision of its lease created on a never-written key),
   * while this store knows the group fresh: no smaller token of the group can exist.
   */
  firstToken(group: string): number | undefined {
    return this.#own.firstToken(group);
  }

  /** Stops tracking a group (its lease moved): its actors' timers and outbox leave this node's indexes. */
  releaseGroup(group: string): void {
    for (const id of this.#own.releaseGroup(group)) this.#writes.justRead.delete(id);
  }

  /** Undelivered outbox messages of a group's actors. */
  outboxOf(group: string): OutboxMessage[] {
    return this.#own.outboxOf(group);
  }

  /** Ids of the tracked actors of a group (only the active ones with `activeOnly`). */
  groupActors(group: string, activeOnly = false): string[] {
    return this.#own.groupActors(group, activeOnly);
  }

  /** Groups with at least one tracked actor. */
  trackedGroups(): string[] {
    return this.#own.trackedGroups();
  }

  /**
   * An actor's durable status as this writer last wrote (or, adopting it, read) it; undefined when
   * this writer does not track the actor or its last write's outcome is unknown.
   */
  writtenStatus(id: string): ActorRecord['status'] | undefined {
    const t = this.#tracked.get(id);
    return t && !t.stale ? t.status : undefined;
  }

  /** Whether a group has an active actor tracked here. */
  groupActive(group: string): boolean {
    return this.#own.groupActive(group);
  }

  // ------------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------------

  async load(id: string): Promise<ActorRecord | undefined> {
    // A new actor of a group created here (the runtime checks that an actor it spawns does not exist).
    if (this.#own.knownAbsent(id)) return undefined;
    // Just read by an adoption (which loads the actor next): no second round trip.
    const fresh = this.#writes.justRead.get(id);
    if (fresh) {
      this.#writes.justRead.delete(id);
      if (performance.now() - fresh.at < 5000) return fresh.record;
    }
    const m = await this.#io.getLast(this.streams.act, this.#sub.act(id));
    return m ? decode<ActMsg>(m.data).record : undefined;
  }

  async *liveActors(): AsyncIterable<ActorRecord> {
    for (const t of [...this.#tracked.values()]) {
      if (t.status !== 'active') continue;
      const rec = await this.load(t.id);
      if (rec && rec.status === 'active') yield rec;
    }
  }

  async *liveIndex(): AsyncIterable<LiveEntry> {
    for (const t of [...this.#tracked.values()])
      if (t.status === 'active') yield { id: t.id, kind: t.kind, model: t.model, hot: t.hot };
  }

  async *actors(kind?: ActorKind): AsyncIterable<ActorRecord> {
    for await (const m of this.#io.scan(this.streams.act, this.#sub.actAll())) {
      const rec = decode<ActMsg>(m.data).record;
      if (!kind || rec.kind === kind) yield rec;
    }
  }

  /** Index entries of every actor (headers only: no snapshots), for counts and summaries. */
  async *index(): AsyncIterable<{
    id: string;
    kind: ActorKind;
    status: ActorRecord['status'];
    seq: number;
    writer: string;
  }> {
    for await (const m of this.#io.scan(this.streams.act, this.#sub.actAll(), { headersOnly: true })) {
      const ix = JSON.parse(m.headers?.get('Handoff-Index') || '{}') as ActIndex;
      const parts = m.subject.split('.');
      yield {
        id: untok(parts[parts.length - 1]!),
        kind: ix.k,
        status: ix.s,
        seq: ix.q,
        writer: m.headers?.get('Handoff-Writer') ?? '',
      };
    }
  }

  async *journal(id: string): AsyncIterable<JournalEntry> {
    const subject = this.#sub.jnl(id);
    const pending = this.#tails.inFlight(subject);
    if (pending) await pending;
    for await (const m of this.#io.scan(this.streams.jnl, subject)) {
      const j = decode<JnlMsg>(m.data).journal;
      if (j) yield j;
    }
  }

  /**
   * Refused: the journal stream is created with `deny_delete` and `deny_purge` (its messages also
   * carry the audit drafts the sequencer links), so retention cannot compact it here (docs/governance.md,
   * "Limits").
   */
  /** Refused, as {@link deleteJournal} is: retention runs on the LevelDB store. */
  async replaceFinishedRecord(rec: ActorRecord): Promise<void> {
    throw new HandoffError('store.unsupported', `${rec.id}: retention's scrubbing of records needs the LevelDB store`, {
      actorId: rec.id,
    });
  }

  async deleteJournal(id: string): Promise<number> {
    throw new HandoffError(
      'store.unsupported',
      `${id}: the JetStream journal stream ${this.streams.jnl} denies deletes; retention compaction needs the LevelDB store`,
      { actorId: id, stream: this.streams.jnl },
    );
  }

  async *outbox(): AsyncIterable<OutboxMessage> {
    for (const o of [...this.#outbox.values()]) yield o.msg;
  }

  async hasCommand(commandId: string): Promise<boolean> {
    if (this.#tails.hasCommand(commandId)) return true;
    return (await this.#io.getLast(this.streams.idx, this.#sub.cmd(commandId))) !== null;
  }

  async *dueTimers(until: number, limit = Infinity): AsyncIterable<TimerEntry> {
    let n = 0;
    for (const t of this.#own.sortedTimers()) {
      if (t.dueAt > until || n++ >= limit) return;
      yield t;
    }
  }

  async nextTimerAfter(after: number): Promise<number | undefined> {
    for (const t of this.#own.sortedTimers()) if (t.dueAt > after) return t.dueAt;
    return undefined;
  }

  async ackOutbox(id: string): Promise<void> {
    const o = this.#outbox.get(id);
    const group = o?.group ?? groupOf(id.replace(/\.resolution$/, ''));
    this.#outbox.delete(id);
    await this.#io.retrying(`ack outbox ${id}`, () =>
      this.#io.publish(this.#sub.out(group, id), encode({ del: true }), {
        msgID: `outd:${id}`,
        timeout: this.#opts.publishTimeoutMs,
      }),
    );
  }

  // ------------------------------------------------------------------------------------------------
  // Audit
  // ------------------------------------------------------------------------------------------------

  audit(from = 1): AsyncIterable<AuditEntry> {
    return this.#auditLog.audit(from);
  }

  appendAudit(drafts: AuditDraft[]): Promise<void> {
    return this.#auditLog.appendAudit(drafts);
  }

  lastAudit(): Promise<AuditEntry | undefined> {
    return this.#auditLog.lastAudit();
  }

  /** Runs the audit sequencer here: links the journal's audit drafts into the hash chain, once each. */
  startAuditSequencer(): Promise<void> {
    return this.#auditLog.startSequencer();
  }

  stopAuditSequencer(): Promise<void> {
    return this.#auditLog.stopSequencer();
  }

  get runsAuditSequencer(): boolean {
    return this.#auditLog.runsSequencer;
  }

  /** Waits until every journal message written so far has been linked into the audit chain. */
  auditSettled(timeoutMs = 30_000): Promise<void> {
    return this.#auditLog.settled(timeoutMs);
  }

  // ------------------------------------------------------------------------------------------------
  // Meta, intents, dead letters, auxiliary spaces
  // ------------------------------------------------------------------------------------------------

  getMeta<T>(key: string): Promise<T | undefined> {
    return this.#index.getMeta<T>(key);
  }

  putMeta(key: string, value: unknown): Promise<void> {
    return this.#index.putMeta(key, value);
  }

  deleteMeta(key: string): Promise<void> {
    return this.#index.deleteMeta(key);
  }

  putDeadLetter(letter: DeadLetter): Promise<void> {
    return this.#index.putDeadLetter(letter);
  }

  deadLetters(): AsyncIterable<DeadLetter> {
    return this.#index.deadLetters();
  }

  deleteDeadLetter(id: string): Promise<void> {
    return this.#index.deleteDeadLetter(id);
  }

  /** See {@link IndexSpace.updateAux}. */
  updateAux<T>(
    space: string,
    key: string,
    update: (current: T | undefined) => { value: T; msgId: string },
  ): Promise<T> {
    return this.#index.updateAux(space, key, update);
  }

  /** See {@link IndexSpace.casAux}. */
  casAux<T>(
    space: string,
    key: string,
    update: (current: T | undefined) => { value: T; msgId: string } | null,
    known?: AuxVersion<T>,
  ): Promise<AuxVersion<T>> {
    return this.#index.casAux(space, key, update, known);
  }

  /** See {@link IndexSpace.readAux}. */
  readAux<T>(space: string, key: string): Promise<AuxVersion<T>> {
    return this.#index.readAux<T>(space, key);
  }

  getAux<T>(space: string, key: string): Promise<T | undefined> {
    return this.#index.getAux<T>(space, key);
  }

  auxValues<T>(space: string): AsyncIterable<T> {
    return this.#index.auxValues<T>(space);
  }

  // ------------------------------------------------------------------------------------------------
  // Lifecycle
  // ------------------------------------------------------------------------------------------------

  async flush(): Promise<void> {
    while (this.#writes.inflight.size > 0 || this.#tails.size > 0) {
      await Promise.allSettled([...this.#writes.inflight, ...this.#tails.all()]);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing = true;
    // Writes in flight get up to 15 s to land (`within` clears its timer once they have).
    await within(this.flush(), 15_000);
    await this.stopAuditSequencer();
    this.#closed = true;
    this.#io.wire.close();
  }
}
