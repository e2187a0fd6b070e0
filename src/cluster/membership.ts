import type { KV, KvWatchEntry } from '@nats-io/kv';
import { openBucket } from './kv.ts';
import { nuid, type NatsConnection, type QueuedIterator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { tok, untok } from './keys.ts';
import { MemberRecordContract, tryParse } from './contracts.ts';
import { within } from '../base/within.ts';

/** One member's heartbeat record in the membership bucket. */
export interface MemberRecord {
  node: string;
  /** Incarnation: a fresh id each time the node starts. */
  inc: string;
  startedAt: number;
  /** Heartbeat counter. */
  beat: number;
  /** Wall time of the heartbeat (informational: liveness does not compare clocks). */
  at: number;
  /** Set on a graceful leave: the others take the node's work over at once. */
  left?: boolean;
}

export interface Member extends MemberRecord {
  /** `<node>.<inc>`: the member's identity. */
  id: string;
  alive: boolean;
}

export interface MembershipOptions {
  namespace: string;
  node: string;
  /** @default 250 */
  heartbeatMs?: number;
  /** A member whose heartbeat this node has not seen change for this long is dead (a killed one is found sooner by the probe). @default 5000 */
  deadAfterMs?: number;
  /**
   * This node stops writing (it is fenced) when its own heartbeat has not been stored for this long:
   * shorter than `deadAfterMs`, so it stops before anyone may take its work. @default 1500
   */
  selfFenceMs?: number;
  /**
   * A member whose heartbeat is this late is probed (see `probe`); a probe answered "gone" (its
   * connection is closed: no responder on its subject) declares it dead without waiting for
   * `deadAfterMs`. @default 700
   */
  suspectAfterMs?: number;
  /** Asks whether a suspected member is still connected. */
  probe?: (memberId: string) => Promise<'gone' | 'alive' | 'unknown'>;
  /** Bucket max age: heartbeats of members gone for longer are removed by the server. @default 1 h */
  maxAgeMs?: number;
  replicas?: number;
  logger?: Logger;
}

export type MembershipEvent =
  | { type: 'joined' | 'dead'; member: Member }
  | { type: 'health'; healthy: boolean }
  | { type: 'lapsed'; gapMs: number };

export function membersBucket(namespace: string): string {
  return `ho_${tok(namespace).replace(/=/g, '_')}_members`;
}

/**
 * Cluster membership in a KV bucket: each node puts a heartbeat under `<node>.<incarnation>` every
 * `heartbeatMs`. Liveness does not depend on per-key TTLs (nats-server 2.9 ignores them) nor on
 * comparing clocks: an observer declares a member dead when it has not seen its heartbeat change for
 * `deadAfterMs` of its own monotonic time, and only while the observer itself is healthy and has been
 * watching for that long (after the observer's own disconnect, everyone gets a fresh grace period).
 * The bucket's max age garbage-collects old incarnations. A node that cannot store its heartbeat for
 * `selfFenceMs` considers itself fenced (`healthy` false) and must not write.
 */
export class Membership {
  readonly node: string;
  readonly inc: string;
  readonly id: string;
  readonly startedAt = Date.now();
  #kv!: KV;
  #opts: Required<Omit<MembershipOptions, 'logger' | 'replicas' | 'probe'>>;
  #probe: MembershipOptions['probe'];
  #probing = new Set<string>();
  #log: Logger | undefined;
  #members = new Map<string, Member & { seenAt: number; lastBeat: number }>();
  #listeners = new Set<(e: MembershipEvent) => void>();
  #beat = 0;
  #lastOk = 0;
  #healthy = false;
  #watchingSince = 0;
  #beating: Promise<void> | null = null;
  #timer: NodeJS.Timeout | undefined;
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #stopped = false;
  #synced!: Promise<void>;

  private constructor(opts: MembershipOptions) {
    this.node = opts.node;
    this.inc = `${Date.now().toString(36)}${nuid.next().slice(-6)}`;
    this.id = `${tok(this.node)}.${this.inc}`;
    this.#opts = {
      namespace: opts.namespace,
      node: opts.node,
      heartbeatMs: opts.heartbeatMs ?? 250,
      deadAfterMs: opts.deadAfterMs ?? 5000,
      selfFenceMs: opts.selfFenceMs ?? 4000,
      maxAgeMs: opts.maxAgeMs ?? 3_600_000,
      suspectAfterMs: opts.suspectAfterMs ?? 700,
    };
    this.#probe = opts.probe;
    this.#log = opts.logger;
  }

  static async join(nc: NatsConnection, opts: MembershipOptions): Promise<Membership> {
    const m = new Membership(opts);
    m.#kv = await openBucket(nc, membersBucket(opts.namespace), {
      history: 1,
      ttl: m.#opts.maxAgeMs /* the bucket's max_age, not a per-key TTL */,
      replicas: opts.replicas ?? 1,
      storage: 'file' as never,
    });
    await m.#heartbeat();
    m.#synced = m.#startWatch();
    await m.#synced;
    m.#timer = setInterval(() => m.#tick(), m.#opts.heartbeatMs);
    m.#timer.unref?.();
    void m.#watchConnection(nc);
    return m;
  }

  /** Listens to joins, deaths and this node's health. Returns an unsubscribe. */
  on(listener: (e: MembershipEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(e: MembershipEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch (err) {
        this.#log?.error({ err }, 'membership listener threw');
      }
    }
  }

  /**
   * Whether this node may act: it can prove, by its own monotonic clock, that a heartbeat it sent
   * less than `selfFenceMs` ago was stored (the others wait `deadAfterMs` from *seeing* it, which is
   * later, before they may take its work), and its proof has not lapsed since it last checked its
   * leases. A node paused (SIGSTOP), starved or cut off for longer is fenced until it has both
   * stored a heartbeat again and re-read its leases from the server ({@link confirm}).
   */
  get healthy(): boolean {
    if (this.#stopped) return false;
    if (performance.now() - this.#lastOk >= this.#opts.selfFenceMs) {
      this.#lapsed = true;
      return false;
    }
    return !this.#lapsed;
  }

  /** The proof lapsed (a pause, a stall, a lost connection): leases must be re-read before acting again. */
  get lapsed(): boolean {
    return this.#lapsed;
  }

  /** The node re-read its leases after a lapse: it may act again (while its heartbeat proof holds). */
  confirm(): void {
    if (performance.now() - this.#lastOk < this.#opts.selfFenceMs) this.#lapsed = false;
  }

  #lapsed = false;
  /** Connections whose status is watched, and how many of them are disconnected now. */
  #down = new Set<NatsConnection>();
  /** Bumped on every disconnect and reconnect: a probe begun before one tells nothing. */
  #connGen = 0;

  /**
   * Watches a connection of this node (the data connection too: a probe travels on it). While any
   * watched connection is down nobody is judged, and after it comes back everyone gets a full
   * `deadAfterMs` grace from the reconnect: a restarted server is unknown, never peers' death.
   */
  observe(nc: NatsConnection): void {
    void this.#watchConnection(nc);
  }

  /** Live members, this node included. */
  alive(): Member[] {
    return [...this.#members.values()].filter((m) => m.alive).map(({ seenAt: _s, lastBeat: _b, ...m }) => m);
  }

  isAlive(memberId: string): boolean {
    return this.#members.get(memberId)?.alive ?? false;
  }

  #unknownSince = new Map<string, number>();

  /**
   * Whether a member is dead for sure: declared dead, or never seen although this node has been
   * watching (healthy) for `deadAfterMs` since it first asked (a member that joined a moment ago may
   * hold leases before its first heartbeat reaches this node).
   */
  isDead(memberId: string): boolean {
    const m = this.#members.get(memberId);
    if (m) return !m.alive;
    const now = performance.now();
    const since = this.#unknownSince.get(memberId);
    if (since === undefined) {
      this.#unknownSince.set(memberId, now);
      return false;
    }
    return this.healthy && this.#down.size === 0 && now - Math.max(since, this.#watchingSince) > this.#opts.deadAfterMs;
  }

  /** Members known (alive or dead), by id. */
  get(memberId: string): Member | undefined {
    const m = this.#members.get(memberId);
    if (!m) return undefined;
    const { seenAt: _s, lastBeat: _b, ...rest } = m;
    return rest;
  }

  async #heartbeat(): Promise<void> {
    if (this.#beating || this.#stopped) return;
    const rec: MemberRecord = {
      node: this.node,
      inc: this.inc,
      startedAt: this.startedAt,
      beat: ++this.#beat,
      at: Date.now(),
    };
    this.#beating = (async () => {
      // The proof dates from when the heartbeat was sent (it was stored after that), not acknowledged.
      const sentAt = performance.now();
      try {
        await this.#kv.put(this.id, JSON.stringify(rec), { timeout: Math.max(500, this.#opts.selfFenceMs - 200) });
        const now = performance.now();
        if (this.#lastOk > 0 && now - this.#lastOk >= this.#opts.selfFenceMs && !this.#lapsed) {
          // The proof ran out before this acknowledgement (a pause: SIGSTOP, a stall): whatever this
          // node believed it held may have been taken meanwhile.
          this.#lapsed = true;
        }
        this.#lastOk = Math.max(this.#lastOk, sentAt);
        if (this.#lapsed) this.#emit({ type: 'lapsed', gapMs: Math.round(now - sentAt) });
      } catch (err) {
        this.#log?.debug({ err }, 'heartbeat not stored');
      } finally {
        this.#beating = null;
      }
    })();
    await this.#beating;
  }

  /** After this node's own reconnect, everyone gets a fresh grace period: heartbeats could not be seen meanwhile. */
  async #watchConnection(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.#down.add(nc);
          this.#connGen++;
        } else if (s.type === 'reconnect') {
          this.#down.delete(nc);
          this.#connGen++;
          this.#graceFromNow();
        }
      }
    } catch {
      // closed
    }
  }

  /** Everyone gets a full grace period from now (after a reconnect of any of this node's connections). */
  #graceFromNow(): void {
    const now = performance.now();
    this.#watchingSince = now;
    for (const m of this.#members.values()) m.seenAt = now;
    this.#unknownSince.clear();
  }

  /** Whether this node can judge others now: every connection up, and a full grace since the last reconnect. */
  #canJudge(now: number): boolean {
    return this.#down.size === 0 && now - this.#watchingSince >= this.#opts.deadAfterMs;
  }

  async #startWatch(): Promise<void> {
    const status = await this.#kv.status();
    let resolveSynced!: () => void;
    const synced = new Promise<void>((r) => (resolveSynced = r));
    if (status.values === 0) resolveSynced();
    this.#watch = await this.#kv.watch();
    this.#watchingSince = performance.now();
    void (async () => {
      for await (const e of this.#watch!) {
        this.#onEntry(e);
        if (e.isUpdate) resolveSynced();
      }
    })().catch((err: unknown) => this.#log?.warn({ err }, 'membership watch ended'));
    await within(synced, 5000);
  }

  #onEntry(e: KvWatchEntry): void {
    const now = performance.now();
    if (e.operation !== 'PUT') return;
    let rec: MemberRecord | undefined;
    try {
      rec = tryParse(MemberRecordContract, e.json<unknown>()) as MemberRecord | undefined;
    } catch {
      rec = undefined;
    }
    if (!rec) {
      // Not a heartbeat (a poison value written to the bucket): ignored, never fatal.
      this.#log?.warn({ key: e.key }, 'membership: invalid heartbeat ignored');
      return;
    }
    const id = e.key;
    const prev = this.#members.get(id);
    if (prev && !prev.alive) {
      // Declared dead but heartbeating again (a stall, a partition): alive again. What was taken
      // over meanwhile stays taken over (leases are the truth); it learns so from the leases.
      if (rec.left || rec.beat === prev.lastBeat || this.#superseded(prev)) return;
      prev.alive = true;
      prev.lastBeat = rec.beat;
      prev.seenAt = now;
      this.#emit({ type: 'joined', member: this.get(id)! });
      return;
    }
    if (rec.left) {
      if (prev) this.#declareDead(prev, 'left');
      else this.#members.set(id, { ...rec, id, alive: false, seenAt: now, lastBeat: rec.beat });
      return;
    }
    if (!prev) {
      const m = { ...rec, id, alive: true, seenAt: now, lastBeat: rec.beat };
      this.#members.set(id, m);
      this.#emit({ type: 'joined', member: this.get(id)! });
      // A newer incarnation of the same node name supersedes the older ones at once.
      for (const other of this.#members.values())
        if (other.alive && other.node === rec.node && other.id !== id && other.startedAt <= rec.startedAt)
          this.#declareDead(other, 'restarted');
      return;
    }
    if (rec.beat !== prev.lastBeat) {
      prev.lastBeat = rec.beat;
      prev.seenAt = now;
      prev.at = rec.at;
      prev.beat = rec.beat;
    }
  }

  #superseded(m: Member): boolean {
    for (const other of this.#members.values())
      if (other.node === m.node && other.id !== m.id && other.startedAt > m.startedAt) return true;
    return false;
  }

  #declareDead(m: Member & { seenAt: number }, why: string): void {
    if (!m.alive) return;
    m.alive = false;
    this.#log?.info({ member: m.id, why }, 'member dead');
    this.#emit({ type: 'dead', member: this.get(m.id)! });
  }

  #lastTick = performance.now();

  #tick(): void {
    if (this.#stopped) return;
    void this.#heartbeat();
    const now = performance.now();
    const stalled = now - this.#lastTick > 4 * this.#opts.heartbeatMs;
    this.#lastTick = now;
    if (stalled) {
      // This node's own event loop stalled: heartbeats that arrived meanwhile are still queued behind
      // this timer. Judge nobody now; look again once they have been read.
      return;
    }
    // Read what arrived first (timers run before I/O in a turn of the event loop).
    setImmediate(() => this.#check());
  }

  #check(): void {
    if (this.#stopped) return;
    const now = performance.now();
    const healthy = this.healthy;
    if (healthy !== this.#healthy) {
      this.#healthy = healthy;
      this.#emit({ type: 'health', healthy });
    }
    if (!healthy || !this.#canJudge(now)) return;
    for (const m of this.#members.values()) {
      if (m.id === this.id || !m.alive) continue;
      const late = now - m.seenAt;
      if (late > this.#opts.deadAfterMs) this.#declareDead(m, `no heartbeat for ${Math.round(late)} ms`);
      else if (late > this.#opts.suspectAfterMs && this.#probe && !this.#probing.has(m.id)) {
        this.#probing.add(m.id);
        const seenAt = m.seenAt;
        const gen = this.#connGen;
        void this.#probe(m.id)
          .then((r) => {
            // Gone: its connection is closed (a killed process). Only if it has not beaten meanwhile,
            // and only if none of this node's connections dropped or came back since the probe began
            // ("no responders" just after a server restart means it has not resubscribed yet).
            if (
              r === 'gone' &&
              m.seenAt === seenAt &&
              gen === this.#connGen &&
              this.healthy &&
              this.#canJudge(performance.now())
            )
              this.#declareDead(
                m,
                `no heartbeat for ${Math.round(performance.now() - m.seenAt)} ms and no longer connected`,
              );
          })
          .catch(() => undefined)
          .finally(() => this.#probing.delete(m.id));
      }
    }
  }

  /** Leaves gracefully: the others take this node's work over without waiting for it to look dead. */
  async leave(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#beating;
    const rec: MemberRecord = {
      node: this.node,
      inc: this.inc,
      startedAt: this.startedAt,
      beat: ++this.#beat,
      at: Date.now(),
      left: true,
    };
    await this.#kv.put(this.id, JSON.stringify(rec), { timeout: 2000 }).catch(() => undefined);
    this.#watch?.stop();
  }

  /** Stops heartbeating without leaving (as if the process died), for tests. */
  halt(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#watch?.stop();
  }

  /** The node name of a member id. */
  static nodeOf(memberId: string): string {
    return untok(memberId.split('.')[0] ?? memberId);
  }
}
