import { headers as natsHeaders, nanos, nuid, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, JetStreamApiError, type ConsumerConfig, type JetStreamClient, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Keyring } from '../security/keyring.ts';
import { openPayload, sealingJetStream } from '../security/keys-jetstream.ts';
import { AuditChain, type AuditDraft, type AuditEntry } from './audit-log.ts';
import { HandoffError } from '../contracts/errors.ts';
import { StoreWriteError } from './level-store.ts';
import type { ActorKind, ActorRecord, Commit, DeadLetter, JournalEntry, LiveEntry, OutboxMessage, Store, TimerEntry } from './store.ts';
import { LeaseLostError } from '../contracts/cluster-errors.ts';
import { groupOf, streamToken, tok, untok } from '../cluster/keys.ts';

/**
 * Decides whether this process may write an actor now. The cluster's placement layer implements
 * it: the node holds the lease of the actor's group and its own membership is alive. Without a
 * guard the store is single-writer (one process per namespace) and every write is allowed.
 */
export interface OwnershipGuard {
  mayWrite(actorId: string): boolean;
  /** Why `mayWrite` refuses (for the error message). */
  why?(actorId: string): string;
  /** Revision of the lease under which this node writes the actor (the fencing token recorded with each write). */
  fencingToken(actorId: string): number | undefined;
}

export interface JetStreamStoreOptions {
  nc: NatsConnection;
  /** @default 'default' */
  namespace?: string;
  /** Identity of this writer (node name and incarnation); recorded with every write. @default a unique id */
  writer?: string;
  /** Stream replicas: 1 on a single server, 3 on a production cluster (see docs/distribution.md). @default 1 */
  replicas?: number;
  /** @default 'file' */
  storage?: 'file' | 'memory';
  guard?: OwnershipGuard;
  /**
   * How long a write is retried while the server is unreachable (a restart, a network blip) before
   * the commit fails with `store.write_failed`. Retries carry the same `Nats-Msg-Id`, so a write
   * that had landed is not written twice. @default 30000
   */
  writeTimeoutMs?: number;
  /** Timeout of one publish attempt. @default 5000 */
  publishTimeoutMs?: number;
  /** JetStream duplicate window (msg-id dedupe). @default 120000 */
  duplicateWindowMs?: number;
  /**
   * Read single messages with JetStream's direct get (served by the stream itself, faster than the
   * JetStream API). Direct gets may be answered by a replica that lags, so they are only safe with
   * one replica. @default replicas === 1
   */
  directReads?: boolean;
  /**
   * Track every actor of the namespace (live index, timers, outbox) from the start: the store has one
   * writer. With a guard (cluster mode) only adopted groups are tracked. @default !guard
   */
  trackAll?: boolean;
  /** Run the audit sequencer in this process. In a cluster, one node runs it under a lease. @default !guard */
  auditSequencer?: boolean;
  logger?: Logger;
  /**
   * Data keys: every message payload is sealed (AES-256-GCM, bound to its subject) under the active
   * key; headers and subjects stay plaintext (docs/encryption.md). @default undefined (plain JSON)
   */
  keyring?: Keyring | undefined;
}

/** A derived write that follows an actor's commit (journal, command id, outbox), replayed by whoever adopts the actor if it was lost. */
interface Tail {
  k: 'jnl' | 'cmd' | 'outPut' | 'outDel';
  subject: string;
  msgId: string;
  data: unknown;
  /** For `jnl`: the journal entry's seq. */
  seq?: number;
}

/** The message on an actor's subject of the ACT stream: its latest record, and what its last commits still owe. */
interface ActMsg {
  v: 1;
  record: ActorRecord;
  hot: boolean;
  /** The actor's current deadlines. */
  timers: TimerEntry[];
  /** Derived writes not yet confirmed when this was written (this commit's included). */
  tails: Tail[];
  /** Writer (node and incarnation). */
  by: string;
  /** Lease revision of the writer (fencing token). */
  lease?: number;
  /** A takeover's fence: the same record, rewritten by the new owner. */
  fence?: boolean;
}

/** Compact index of an ACT message, in its `Handoff-Index` header (scans read headers only). */
interface ActIndex {
  k: ActorKind;
  m: string;
  s: ActorRecord['status'];
  h: boolean;
  q: number;
  t: TimerEntry[];
}

interface JnlMsg {
  actor?: string;
  journal?: JournalEntry;
  audit?: AuditDraft[];
}

interface AudMsg {
  /** Stream sequence of the last journal message linked (inclusive). */
  rawThrough: number;
  entries: AuditEntry[];
}

interface Tracked {
  id: string;
  group: string;
  kind: ActorKind;
  model: string;
  status: ActorRecord['status'];
  hot: boolean;
  /** Stream sequence of the actor's last ACT message (the expected last sequence of its next write). */
  actSeq: number;
  /** The record's version (journal seq) in that message. */
  seq: number;
  /** The last write's outcome is unknown: fetch the sequence from the server before the next write. */
  stale: boolean;
  timers: TimerEntry[];
  /** Fencing token (lease revision) under which this writer tracks the actor; a commit under another one is refused. */
  lease?: number | undefined;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const encode = (v: unknown) => enc.encode(JSON.stringify(v));
const decode = <T>(d: Uint8Array): T => JSON.parse(dec.decode(d)) as T;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const timerKey = (t: TimerEntry) => `${t.actorId}\u0000${t.name}\u0000${t.dueAt}`;

/** `wrong last sequence`: the subject moved since this writer last saw it. */
export function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === 10071;
}

