import type { Logger } from 'pino';
import type { Commit } from '../runtime/store.ts';
import { groupOf } from './keys.ts';
import {
  decode,
  encode,
  journalHeaders,
  journalSeqOf,
  sleep,
  type JnlMsg,
  type StoreSubjects,
  type Tail,
} from './store-format.ts';
import type { StreamIO } from './stream-io.ts';

/**
 * The derived writes that follow an actor's commit: its journal entry, its command id and its
 * outbox changes. Each is written once (msg id), in order per subject, and retried until it lands;
 * until it is confirmed it stays pending for its actor, so the actor's next ACT message carries it
 * and whoever adopts the actor completes it (check-then-write, idempotent).
 */
export class DerivedWrites {
  #io: StreamIO;
  #sub: StoreSubjects;
  #log: Logger | undefined;
  #stats: { tails: number; repairedTails: number; retries: number };
  #closed: () => boolean;
  #closing: () => boolean;
  #onJournal: ((actorId: string, journalSeq: number, streamSeq: number) => void) | undefined;
  #chains = new Map<string, Promise<void>>();
  #all = new Set<Promise<void>>();
  #commands = new Set<string>();
  /** Derived writes not yet confirmed, per actor (repeated in the actor's next ACT message). */
  #pending = new Map<string, Map<string, Tail>>();

  constructor(init: {
    io: StreamIO;
    sub: StoreSubjects;
    log: Logger | undefined;
    stats: { tails: number; repairedTails: number; retries: number };
    closed: () => boolean;
    closing: () => boolean;
    /** A journal entry written as a derived write landed at `streamSeq` of the journal stream. */
    onJournal?: (actorId: string, journalSeq: number, streamSeq: number) => void;
  }) {
    this.#io = init.io;
    this.#sub = init.sub;
    this.#log = init.log;
    this.#stats = init.stats;
    this.#closed = init.closed;
    this.#closing = init.closing;
    this.#onJournal = init.onJournal;
  }

  /** The derived writes of a commit; `outboxGroup` names the group of an outbox message being removed. */
  of(c: Commit, outboxGroup: (id: string) => string | undefined): Tail[] {
    const a = c.actor;
    const sub = this.#sub;
    const tails: Tail[] = [];
    const group = groupOf(a.id);
    const jnl: JnlMsg = { actor: a.id, journal: c.journal, ...(c.audit?.length ? { audit: c.audit } : {}) };
    tails.push({
      k: 'jnl',
      subject: sub.jnl(a.id),
      msgId: `jnl:${a.id}:${c.journal.seq}`,
      data: jnl,
      seq: c.journal.seq,
    });
    if (c.commandId) {
      const data = { actor: a.id, seq: c.journal.seq };
      tails.push({ k: 'cmd', subject: sub.cmd(c.commandId), msgId: `cmd:${c.commandId}`, data });
    }
    for (const m of c.outboxPut ?? []) {
      tails.push({ k: 'outPut', subject: sub.out(groupOf(m.to), m.id), msgId: `outp:${m.id}`, data: { msg: m } });
    }
    for (const mid of c.outboxDone ?? []) {
      const g = outboxGroup(mid) ?? group;
      tails.push({ k: 'outDel', subject: sub.out(g, mid), msgId: `outd:${mid}`, data: { del: true } });
    }
    return tails;
  }

  /** The actor's derived writes not confirmed yet. */
  pendingOf(id: string): Tail[] {
    return [...(this.#pending.get(id)?.values() ?? [])];
  }

  /** Writes an actor's derived writes after its commit, keeping them pending until each lands. */
  follow(id: string, tails: Tail[]): void {
    let pending = this.#pending.get(id);
    if (!pending) this.#pending.set(id, (pending = new Map()));
    for (const tail of tails) pending.set(tail.msgId, tail);
    for (const tail of tails) void this.run(id, tail, false);
  }

  /**
   * Before a journal-only commit of `id`: the actor's journal entries written as derived writes have
   * landed (retried once more if one had failed). False: one is still missing (the commit must not
   * append after a gap).
   */
  async settleJournal(id: string, subject: string): Promise<boolean> {
    const chain = this.#chains.get(subject);
    if (chain) await chain;
    for (const t of this.pendingOf(id)) if (t.k === 'jnl') await this.run(id, t, true);
    return !this.pendingOf(id).some((t) => t.k === 'jnl');
  }

  /** A command id written by a commit in flight (its index entry may not have landed yet). */
  holdCommand(commandId: string): void {
    this.#commands.add(commandId);
  }

  dropCommand(commandId: string): void {
    this.#commands.delete(commandId);
  }

  hasCommand(commandId: string): boolean {
    return this.#commands.has(commandId);
  }

  /** The derived write in flight on a subject, if any. */
  inFlight(subject: string): Promise<void> | undefined {
    return this.#chains.get(subject);
  }

  get size(): number {
    return this.#all.size;
  }

  all(): Promise<void>[] {
    return [...this.#all];
  }

  /**
   * Writes one derived write after the previous one on its subject. `check`: an adopter's repair,
   * written only if the subject does not hold it yet.
   */
  run(owner: string | undefined, tail: Tail, check: boolean): Promise<void> {
    const prev = this.#chains.get(tail.subject) ?? Promise.resolve();
    const p = prev
      .then(() => this.#write(tail, check))
      .then(
        (streamSeq) => {
          this.#stats.tails++;
          if (owner && tail.k === 'jnl' && streamSeq !== undefined) this.#onJournal?.(owner, tail.seq ?? -1, streamSeq);
          if (owner) {
            const pending = this.#pending.get(owner);
            pending?.delete(tail.msgId);
            if (pending?.size === 0) this.#pending.delete(owner);
          }
          if (tail.k === 'cmd') this.#commands.delete(tail.msgId.slice(4));
        },
        (err: unknown) => {
          // Left in the actor's pending tails: its next commit carries it, an adopter repairs it.
          this.#log?.warn({ err, subject: tail.subject }, 'jetstream store: derived write not completed');
        },
      );
    this.#chains.set(tail.subject, p);
    this.#all.add(p);
    void p.finally(() => {
      this.#all.delete(p);
      if (this.#chains.get(tail.subject) === p) this.#chains.delete(tail.subject);
    });
    return p;
  }

  /** Writes it; resolves with its stream sequence when known. */
  async #write(tail: Tail, check: boolean): Promise<number | undefined> {
    const io = this.#io;
    for (let attempt = 1; ; attempt++) {
      try {
        if (check) {
          const last = await io.getLast(tail.k === 'jnl' ? io.streams.jnl : io.streams.idx, tail.subject);
          if (last) {
            if (tail.k === 'jnl' && journalSeqOf(decode<JnlMsg>(last.data)) >= (tail.seq ?? 0)) return undefined;
            if (tail.k === 'cmd' || tail.k === 'outPut') return undefined;
            if (tail.k === 'outDel' && (decode<{ del?: boolean }>(last.data).del ?? false)) return undefined;
          }
          this.#stats.repairedTails++;
        }
        const headers = tail.k === 'jnl' ? journalHeaders(tail.data as JnlMsg) : undefined;
        const ack = await io.publish(tail.subject, encode(tail.data), {
          msgID: tail.msgId,
          timeout: io.opts.publishTimeoutMs,
          ...(headers ? { headers } : {}),
        });
        return ack.seq;
      } catch (err) {
        if (this.#closed() || (this.#closing() && attempt > 20)) throw err;
        this.#stats.retries++;
        await sleep(Math.min(2000, 25 * 2 ** Math.min(attempt, 7)));
      }
    }
  }
}
