import { LeaseLostError } from '../contracts/cluster-errors.ts';
import { StoreWriteError } from '../runtime/level-store.ts';
import type { ActorRecord, Commit, OutboxMessage, TimerEntry } from '../runtime/store.ts';
import { groupOf } from './keys.ts';
import type { OwnedActors, Tracked } from './owned-actors.ts';
import {
  decode,
  encode,
  isCasConflict,
  journalSeqOf,
  NO_AUDIT,
  timerKey,
  type ActIndex,
  type ActMsg,
  type JnlMsg,
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
  /** Commits written as a journal entry only (the ACT record not rewritten). */
  journalOnly: number;
  /** Journals fenced by an adoption. */
  journalFences: number;
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
  /** Commits may be journal-only (see {@link JetStreamStore.journalTail}). */
  readonly journalTail: boolean;

  constructor(init: {
    writer: string;
    io: StreamIO;
    sub: StoreSubjects;
    guard: OwnershipGuard | undefined;
    own: OwnedActors;
    tails: DerivedWrites;
    stats: WriteStats;
    batchFailed: (actorIds: Set<string>) => void;
    journalTail: boolean;
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
    this.journalTail = init.journalTail;
  }

  /** A journal entry written after its commit landed at `streamSeq`: the next journal-only commit expects it. */
  journalWritten(id: string, journalSeq: number, streamSeq: number): void {
    const t = this.#tracked.get(id);
    if (t && !t.stale && t.seq === journalSeq) t.jnlSeq = streamSeq;
  }

  // ------------------------------------------------------------------------------------------------
  // Low-level reads and writes
  // ------------------------------------------------------------------------------------------------

  #actHeaders(msg: ActMsg): Record<string, string> {
    const index: ActIndex = {
      k: msg.record.kind,
      m: msg.record.model,
      s: msg.record.status,
      h: msg.hot,
      q: msg.record.seq,
      t: msg.timers,
    };
    return { 'Handoff-Index': JSON.stringify(index), 'Handoff-Writer': msg.by };
  }

  /** Writes an actor's ACT message with compare-and-set; retried (same msg id) while the server is unreachable. */
  async #publishAct(id: string, msg: ActMsg, expected: number, msgId: string): Promise<number> {
    const payload = encode(msg);
    const headers = this.#actHeaders(msg);
    const ack = await this.#io.retrying(`commit ${id}`, async () => {
      if (this.#guard && !msg.fence && !this.#guard.mayWrite(id))
        throw new LeaseLostError(id, 'the lease was lost while the write was retried');
      return this.#io.publish(this.#sub.act(id), payload, {
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
    if (c.checkpoint === false) return this.#commitJournal(c, prev, token);
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
      // With journal-only commits the actor's version is its journal's when that is further on.
      const [last, jl] = await Promise.all([
        this.#io.getLast(this.streams.act, this.#sub.act(id)),
        this.journalTail ? this.#io.getLast(this.streams.jnl, this.#sub.jnl(id)) : null,
      ]);
      const act = last ? decode<ActMsg>(last.data) : undefined;
      const jnl = jl ? decode<JnlMsg>(jl.data) : undefined;
      this.#checkToken(id, token, act, jnl);
      const durableSeq = Math.max(act?.record.seq ?? -1, jnl ? journalSeqOf(jnl) : -1);
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
    const timers = this.#timersAfter(c, prev);
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
      throw this.#writeFailed(id, c, prev, err);
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

  /**
   * A journal-only commit (`checkpoint: false`): the journal entry is the commit. It is appended to
   * the actor's journal subject with `Nats-Expected-Last-Subject-Sequence` (the fence: a writer that
   * did not see the subject's last message, or whose journal an adopter fenced, is refused) and its
   * msg id; the ACT record stays at the last checkpoint. The derived index writes it owes ride in
   * the message, so an adopter that finds it past the record completes them.
   */
  async #commitJournal(c: Commit, prev: Tracked | undefined, token: number | undefined): Promise<void> {
    const id = c.actor.id;
    const subject = this.#sub.jnl(id);
    if (!this.journalTail || c.actor.kind !== 'agent' || c.actor.status !== 'active') {
      throw new StoreWriteError(`${id}: a journal-only commit needs journal tails on and an active agent`);
    }
    // The entries written after earlier checkpoints come first: no gap in the journal.
    if (!(await this.#tails.settleJournal(id, subject))) {
      if (prev) prev.stale = true;
      this.#batchFailed(new Set([id]));
      throw new StoreWriteError(`${id}: an earlier journal entry is not written yet; the commit is refused`);
    }
    let expected: number;
    let durableSeq: number;
    let actSeq = prev?.actSeq;
    if (prev && !prev.stale && prev.jnlSeq !== undefined) {
      expected = prev.jnlSeq;
      durableSeq = prev.seq;
    } else {
      const [act, jl] = await Promise.all([
        this.#io.getLast(this.streams.act, this.#sub.act(id)),
        this.#io.getLast(this.streams.jnl, subject),
      ]);
      const actMsg = act ? decode<ActMsg>(act.data) : undefined;
      const jnl = jl ? decode<JnlMsg>(jl.data) : undefined;
      this.#checkToken(id, token, actMsg, jnl);
      durableSeq = Math.max(actMsg?.record.seq ?? -1, jnl ? journalSeqOf(jnl) : -1);
      expected = jl?.seq ?? 0;
      actSeq = act?.seq;
    }
    if (durableSeq !== c.journal.seq - 1 || actSeq === undefined) {
      this.stats.conflicts++;
      if (prev) prev.stale = true;
      this.#batchFailed(new Set([id]));
      throw new StoreWriteError(
        `${id}: the durable actor is at version ${durableSeq}, this commit builds on ${c.journal.seq - 1}`,
      );
    }
    const group = groupOf(id);
    const newTails = this.#tails.of(c, (mid) => this.#outbox.get(mid)?.group).filter((t) => t.k !== 'jnl');
    const timers = this.#timersAfter(c, prev);
    const lease = this.#guard?.fencingToken(id);
    const msg: JnlMsg = {
      actor: id,
      journal: c.journal,
      ...(c.audit?.length ? { audit: c.audit } : {}),
      tails: [...this.#tails.pendingOf(id), ...newTails],
      by: this.writer,
      ...(lease !== undefined ? { lease } : {}),
    };
    const payload = encode(msg);
    if (c.commandId) this.#tails.holdCommand(c.commandId);
    let jnlSeq: number;
    try {
      const ack = await this.#io.retrying(`commit ${id}`, async () => {
        if (this.#guard && !this.#guard.mayWrite(id)) {
          throw new LeaseLostError(id, 'the lease was lost while the write was retried');
        }
        return this.#io.publish(subject, payload, {
          msgID: `jnl:${id}:${c.journal.seq}`,
          expect: { lastSubjectSequence: expected },
          timeout: this.#io.opts.publishTimeoutMs,
          ...(c.audit?.length ? {} : { headers: NO_AUDIT }),
        });
      });
      jnlSeq = ack.seq;
    } catch (err) {
      throw this.#writeFailed(id, c, prev, err);
    }
    this.stats.journalOnly++;
    this.justRead.delete(id);
    const t: Tracked = {
      id,
      group,
      kind: c.actor.kind,
      model: c.actor.model,
      status: c.actor.status,
      hot: c.hot ?? false,
      actSeq,
      seq: c.journal.seq,
      stale: false,
      timers,
      lease: prev?.lease ?? token,
      jnlSeq,
    };
    this.#own.set(t, prev);
    this.#own.applyOutbox(c, group);
    this.#tails.follow(id, newTails);
  }

  /**
   * A writer that reads the actor back from the server (it had not seen it, or its last write
   * failed) may write only if no newer lease wrote it: the fencing token recorded with the last
   * record or journal message must not be above its own.
   */
  #checkToken(id: string, token: number | undefined, act: ActMsg | undefined, jnl: JnlMsg | undefined): void {
    if (!this.#guard) return;
    const seen = Math.max(act?.lease ?? -1, jnl?.lease ?? -1);
    if (seen > (token ?? -1)) {
      this.stats.leaseRefusals++;
      throw new LeaseLostError(
        id,
        `stale fencing token: the actor was written under lease revision ${seen}, this writer holds ${token ?? 'none'}`,
      );
    }
  }

  /** The actor's current deadlines after a commit: the runtime writes every current one with each commit. */
  #timersAfter(c: Commit, prev: Tracked | undefined): TimerEntry[] {
    if (c.actor.status !== 'active') return [];
    const cleared = new Set((c.timersCleared ?? []).map(timerKey));
    const set = c.timersSet ?? [];
    const kept = (prev?.timers ?? []).filter((t) => !cleared.has(timerKey(t)) && !set.some((s) => s.name === t.name));
    return [...kept, ...set];
  }

  /** A commit's write failed: the error to throw (the actor restarts from what is durable). */
  #writeFailed(id: string, c: Commit, prev: Tracked | undefined, err: unknown): Error {
    if (c.commandId) this.#tails.dropCommand(c.commandId);
    this.#own.forgetFresh(groupOf(id));
    if (prev) prev.stale = true;
    if (err instanceof LeaseLostError) return err;
    if (isCasConflict(err)) {
      this.stats.conflicts++;
      if (this.#guard && !this.#guard.mayWrite(id)) return new LeaseLostError(id, 'another node wrote the actor');
      this.#batchFailed(new Set([id]));
      return new StoreWriteError(
        `${id}: another writer changed the actor (compare-and-set failed); it restarts from the durable record`,
        { cause: err },
      );
    }
    this.#batchFailed(new Set([id]));
    const why = err instanceof Error ? err.message : String(err);
    return new StoreWriteError(`${id}: commit not written: ${why}`, { cause: err });
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
        // An agent's journal may run past its record (journal-only commits): fenced too, and its
        // entries' derived writes repaired.
        const journal =
          this.journalTail && msg.record.status === 'active' && msg.record.kind === 'agent'
            ? await this.#fenceJournal(id, msg.record.seq, repairs)
            : undefined;
        const t: Tracked = {
          id,
          group,
          kind: msg.record.kind,
          model: msg.record.model,
          status: msg.record.status,
          hot: msg.hot,
          actSeq: seq,
          seq: Math.max(msg.record.seq, journal?.through ?? -1),
          stale: false,
          timers: msg.record.status === 'active' ? msg.timers : [],
          lease: this.#guard?.fencingToken(id),
          jnlSeq: journal?.jnlSeq,
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

  /**
   * Fences an agent's journal for this writer: a fence message appended to its journal subject with
   * compare-and-set on the subject's last message, so a former owner's journal-only commit, which
   * expects the sequence it last saw, is refused from now on. Journal entries past `recordSeq`
   * written by another writer have their derived writes repaired. Resolves with the journal's last
   * seq and the fence's stream sequence.
   */
  async #fenceJournal(
    id: string,
    recordSeq: number,
    repairs: Promise<void>[],
  ): Promise<{ through: number; jnlSeq: number }> {
    const subject = this.#sub.jnl(id);
    // The record's own journal entry, if a dead owner left it unwritten, lands before the fence.
    await this.#tails.inFlight(subject);
    for (let attempt = 1; ; attempt++) {
      const last = await this.#io.getLast(this.streams.jnl, subject);
      const through = last ? journalSeqOf(decode<JnlMsg>(last.data)) : -1;
      const lease = this.#guard?.fencingToken(id);
      const fence: JnlMsg = {
        actor: id,
        by: this.writer,
        fence: { through },
        ...(lease !== undefined ? { lease } : {}),
      };
      try {
        const ack = await this.#io.retrying(`fence journal ${id}`, () =>
          this.#io.publish(subject, encode(fence), {
            msgID: `jfence:${id}:${this.writer}:${++this.#writeNo}`,
            expect: { lastSubjectSequence: last?.seq ?? 0 },
            timeout: this.#io.opts.publishTimeoutMs,
            headers: NO_AUDIT,
          }),
        );
        this.stats.journalFences++;
        if (through > recordSeq) {
          for await (const m of this.#io.scan(this.streams.jnl, subject)) {
            const j = decode<JnlMsg>(m.data);
            if (!j.journal || j.journal.seq <= recordSeq || j.by === this.writer) continue;
            for (const tail of j.tails ?? []) repairs.push(this.#tails.run(undefined, tail, true));
          }
        }
        return { through, jnlSeq: ack.seq };
      } catch (err) {
        if (!isCasConflict(err) || attempt >= 10) throw err;
      }
    }
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