/** Errors worth retrying: the server is restarting or unreachable, or the request timed out. */
function isTransient(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.status === 503 || err.code === 10008 /* cluster not available */;
  return true;
}

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
  readonly streams: { act: string; jnl: string; aud: string; idx: string };
  #js!: JetStreamClient;
  #jsm!: JetStreamManager;
  #guard: OwnershipGuard | undefined;
  #opts: { replicas: number; storage: 'file' | 'memory'; writeTimeoutMs: number; publishTimeoutMs: number; duplicateWindowMs: number; directReads: boolean };
  #log: Logger | undefined;
  #keyring: Keyring | undefined;
  #tracked = new Map<string, Tracked>();
  #groups = new Map<string, Set<string>>();
  #timers = new Map<string, TimerEntry>();
  #timerOrder: TimerEntry[] | null = null;
  #outbox = new Map<string, { group: string; msg: OutboxMessage }>();
  #chains = new Map<string, Promise<void>>();
  #inflight = new Set<Promise<void>>();
  #tailChains = new Map<string, Promise<void>>();
  #tails = new Set<Promise<void>>();
  #pendingCommands = new Set<string>();
  /** Derived writes not yet confirmed, per actor (repeated in the actor's next ACT message). */
  #pendingTails = new Map<string, Map<string, Tail>>();
  #justRead = new Map<string, { record: ActorRecord; at: number }>();
  #writeNo = 0;
  #closed = false;
  #closing = false;
  #sequencer: AuditSequencer | undefined;
  onBatchFailed: ((actorIds: Set<string>) => void) | undefined;
  readonly stats = { commits: 0, fences: 0, conflicts: 0, leaseRefusals: 0, retries: 0, tails: 0, repairedTails: 0 };

  private constructor(opts: JetStreamStoreOptions) {
    this.nc = opts.nc;
    this.namespace = opts.namespace ?? 'default';
    this.writer = opts.writer ?? `w-${nuid.next()}`;
    this.#guard = opts.guard;
    this.#log = opts.logger;
    this.#keyring = opts.keyring;
    this.#opts = {
      replicas: opts.replicas ?? 1,
      storage: opts.storage ?? 'file',
      writeTimeoutMs: opts.writeTimeoutMs ?? 30_000,
      publishTimeoutMs: opts.publishTimeoutMs ?? 5000,
      duplicateWindowMs: opts.duplicateWindowMs ?? 120_000,
      directReads: opts.directReads ?? (opts.replicas ?? 1) === 1,
    };
    const ns = streamToken(this.namespace);
    this.streams = { act: `HO_${ns}_ACT`, jnl: `HO_${ns}_JNL`, aud: `HO_${ns}_AUD`, idx: `HO_${ns}_IDX` };
  }

  /** Opens the store: creates the namespace's streams if needed (idempotent). */
  static async open(opts: JetStreamStoreOptions): Promise<JetStreamStore> {
    const store = new JetStreamStore(opts);
    const js = jetstream(opts.nc, { timeout: store.#opts.publishTimeoutMs });
    store.#js = opts.keyring ? sealingJetStream(js, opts.keyring) : js;
    store.#jsm = await jetstreamManager(opts.nc, { timeout: store.#opts.publishTimeoutMs });
    await store.#ensureStreams();
    if (opts.trackAll ?? !opts.guard) await store.#trackEverything();
    if (opts.auditSequencer ?? !opts.guard) await store.startAuditSequencer();
    return store;
  }

  // ------------------------------------------------------------------------------------------------
  // Subjects and streams
  // ------------------------------------------------------------------------------------------------

  #sub = {
    act: (id: string) => `ho.${this.namespace}.act.${tok(groupOf(id))}.${tok(id)}`,
    actGroup: (group: string) => `ho.${this.namespace}.act.${tok(group)}.>`,
    actAll: () => `ho.${this.namespace}.act.>`,
    jnl: (id: string) => `ho.${this.namespace}.jnl.a.${tok(groupOf(id))}.${tok(id)}`,
    jnlExtra: () => `ho.${this.namespace}.jnl.x.${nuid.next()}`,
    jnlAll: () => `ho.${this.namespace}.jnl.>`,
    aud: () => `ho.${this.namespace}.aud`,
    cmd: (id: string) => `ho.${this.namespace}.idx.cmd.${tok(id)}`,
    out: (group: string, id: string) => `ho.${this.namespace}.idx.out.${tok(group)}.${tok(id)}`,
    outGroup: (group: string) => `ho.${this.namespace}.idx.out.${tok(group)}.>`,
    outAll: () => `ho.${this.namespace}.idx.out.>`,
    dl: (id: string) => `ho.${this.namespace}.idx.dl.${tok(id)}`,
    dlAll: () => `ho.${this.namespace}.idx.dl.>`,
    meta: (key: string) => `ho.${this.namespace}.idx.meta.${tok(key)}`,
    aux: (space: string, key: string) => `ho.${this.namespace}.idx.aux.${tok(space)}.${tok(groupOf(key))}.${tok(key)}`,
    auxAll: (space: string) => `ho.${this.namespace}.idx.aux.${tok(space)}.>`,
  };

  async #ensureStreams(): Promise<void> {
    const base: Partial<StreamConfig> = {
      storage: this.#opts.storage as StreamConfig['storage'],
      num_replicas: this.#opts.replicas,
      duplicate_window: nanos(this.#opts.duplicateWindowMs),
      discard: 'old' as StreamConfig['discard'],
    };
    const specs: (Partial<StreamConfig> & { name: string })[] = [
      { ...base, name: this.streams.act, subjects: [`ho.${this.namespace}.act.>`], max_msgs_per_subject: 1, allow_direct: true },
      { ...base, name: this.streams.aud, subjects: [`ho.${this.namespace}.aud`], deny_delete: true, deny_purge: true },
      { ...base, name: this.streams.idx, subjects: [`ho.${this.namespace}.idx.>`], max_msgs_per_subject: 1, allow_direct: true },
      { ...base, name: this.streams.jnl, subjects: [`ho.${this.namespace}.jnl.>`], deny_delete: true, deny_purge: true, allow_direct: true },
    ];
    for (const spec of specs) {
      try {
        const info = await this.#jsm.streams.info(spec.name);
        if (spec.allow_direct && !info.config.allow_direct) await this.#jsm.streams.update(spec.name, { ...info.config, allow_direct: true });
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
  // Low-level reads and writes
  // ------------------------------------------------------------------------------------------------

  async #retrying<T>(what: string, fn: () => Promise<T>, budgetMs = this.#opts.writeTimeoutMs): Promise<T> {
    const deadline = Date.now() + budgetMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (isCasConflict(err) || !isTransient(err) || Date.now() > deadline || this.#closed) throw err;
        this.stats.retries++;
        this.#log?.debug({ err, attempt, what }, 'jetstream store: retrying');
        await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
      }
    }
  }

  async #getLast(stream: string, subject: string): Promise<{ seq: number; data: Uint8Array; header: MsgHdrs; time: Date } | null> {
    const m = await this.#retrying(`get ${subject}`, () => (this.#opts.directReads && stream !== this.streams.aud ? this.#jsm.direct.getMessage(stream, { last_by_subj: subject }) : this.#jsm.streams.getMessage(stream, { last_by_subj: subject })));
    return m ? { seq: m.seq, data: openPayload(this.#keyring, m.data, subject), header: m.header, time: m.time } : null;
  }

  /**
   * Reads every message of `stream` matching `filter` through a short-lived consumer (headers only
   * on request), in stream order.
   */
  async *#scan(stream: string, filter: string, opts: { headersOnly?: boolean; startSeq?: number } = {}): AsyncIterable<{ subject: string; seq: number; data: Uint8Array; headers: MsgHdrs | undefined }> {
    const cfg: Partial<ConsumerConfig> = {
      ack_policy: 'none' as ConsumerConfig['ack_policy'],
      filter_subject: filter,
      deliver_policy: (opts.startSeq ? 'by_start_sequence' : 'all') as ConsumerConfig['deliver_policy'],
      ...(opts.startSeq ? { opt_start_seq: opts.startSeq } : {}),
      ...(opts.headersOnly ? { headers_only: true } : {}),
      mem_storage: true,
      inactive_threshold: nanos(60_000),
    };
    const ci = await this.#retrying(`scan ${filter}`, () => this.#jsm.consumers.add(stream, cfg));
    let remaining = ci.num_pending;
    try {
      const consumer = this.#js.consumers.getConsumerFromInfo(ci);
      while (remaining > 0) {
        const batch = await consumer.fetch({ max_messages: Math.min(remaining, 2000), expires: 2000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          remaining = m.info.pending;
          yield { subject: m.subject, seq: m.seq, data: openPayload(this.#keyring, m.data, m.subject), headers: m.headers };
          if (remaining === 0) break;
        }
        // Messages counted at the start may be gone (an actor's record replaced meanwhile): done.
        if (got === 0) break;
      }
    } finally {
      void this.#jsm.consumers.delete(stream, ci.name).catch(() => undefined);
    }
  }

  #actHeaders(msg: ActMsg, msgId: string): MsgHdrs {
    const h = natsHeaders();
    const index: ActIndex = { k: msg.record.kind, m: msg.record.model, s: msg.record.status, h: msg.hot, q: msg.record.seq, t: msg.timers };
    h.set('Handoff-Index', JSON.stringify(index));
    h.set('Handoff-Writer', msg.by);
    h.set('Nats-Msg-Id', msgId);
    return h;
  }

  /** Writes an actor's ACT message with compare-and-set; retried (same msg id) while the server is unreachable. */
  async #publishAct(id: string, msg: ActMsg, expected: number, msgId: string): Promise<number> {
    const payload = encode(msg);
    const headers = this.#actHeaders(msg, msgId);
    const ack = await this.#retrying(`commit ${id}`, async () => {
      if (this.#guard && !msg.fence && !this.#guard.mayWrite(id)) throw new LeaseLostError(id, 'the lease was lost while the write was retried');
      return this.#js.publish(this.#sub.act(id), payload, { msgID: msgId, expect: { lastSubjectSequence: expected }, headers, timeout: this.#opts.publishTimeoutMs });
    });
    return ack.seq;
  }

  // ------------------------------------------------------------------------------------------------
  // Commits
  // ------------------------------------------------------------------------------------------------

  commit(c: Commit): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreWriteError('store is closed'));
    const id = c.actor.id;
    if (this.#guard && !this.#guard.mayWrite(id)) {
      this.stats.leaseRefusals++;
      return Promise.reject(new LeaseLostError(id, this.#guard.why?.(id) ?? 'this node does not hold the lease of its group'));
    }
    this.stats.commits++;
    const prev = this.#chains.get(id);
    const n = ++this.#writeNo;
    // Commits of one actor are written in order: each one's compare-and-set expects the previous one.
    const p = (async () => {
      if (prev) await prev;
      await this.#commitNow(c, n);
    })();
    this.#chains.set(id, p);
    this.#inflight.add(p);
    const settled = () => {
      this.#inflight.delete(p);
      if (this.#chains.get(id) === p) this.#chains.delete(id);
    };
    p.then(settled, settled);
    return p;
  }

  #tailsFor(c: Commit): Tail[] {
    const a = c.actor;
    const tails: Tail[] = [];
    const group = groupOf(a.id);
    const jnl: JnlMsg = { actor: a.id, journal: c.journal, ...(c.audit?.length ? { audit: c.audit } : {}) };
    tails.push({ k: 'jnl', subject: this.#sub.jnl(a.id), msgId: `jnl:${a.id}:${c.journal.seq}`, data: jnl, seq: c.journal.seq });
    if (c.commandId) tails.push({ k: 'cmd', subject: this.#sub.cmd(c.commandId), msgId: `cmd:${c.commandId}`, data: { actor: a.id, seq: c.journal.seq } });
    for (const m of c.outboxPut ?? []) tails.push({ k: 'outPut', subject: this.#sub.out(groupOf(m.to), m.id), msgId: `outp:${m.id}`, data: { msg: m } });
    for (const mid of c.outboxDone ?? []) {
      const g = this.#outbox.get(mid)?.group ?? group;
      tails.push({ k: 'outDel', subject: this.#sub.out(g, mid), msgId: `outd:${mid}`, data: { del: true } });
    }
    return tails;
  }

  async #commitNow(c: Commit, n: number): Promise<void> {
    const id = c.actor.id;
    if (this.#guard && !this.#guard.mayWrite(id)) {
      this.stats.leaseRefusals++;
      throw new LeaseLostError(id, this.#guard.why?.(id) ?? 'this node does not hold the lease of its group');
    }
    const prev = this.#tracked.get(id);
    const token = this.#guard?.fencingToken(id);
    if (prev?.lease !== undefined && token !== prev.lease) {
      // The lease moved since this writer took the actor (lost, maybe taken back): a commit built on
      // what it held then is stale, whatever the compare-and-set would say.
      this.stats.leaseRefusals++;
      throw new LeaseLostError(id, `stale fencing token: the actor was taken under lease revision ${prev.lease}, the lease is now at ${token ?? 'none'}`);
    }
    let expected: number;
    if (prev && !prev.stale) {
      if (c.journal.seq !== prev.seq + 1) {
        this.stats.conflicts++;
        this.onBatchFailed?.(new Set([id]));
        throw new StoreWriteError(`${id}: the durable record is at version ${prev.seq}, this commit builds on ${c.journal.seq - 1}`);
      }
      expected = prev.actSeq;
    }
    else if (c.journal.seq === 0 && !prev) expected = 0;
    else {
      // Not seen by this writer, or its last write's outcome is unknown: the server decides, and the
      // commit must build on the durable record (else the in-memory actor is not what is durable).
      const last = await this.#getLast(this.streams.act, this.#sub.act(id));
      const durableSeq = last ? (decode<ActMsg>(last.data).record.seq) : -1;
      if (durableSeq !== c.journal.seq - 1) {
        this.stats.conflicts++;
        const failed = new Set([id]);
        if (prev) prev.stale = true;
        this.onBatchFailed?.(failed);
        throw new StoreWriteError(`${id}: the durable record is at version ${durableSeq}, this commit builds on ${c.journal.seq - 1}`);
      }
      expected = last?.seq ?? 0;
    }
    const group = groupOf(id);
    const newTails = this.#tailsFor(c);
    // Current deadlines: the previous ones, less those cleared, with those set replacing any of the
    // same name (the runtime writes every current deadline with each commit).
    const cleared = new Set((c.timersCleared ?? []).map(timerKey));
    const set = c.timersSet ?? [];
    let timers = (prev?.timers ?? []).filter((t) => !cleared.has(timerKey(t)) && !set.some((s) => s.name === t.name));
    timers = [...timers, ...set];
    if (c.actor.status !== 'active') timers = [];
    const lease = this.#guard?.fencingToken(id);
    const msg: ActMsg = { v: 1, record: c.actor, hot: c.hot ?? false, timers, tails: [...(this.#pendingTails.get(id)?.values() ?? []), ...newTails], by: this.writer, ...(lease !== undefined ? { lease } : {}) };
    if (c.commandId) this.#pendingCommands.add(c.commandId);
    let seq: number;
    try {
      seq = await this.#publishAct(id, msg, expected, `act:${id}:${c.journal.seq}:${this.writer}:${n}`);
    } catch (err) {
      if (c.commandId) this.#pendingCommands.delete(c.commandId);
      if (prev) prev.stale = true;
      if (err instanceof LeaseLostError) throw err;
      if (isCasConflict(err)) {
        this.stats.conflicts++;
        if (this.#guard && !this.#guard.mayWrite(id)) throw new LeaseLostError(id, 'another node wrote the actor');
        this.onBatchFailed?.(new Set([id]));
        throw new StoreWriteError(`${id}: another writer changed the actor (compare-and-set failed); it restarts from the durable record`, { cause: err });
      }
      this.onBatchFailed?.(new Set([id]));
      throw new StoreWriteError(`${id}: commit not written: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    this.#justRead.delete(id);
    const t: Tracked = { id, group, kind: c.actor.kind, model: c.actor.model, status: c.actor.status, hot: c.hot ?? false, actSeq: seq, seq: c.actor.seq, stale: false, timers, lease: prev?.lease ?? token };
    this.#setTracked(t, prev);
    this.#applyOutbox(c, group);
    let pending = this.#pendingTails.get(id);
    if (!pending) this.#pendingTails.set(id, (pending = new Map()));
    for (const tail of newTails) pending.set(tail.msgId, tail);
    for (const tail of newTails) this.#runTail(id, tail, false);
  }

  #applyOutbox(c: Commit, group: string): void {
    for (const m of c.outboxPut ?? []) this.#outbox.set(m.id, { group: groupOf(m.to) || group, msg: m });
    for (const mid of c.outboxDone ?? []) this.#outbox.delete(mid);
  }

  #setTracked(t: Tracked, prev: Tracked | undefined): void {
    for (const old of prev?.timers ?? []) this.#timers.delete(timerKey(old));
    for (const nt of t.timers) this.#timers.set(timerKey(nt), nt);
    this.#timerOrder = null;
    this.#tracked.set(t.id, t);
    let g = this.#groups.get(t.group);
    if (!g) this.#groups.set(t.group, (g = new Set()));
    g.add(t.id);
  }

  #untrack(id: string): void {
    const t = this.#tracked.get(id);
    if (!t) return;
    for (const old of t.timers) this.#timers.delete(timerKey(old));
    this.#timerOrder = null;
    this.#tracked.delete(id);
    this.#groups.get(t.group)?.delete(id);
  }

  // ------------------------------------------------------------------------------------------------
  // Tails (derived writes)
  // ------------------------------------------------------------------------------------------------

  #runTail(owner: string | undefined, tail: Tail, check: boolean): Promise<void> {
    const prev = this.#tailChains.get(tail.subject) ?? Promise.resolve();
    const p = prev
      .then(() => this.#writeTail(tail, check))
      .then(
        () => {
          this.stats.tails++;
          if (owner) {
            const pending = this.#pendingTails.get(owner);
            pending?.delete(tail.msgId);
            if (pending?.size === 0) this.#pendingTails.delete(owner);
          }
          if (tail.k === 'cmd') this.#pendingCommands.delete((tail.msgId).slice(4));
        },
        (err: unknown) => {
          // Left in the actor's pending tails: its next commit carries it, an adopter repairs it.
          this.#log?.warn({ err, subject: tail.subject }, 'jetstream store: derived write not completed');
        },
      );
    this.#tailChains.set(tail.subject, p);
    this.#tails.add(p);
    void p.finally(() => {
      this.#tails.delete(p);
      if (this.#tailChains.get(tail.subject) === p) this.#tailChains.delete(tail.subject);
    });
    return p;
  }

  async #writeTail(tail: Tail, check: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (check) {
          const last = await this.#getLast(tail.k === 'jnl' ? this.streams.jnl : this.streams.idx, tail.subject);
          if (last) {
            if (tail.k === 'jnl' && (decode<JnlMsg>(last.data).journal?.seq ?? -1) >= (tail.seq ?? 0)) return;
            if (tail.k === 'cmd' || tail.k === 'outPut') return;
            if (tail.k === 'outDel' && (decode<{ del?: boolean }>(last.data).del ?? false)) return;
          }
          this.stats.repairedTails++;
        }
        await this.#js.publish(tail.subject, encode(tail.data), { msgID: tail.msgId, timeout: this.#opts.publishTimeoutMs });
        return;
      } catch (err) {
        if (this.#closed || (this.#closing && attempt > 20)) throw err;
        this.stats.retries++;
        await sleep(Math.min(2000, 25 * 2 ** Math.min(attempt, 7)));
      }
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Adoption (cluster placement) and tracking
  // ------------------------------------------------------------------------------------------------

  /**
   * Takes a group over under lease revision `token`: reads its actors' records, completes the derived
   * writes a dead owner left unconfirmed, fences every active actor (rewrites its record with
   * compare-and-set, so a former owner still running can no longer write it), and tracks the group's
   * live index, timers and outbox. Returns the active actors (to load, re-issuing effects and re-arming
   * timers) and the undelivered outbox messages.
   */
  async adoptGroup(group: string): Promise<{ active: string[]; hot: string[]; outbox: OutboxMessage[] }> {
    const active: string[] = [];
    const hot: string[] = [];
    const repairs: Promise<void>[] = [];
    const outbox: OutboxMessage[] = [];
    const closedCases: string[] = [];
    // The group's actors: the subjects under its prefix (one stream-info request, no consumer).
    const info = await this.#retrying(`list ${group}`, () => this.#jsm.streams.info(this.streams.act, { subjects_filter: this.#sub.actGroup(group) }));
    const subjectsOf = Object.keys(info.state.subjects ?? {});
    await Promise.all(
      subjectsOf.map(async (subject) => {
        const m = await this.#getLast(this.streams.act, subject);
        if (!m) return;
        let msg = decode<ActMsg>(m.data);
        let seq = m.seq;
        const id = msg.record.id;
        if (msg.by !== this.writer) for (const tail of msg.tails ?? []) repairs.push(this.#runTail(undefined, tail, true));
        if (msg.record.status === 'active') {
          // Fence: rewrite the record under this node's lease. A former owner's write in between fails
          // the compare-and-set; then read again and fence again.
          for (let attempt = 1; ; attempt++) {
            const lease = this.#guard?.fencingToken(id);
            const fence: ActMsg = { ...msg, by: this.writer, fence: true, tails: [], ...(lease !== undefined ? { lease } : {}) };
            try {
              seq = await this.#publishAct(id, fence, seq, `fence:${id}:${this.writer}:${++this.#writeNo}`);
              this.stats.fences++;
              break;
            } catch (err) {
              if (!isCasConflict(err) || attempt >= 10) throw err;
              const last = await this.#getLast(this.streams.act, this.#sub.act(id));
              if (!last) throw err;
              msg = decode<ActMsg>(last.data);
              seq = last.seq;
              if (msg.by !== this.writer) for (const tail of msg.tails ?? []) repairs.push(this.#runTail(undefined, tail, true));
              if (msg.record.status !== 'active') break;
            }
          }
        } else if (msg.record.kind === 'case') closedCases.push(id);
        const t: Tracked = { id, group, kind: msg.record.kind, model: msg.record.model, status: msg.record.status, hot: msg.hot, actSeq: seq, seq: msg.record.seq, stale: false, timers: msg.record.status === 'active' ? msg.timers : [], lease: this.#guard?.fencingToken(id) };
        this.#setTracked(t, this.#tracked.get(id));
        if (msg.record.status === 'active') {
          this.#justRead.set(id, { record: msg.record, at: performance.now() });
          active.push(id);
          if (msg.hot) hot.push(id);
        }
      }),
    );
    // Derived writes the former owner left unconfirmed are completed before anything else runs.
    await Promise.all(repairs);
    // A closed case's resolution may still wait in the outbox for its agent.
    await Promise.all(
      closedCases.map(async (id) => {
        const o = await this.#getLast(this.streams.idx, this.#sub.out(group, `${id}.resolution`));
        const v = o ? decode<{ msg?: OutboxMessage; del?: boolean }>(o.data) : undefined;
        if (v?.msg && !v.del) {
          this.#outbox.set(v.msg.id, { group, msg: v.msg });
          outbox.push(v.msg);
        }
      }),
    );
    return { active, hot, outbox };
  }

  /** Stops tracking a group (its lease moved): its actors' timers and outbox leave this node's indexes. */
  releaseGroup(group: string): void {
    for (const id of [...(this.#groups.get(group) ?? [])]) {
      this.#untrack(id);
      this.#justRead.delete(id);
    }
    this.#groups.delete(group);
    for (const [id, o] of this.#outbox) if (o.group === group) this.#outbox.delete(id);
  }

  /** Undelivered outbox messages of a group's actors. */
  outboxOf(group: string): OutboxMessage[] {
    return [...this.#outbox.values()].filter((o) => o.group === group).map((o) => o.msg);
  }

  /** Ids of the tracked actors of a group (only the active ones with `activeOnly`). */
  groupActors(group: string, activeOnly = false): string[] {
    return [...(this.#groups.get(group) ?? [])].filter((id) => !activeOnly || this.#tracked.get(id)?.status === 'active');
  }

  /** Groups with at least one tracked actor. */
  trackedGroups(): string[] {
    return [...this.#groups.keys()].filter((g) => (this.#groups.get(g)?.size ?? 0) > 0);
  }

  /** Whether a group has an active actor tracked here. */
  groupActive(group: string): boolean {
    for (const id of this.#groups.get(group) ?? []) if (this.#tracked.get(id)?.status === 'active') return true;
    return false;
  }

  /** Single-writer mode: tracks every actor, repairing derived writes the previous process left. */
  async #trackEverything(): Promise<void> {
    const repairs: Promise<void>[] = [];
    for await (const m of this.#scan(this.streams.act, this.#sub.actAll())) {
      const msg = decode<ActMsg>(m.data);
      const id = msg.record.id;
      for (const tail of msg.tails ?? []) repairs.push(this.#runTail(undefined, tail, true));
      this.#setTracked({ id, group: groupOf(id), kind: msg.record.kind, model: msg.record.model, status: msg.record.status, hot: msg.hot, actSeq: m.seq, seq: msg.record.seq, stale: false, timers: msg.record.status === 'active' ? msg.timers : [] }, undefined);
    }
    await Promise.all(repairs);
    for await (const m of this.#scan(this.streams.idx, this.#sub.outAll())) {
      const v = decode<{ msg?: OutboxMessage; del?: boolean }>(m.data);
      if (!v.del && v.msg) this.#outbox.set(v.msg.id, { group: groupOf(v.msg.to), msg: v.msg });
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------------

  async load(id: string): Promise<ActorRecord | undefined> {
    // Just read by an adoption (which loads the actor next): no second round trip.
    const fresh = this.#justRead.get(id);
    if (fresh) {
      this.#justRead.delete(id);
      if (performance.now() - fresh.at < 5000) return fresh.record;
    }
    const m = await this.#getLast(this.streams.act, this.#sub.act(id));
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
    for (const t of [...this.#tracked.values()]) if (t.status === 'active') yield { id: t.id, kind: t.kind, model: t.model, hot: t.hot };
  }

  async *actors(kind?: ActorKind): AsyncIterable<ActorRecord> {
    for await (const m of this.#scan(this.streams.act, this.#sub.actAll())) {
      const rec = decode<ActMsg>(m.data).record;
      if (!kind || rec.kind === kind) yield rec;
    }
  }

  /** Index entries of every actor (headers only: no snapshots), for counts and summaries. */
  async *index(): AsyncIterable<{ id: string; kind: ActorKind; status: ActorRecord['status']; seq: number; writer: string }> {
    for await (const m of this.#scan(this.streams.act, this.#sub.actAll(), { headersOnly: true })) {
      const ix = JSON.parse(m.headers?.get('Handoff-Index') || '{}') as ActIndex;
      const parts = m.subject.split('.');
      yield { id: untok(parts[parts.length - 1]!), kind: ix.k, status: ix.s, seq: ix.q, writer: m.headers?.get('Handoff-Writer') ?? '' };
    }
  }

  async *journal(id: string): AsyncIterable<JournalEntry> {
    const subject = this.#sub.jnl(id);
    const pending = this.#tailChains.get(subject);
    if (pending) await pending;
    for await (const m of this.#scan(this.streams.jnl, subject)) {
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
    throw new HandoffError('store.unsupported', `${rec.id}: retention's scrubbing of records needs the LevelDB store`, { actorId: rec.id });
  }

  async deleteJournal(id: string): Promise<number> {
    throw new HandoffError('store.unsupported', `${id}: the JetStream journal stream ${this.streams.jnl} denies deletes; retention compaction needs the LevelDB store`, { actorId: id, stream: this.streams.jnl });
  }

  async *outbox(): AsyncIterable<OutboxMessage> {
    for (const o of [...this.#outbox.values()]) yield o.msg;
  }

  async hasCommand(commandId: string): Promise<boolean> {
    if (this.#pendingCommands.has(commandId)) return true;
    return (await this.#getLast(this.streams.idx, this.#sub.cmd(commandId))) !== null;
  }

  #sortedTimers(): TimerEntry[] {
    this.#timerOrder ??= [...this.#timers.values()].sort((a, b) => a.dueAt - b.dueAt);
    return this.#timerOrder;
  }

  async *dueTimers(until: number, limit = Infinity): AsyncIterable<TimerEntry> {
    let n = 0;
    for (const t of this.#sortedTimers()) {
      if (t.dueAt > until || n++ >= limit) return;
      yield t;
    }
  }

  async nextTimerAfter(after: number): Promise<number | undefined> {
    for (const t of this.#sortedTimers()) if (t.dueAt > after) return t.dueAt;
    return undefined;
  }

  async ackOutbox(id: string): Promise<void> {
    const o = this.#outbox.get(id);
    const group = o?.group ?? groupOf(id.replace(/\.resolution$/, ''));
    this.#outbox.delete(id);
    await this.#retrying(`ack outbox ${id}`, () => this.#js.publish(this.#sub.out(group, id), encode({ del: true }), { msgID: `outd:${id}` }));
  }

  // ------------------------------------------------------------------------------------------------
  // Audit
  // ------------------------------------------------------------------------------------------------

  async *audit(from = 1): AsyncIterable<AuditEntry> {
    // Readers usually want a few entries from `from` on (a case page, an index catching up): find
    // the message holding `from` by binary search over the stream and read the first messages with
    // single gets; only a reader that goes on pays for a consumer.
    let start = 1;
    if (from > 1) {
      const found = await this.#auditMessageFor(from);
      if (found === null) return;
      start = found;
      for (let k = 0; k < 8; k++, start++) {
        const m = await this.#retrying('get audit', () => this.#jsm.streams.getMessage(this.streams.aud, { seq: start })).catch(() => null);
        if (!m) return;
        for (const e of decode<AudMsg>(openPayload(this.#keyring, m.data, m.subject)).entries) if (e.seq >= from) yield e;
      }
    }
    for await (const m of this.#scan(this.streams.aud, this.#sub.aud(), start > 1 ? { startSeq: start } : {})) {
      for (const e of decode<AudMsg>(m.data).entries) if (e.seq >= from) yield e;
    }
  }

  /** The stream sequence of the AUD message that holds audit entry `seq` (null: past the end). */
  async #auditMessageFor(seq: number): Promise<number | null> {
    const info = await this.#retrying('audit stream info', () => this.#jsm.streams.info(this.streams.aud));
    let lo = info.state.first_seq;
    let hi = info.state.last_seq;
    if (info.state.messages === 0) return null;
    const firstOf = async (streamSeq: number) => {
      const m = (await this.#retrying('get audit', () => this.#jsm.streams.getMessage(this.streams.aud, { seq: streamSeq })))!;
      return decode<AudMsg>(openPayload(this.#keyring, m.data, m.subject)).entries[0]?.seq ?? 0;
    };
    // The last message whose first entry is <= seq.
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((await firstOf(mid)) <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  async appendAudit(drafts: AuditDraft[]): Promise<void> {
    if (drafts.length === 0) return;
    const ack = await this.#retrying('append audit', () => this.#js.publish(this.#sub.jnlExtra(), encode({ audit: drafts } satisfies JnlMsg), { msgID: `aud-x:${nuid.next()}` }));
    await this.#sequencer?.waitFor(ack.seq);
  }

  async lastAudit(): Promise<AuditEntry | undefined> {
    const m = await this.#getLast(this.streams.aud, this.#sub.aud());
    if (!m) return undefined;
    const entries = decode<AudMsg>(m.data).entries;
    return entries[entries.length - 1];
  }

  /** Runs the audit sequencer here: links the journal's audit drafts into the hash chain, once each. */
  async startAuditSequencer(): Promise<void> {
    if (this.#sequencer) return;
    this.#sequencer = new AuditSequencer(this.#js, this.#jsm, this.streams, this.#sub.aud(), this.#sub.jnlAll(), this.writer, this.#log, this.#keyring);
    await this.#sequencer.start();
  }

  async stopAuditSequencer(): Promise<void> {
    const s = this.#sequencer;
    this.#sequencer = undefined;
    await s?.stop();
  }

  get runsAuditSequencer(): boolean {
    return !!this.#sequencer;
  }

  /** Waits until every journal message written so far has been linked into the audit chain. */
  async auditSettled(timeoutMs = 30_000): Promise<void> {
    const info = await this.#jsm.streams.info(this.streams.jnl);
    const target = info.state.last_seq;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.#getLast(this.streams.aud, this.#sub.aud());
      const through = m ? decode<AudMsg>(m.data).rawThrough : 0;
      if (through >= target || (this.#sequencer && this.#sequencer.through >= target)) return;
      if (Date.now() > deadline) throw new StoreWriteError(`audit chain not caught up: linked through ${through}, journal at ${target}`);
      await sleep(50);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Meta, intents, dead letters, auxiliary spaces
  // ------------------------------------------------------------------------------------------------

  async getMeta<T>(key: string): Promise<T | undefined> {
    const m = await this.#getLast(this.streams.idx, this.#sub.meta(key));
    if (!m) return undefined;
    const v = decode<{ del?: boolean; value?: T }>(m.data);
    return v.del ? undefined : v.value;
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    await this.#put(this.#sub.meta(key), { value }, `meta:${key}`);
  }

  async deleteMeta(key: string): Promise<void> {
    await this.#put(this.#sub.meta(key), { del: true }, `meta:${key}`);
  }

  async #put(subject: string, value: unknown, what: string): Promise<void> {
    if (this.#closed) throw new StoreWriteError('store is closed');
    const msgID = `${what}:${nuid.next()}`;
    try {
      await this.#retrying(what, () => this.#js.publish(subject, encode(value), { msgID, timeout: this.#opts.publishTimeoutMs }));
    } catch (err) {
      throw new StoreWriteError(`${what} not written: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  async putDeadLetter(letter: DeadLetter): Promise<void> {
    await this.#put(this.#sub.dl(letter.id), letter, `dl:${letter.id}`);
  }

  async *deadLetters(): AsyncIterable<DeadLetter> {
    for await (const m of this.#scan(this.streams.idx, this.#sub.dlAll())) {
      const v = decode<DeadLetter & { del?: boolean }>(m.data);
      if (!v.del) yield v;
    }
  }

  async deleteDeadLetter(id: string): Promise<void> {
    await this.#put(this.#sub.dl(id), { del: true }, `dl-del:${id}`);
  }

  /**
   * Compare-and-set of a value in an auxiliary space (e.g. the simulated world's ledger): `update`
   * maps the current value (undefined if none) to the new one; it is retried on a conflicting write.
   * `msgId` makes a retried publish of the same change land once.
   */
  async updateAux<T>(space: string, key: string, update: (current: T | undefined) => { value: T; msgId: string }): Promise<T> {
    const subject = this.#sub.aux(space, key);
    for (let attempt = 1; ; attempt++) {
      const last = await this.#getLast(this.streams.idx, subject);
      const current = last ? decode<T>(last.data) : undefined;
      const next = update(current);
      try {
        await this.#retrying(`aux ${space}/${key}`, () => this.#js.publish(subject, encode(next.value), { msgID: next.msgId, expect: { lastSubjectSequence: last?.seq ?? 0 }, timeout: this.#opts.publishTimeoutMs }));
        return next.value;
      } catch (err) {
        if (!isCasConflict(err) || attempt > 50) throw err;
      }
    }
  }

  async getAux<T>(space: string, key: string): Promise<T | undefined> {
    const m = await this.#getLast(this.streams.idx, this.#sub.aux(space, key));
    return m ? decode<T>(m.data) : undefined;
  }

  async *auxValues<T>(space: string): AsyncIterable<T> {
    for await (const m of this.#scan(this.streams.idx, this.#sub.auxAll(space))) yield decode<T>(m.data);
  }

  // ------------------------------------------------------------------------------------------------
  // Lifecycle
  // ------------------------------------------------------------------------------------------------

  async flush(): Promise<void> {
    while (this.#inflight.size > 0 || this.#tails.size > 0) await Promise.allSettled([...this.#inflight, ...this.#tails]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closing = true;
    const done = this.flush();
    await Promise.race([done, sleep(15_000)]);
    await this.stopAuditSequencer();
    this.#closed = true;
  }
}

/**
 * Links audit drafts into one hash chain per namespace. Drafts are written with the journal (each
 * commit's journal message carries its drafts, so they are durable with the transition's tail and
 * repaired with it); one sequencer reads the journal stream in order and appends chain messages
 * `{ rawThrough, entries }` to the AUD stream with compare-and-set on its last sequence: a second
 * sequencer (a node that lost the audit lease) cannot append. On start it continues after the
 * chain's `rawThrough`, so each draft is linked exactly once.
 */
class AuditSequencer {
  #js: JetStreamClient;
  #jsm: JetStreamManager;
  #streams: { jnl: string; aud: string };
  #audSubject: string;
  #jnlFilter: string;
  #writer: string;
  #log: Logger | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #chain = new AuditChain();
  #audSeq = 0;
  through = 0;
  #waiters: { seq: number; resolve: () => void }[] = [];

  #keyring: Keyring | undefined;
  constructor(js: JetStreamClient, jsm: JetStreamManager, streams: { jnl: string; aud: string }, audSubject: string, jnlFilter: string, writer: string, log: Logger | undefined, keyring?: Keyring) {
    this.#keyring = keyring;
    this.#js = js;
    this.#jsm = jsm;
    this.#streams = streams;
    this.#audSubject = audSubject;
    this.#jnlFilter = jnlFilter;
    this.#writer = writer;
    this.#log = log;
  }

  async #loadHead(): Promise<void> {
    const m = await this.#jsm.streams.getMessage(this.#streams.aud, { last_by_subj: this.#audSubject });
    if (!m) {
      this.#chain = new AuditChain();
      this.#audSeq = 0;
      this.through = 0;
      return;
    }
    const v = decode<AudMsg>(openPayload(this.#keyring, m.data, m.subject));
    this.#chain = new AuditChain(v.entries[v.entries.length - 1]);
    this.#audSeq = m.seq;
    this.through = v.rawThrough;
  }

  async start(): Promise<void> {
    this.#running = true;
    await this.#loadHead();
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#current?.stop();
    await this.#loop?.catch(() => undefined);
    for (const w of this.#waiters.splice(0)) w.resolve();
  }

  waitFor(seq: number): Promise<void> {
    if (this.through >= seq || !this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ seq, resolve }));
  }

  #wake(): void {
    const keep: { seq: number; resolve: () => void }[] = [];
    for (const w of this.#waiters) (w.seq <= this.through ? w.resolve() : keep.push(w));
    this.#waiters = keep;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let messages: Awaited<ReturnType<Awaited<ReturnType<JetStreamClient['consumers']['get']>>['consume']>> | undefined;
      try {
        // An ordered consumer: recreated by the client at the right place after a server restart.
        const consumer = await this.#js.consumers.get(this.#streams.jnl, { deliver_policy: 'by_start_sequence' as ConsumerConfig['deliver_policy'], opt_start_seq: this.through + 1 });
        messages = await consumer.consume({ max_messages: 1000 });
        this.#current = messages;
        if (!this.#running) break;
        let entries: AuditEntry[] = [];
        let head = this.#chain.head();
        let last = this.through;
        for await (const m of messages) {
          if (m.seq <= last) continue;
          last = m.seq;
          const j = decode<JnlMsg>(openPayload(this.#keyring, m.data, m.subject));
          for (const d of j.audit ?? []) entries.push(this.#chain.link(d));
          if (m.info.pending > 0 && entries.length < 500) continue;
          if (entries.length > 0) {
            const msg: AudMsg = { rawThrough: last, entries };
            try {
              const ack = await this.#js.publish(this.#audSubject, encode(msg), { msgID: `aud:${this.#audSeq}:${last}`, expect: { lastSubjectSequence: this.#audSeq } });
              this.#audSeq = ack.seq;
            } catch (err) {
              this.#chain.reset(head);
              if (isCasConflict(err)) {
                // Another sequencer appended: continue from the chain as it stands.
                this.#log?.warn({ writer: this.#writer }, 'audit sequencer: the chain moved under us; reloading its head');
                await this.#loadHead();
              }
              throw err;
            }
          }
          entries = [];
          head = this.#chain.head();
          this.through = last;
          this.#wake();
          if (!this.#running) break;
        }
      } catch (err) {
        if (!this.#running) break;
        this.#log?.debug({ err }, 'audit sequencer: restarting its consumer');
        await sleep(200);
      } finally {
        await messages?.close().catch(() => undefined);
      }
    }
  }
  #current: { stop(): void } | undefined;
}
