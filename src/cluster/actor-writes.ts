import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { LeaseLostError } from '../contracts/cluster-errors.ts';
import { StoreWriteError } from '../runtime/level-store.ts';
import type { ActorRecord, Commit, OutboxMessage } from '../runtime/store.ts';
import { groupOf } from './keys.ts';
import type { OwnedActors, Tracked } from './owned-actors.ts';
import {
  decode,
  encode,
  isCasConflict,
  timerKey,
  type ActIndex,
  type ActMsg,
  type OwnershipGuard,
  type StoreSubjects,
} from './store-format.ts';
import type { StreamIO } from './stream-io.ts';
import type { DerivedWrites } from './tails.ts';

/** Counters of the JetStream store's writes. */
export interface WriteStats {
  commits: number;
  fences: number;
  conflicts: number;
  leaseRefusals: number;
}

/**
 * The JetStream store's writes of actors: commits (compare-and-set on the actor's ACT subject,
 * derived writes after), fencing on adoption, and the tracking of the actors this process writes.
 * See {@link JetStreamStore} for the layout and the guarantees.
 */
export class ActorWrites {
  readonly writer: string;
  readonly streams: StreamIO['streams'];
  readonly stats: WriteStats;
  /** Commits in flight. */
  readonly inflight = new Set<Promise<void>>();
  /** Records just read by an adoption, which loads the actors next (no second round trip). */
  readonly justRead = new Map<string, { record: ActorRecord; at: number }>();
  #io: StreamIO;
  #sub: StoreSubjects;
  #guard: OwnershipGuard | undefined;
  #own: OwnedActors;
  #tracked: Map<string, Tracked>;
  #outbox: OwnedActors['outbox'];
  #tails: DerivedWrites;
  #batchFailed: (actorIds: Set<string>) => void;
  #chains = new Map<string, Promise<void>>();
  #writeNo = 0;

  constructor(init: {
    writer: string;
    io: StreamIO;
    sub: StoreSubjects;
    guard: OwnershipGuard | undefined;
    own: OwnedActors;
    tails: DerivedWrites;
    stats: WriteStats;
    batchFailed: (actorIds: Set<string>) => void;
  }) {
    this.writer = init.writer;
    this.#io = init.io;
    this.streams = init.io.streams;
    this.#sub = init.sub;
    this.#guard = init.guard;
    this.#own = init.own;
    this.#tracked = init.own.tracked;
    this.#outbox = init.own.outbox;
    this.#tails = init.tails;
    this.stats = init.stats;
    this.#batchFailed = init.batchFailed;
  }

  // ------------------------------------------------------------------------------------------------
  // Low-level reads and writes
  // ------------------------------------------------------------------------------------------------

  #actHeaders(msg: ActMsg, msgId: string): MsgHdrs {
    const h = natsHeaders();
    const index: ActIndex = {
      k: msg.record.kind,
      m: msg.record.model,
      s: msg.record.status,
      h: msg.hot,
      q: msg.record.seq,
      t: msg.timers,
    };
    h.set('Handoff-Index', JSON.stringify(index));
    h.set('Handoff-Writer', msg.by);
    h.set('Nats-Msg-Id', msgId);
    return h;
  }

  /** Writes an actor's ACT message with compare-and-set; retried (same msg id) while the server is unreachable. */
  async #publishAct(id: string, msg: ActMsg, expected: number, msgId: string): Promise<number> {
    const payload = encode(msg);
    const headers = this.#actHeaders(msg, msgId);
    const ack = await this.#io.retrying(`commit ${id}`, async () => {
      if (this.#guard && !msg.fence && !this.#guard.mayWrite(id))
        throw new LeaseLostError(id, 'the lease was lost while the write was retried');
      return this.#io.js.publish(this.#sub.act(id), payload, {
        msgID: msgId,
        expect: { lastSubjectSequence: expected },
        headers,
        timeout: this.#io.opts.publishTimeoutMs,
      });
    });
    return ack.seq;
  }

  // ------------------------------------------------------------------------------------------------
  // Commits
  // ------------------------------------------------------------------------------------------------

  commit(c: Commit): Promise<void> {
    const id = c.actor.id;
    if (this.#guard && !this.#guard.mayWrite(id)) {
      this.stats.leaseRefusals++;
      return Promise.reject(
        new LeaseLostError(id, this.#guard.why?.(id) ?? 'this node does not hold the lease of its group'),
      );
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
    this.inflight.add(p);
    const settled = () => {
      this.inflight.delete(p);
      if (this.#chains.get(id) === p) this.#chains.delete(id);
    };
    p.then(settled, settled);
    return p;
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
      throw new LeaseLostError(
        id,
        `stale fencing token: the actor was taken under lease revision ${prev.lease}, the lease is now at ${token ?? 'none'}`,
      );
    }
    let expected: number;
    if (prev && !prev.stale) {
      if (c.journal.seq !== prev.seq + 1) {
        this.stats.conflicts++;
        this.#batchFailed(new Set([id]));
        throw new StoreWriteError(
          `${id}: the durable record is at version ${prev.seq}, this commit builds on ${c.journal.seq - 1}`,
        );
      }
      expected = prev.actSeq;
    } else if (c.journal.seq === 0 && !prev) expected = 0;
    else {
      // Not seen by this writer, or its last write's outcome is unknown: the server decides, and the
      // commit must build on the durable record (else the in-memory actor is not what is durable).
      const last = await this.#io.getLast(this.streams.act, this.#sub.act(id));
      const durableSeq = last ? decode<ActMsg>(last.data).record.seq : -1;
      if (durableSeq !== c.journal.seq - 1) {
        this.stats.conflicts++;
        const failed = new Set([id]);
        if (prev) prev.stale = true;
        this.#batchFailed(failed);
        throw new StoreWriteError(
          `${id}: the durable record is at version ${durableSeq}, this commit builds on ${c.journal.seq - 1}`,
        );
      }
      expected = last?.seq ?? 0;
    }
    const group = groupOf(id);
    const newTails = this.#tails.of(c, (mid) => this.#outbox.get(mid)?.group);
    // Current deadlines: the previous ones, less those cleared, with those set replacing any of the
    // same name (the runtime writes every current deadline with each commit).
    const cleared = new Set((c.timersCleared ?? []).map(timerKey));
    const set = c.timersSet ?? [];
    let timers = (prev?.timers ?? []).filter((t) => !cleared.has(timerKey(t)) && !set.some((s) => s.name === t.name));
    timers = [...timers, ...set];
    if (c.actor.status !== 'active') timers = [];
    const lease = this.#guard?.fencingToken(id);
    const msg: ActMsg = {
      v: 1,
      record: c.actor,
      hot: c.hot ?? false,
      timers,
      tails: [...this.#tails.pendingOf(id), ...newTails],
      by: this.writer,
      ...(lease !== undefined ? { lease } : {}),
    };
    if (c.commandId) this.#tails.holdCommand(c.commandId);
    let seq: number;
    try {
      seq = await this.#publishAct(id, msg, expected, `act:${id}:${c.journal.seq}:${this.writer}:${n}`);
    } catch (err) {
      if (c.commandId) this.#tails.dropCommand(c.commandId);
      if (prev) prev.stale = true;
      if (err instanceof LeaseLostError) throw err;
      if (isCasConflict(err)) {
        this.stats.conflicts++;
        if (this.#guard && !this.#guard.mayWrite(id)) throw new LeaseLostError(id, 'another node wrote the actor');
        this.#batchFailed(new Set([id]));
        throw new StoreWriteError(
          `${id}: another writer changed the actor (compare-and-set failed); it restarts from the durable record`,
          { cause: err },
        );
      }
      this.#batchFailed(new Set([id]));
      throw new StoreWriteError(`${id}: commit not written: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
    this.justRead.delete(id);
    const t: Tracked = {
      id,
      group,
      kind: c.actor.kind,
      model: c.actor.model,
      status: c.actor.status,
      hot: c.hot ?? false,
      actSeq: seq,
      seq: c.actor.seq,
      stale: false,
      timers,
      lease: prev?.lease ?? token,
    };
    this.#own.set(t, prev);
    this.#own.applyOutbox(c, group);
    this.#tails.follow(id, newTails);
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
    const info = await this.#io.retrying(`list ${group}`, () =>
      this.#io.jsm.streams.info(this.streams.act, { subjects_filter: this.#sub.actGroup(group) }),
    );
    const subjectsOf = Object.keys(info.state.subjects ?? {});
    await Promise.all(
      subjectsOf.map(async (subject) => {
        const m = await this.#io.getLast(this.streams.act, subject);
        if (!m) return;
        let msg = decode<ActMsg>(m.data);
        let seq = m.seq;
        const id = msg.record.id;
        if (msg.by !== this.writer)
          for (const tail of msg.tails ?? []) repairs.push(this.#tails.run(undefined, tail, true));
        if (msg.record.status === 'active') {
          // Fence: rewrite the record under this node's lease. A former owner's write in between fails
          // the compare-and-set; then read again and fence again.
          for (let attempt = 1; ; attempt++) {
            const lease = this.#guard?.fencingToken(id);
            const fence: ActMsg = {
              ...msg,
              by: this.writer,
              fence: true,
              tails: [],
              ...(lease !== undefined ? { lease } : {}),
            };
            try {
              seq = await this.#publishAct(id, fence, seq, `fence:${id}:${this.writer}:${++this.#writeNo}`);
              this.stats.fences++;
              break;
            } catch (err) {
              if (!isCasConflict(err) || attempt >= 10) throw err;
              const last = await this.#io.getLast(this.streams.act, this.#sub.act(id));
              if (!last) throw err;
              msg = decode<ActMsg>(last.data);
              seq = last.seq;
              if (msg.by !== this.writer)
                for (const tail of msg.tails ?? []) repairs.push(this.#tails.run(undefined, tail, true));
              if (msg.record.status !== 'active') break;
            }
          }
        } else if (msg.record.kind === 'case') closedCases.push(id);
        const t: Tracked = {
          id,
          group,
          kind: msg.record.kind,
          model: msg.record.model,
          status: msg.record.status,
          hot: msg.hot,
          actSeq: seq,
          seq: msg.record.seq,
          stale: false,
          timers: msg.record.status === 'active' ? msg.timers : [],
          lease: this.#guard?.fencingToken(id),
        };
        this.#own.set(t, this.#tracked.get(id));
        if (msg.record.status === 'active') {
          this.justRead.set(id, { record: msg.record, at: performance.now() });
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
        const o = await this.#io.getLast(this.streams.idx, this.#sub.out(group, `${id}.resolution`));
        const v = o ? decode<{ msg?: OutboxMessage; del?: boolean }>(o.data) : undefined;
        if (v?.msg && !v.del) {
          this.#outbox.set(v.msg.id, { group, msg: v.msg });
          outbox.push(v.msg);
        }
      }),
    );
    return { active, hot, outbox };
  }

  /** Single-writer mode: tracks every actor, repairing derived writes the previous process left. */
  async trackEverything(): Promise<void> {
    const repairs: Promise<void>[] = [];
    for await (const m of this.#io.scan(this.streams.act, this.#sub.actAll())) {
      const msg = decode<ActMsg>(m.data);
      const id = msg.record.id;
      for (const tail of msg.tails ?? []) repairs.push(this.#tails.run(undefined, tail, true));
      this.#own.set(
        {
          id,
          group: groupOf(id),
          kind: msg.record.kind,
          model: msg.record.model,
          status: msg.record.status,
          hot: msg.hot,
          actSeq: m.seq,
          seq: msg.record.seq,
          stale: false,
          timers: msg.record.status === 'active' ? msg.timers : [],
        },
        undefined,
      );
    }
    await Promise.all(repairs);
    for await (const m of this.#io.scan(this.streams.idx, this.#sub.outAll())) {
      const v = decode<{ msg?: OutboxMessage; del?: boolean }>(m.data);
      if (!v.del && v.msg) this.#outbox.set(v.msg.id, { group: groupOf(v.msg.to), msg: v.msg });
    }
  }
}
