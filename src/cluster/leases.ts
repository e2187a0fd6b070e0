import type { KV, KvWatchEntry } from '@nats-io/kv';
import { openBucket } from './kv.ts';
import type { NatsConnection, QueuedIterator } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { isCasConflict } from './store-format.ts';
import { tok, untok } from './keys.ts';
import { LeaseHolderContract, tryParse } from './contracts.ts';
import { within } from '../base/within.ts';
import { JsWire } from './js-wire.ts';

const EMPTY = new Uint8Array(0);
/** Free leases kept before the ones the watch has gone past are forgotten. */
const PRUNE_FREE_AT = 512;

export interface LeaseHolder {
  /** Member id `<node>.<inc>`. */
  member: string;
  node: string;
  at: number;
}

export interface Lease {
  group: string;
  holder: LeaseHolder | null;
  /** KV revision of the lease entry: the fencing token of its holder. */
  revision: number;
  /**
   * Created by this node on a key never written before: nobody has held the group, so (every write
   * of a group's actors being made under its lease) the store holds none of its actors yet.
   */
  fresh?: boolean;
}

export function leasesBucket(namespace: string): string {
  return `ho_${tok(namespace).replace(/=/g, '_')}_leases`;
}

/**
 * Leases of placement groups in a KV bucket, one key per group, acquired and handed over only by
 * compare-and-set on the entry's revision (`create` when free, `update(…, revision)` to take over a
 * dead holder's, `delete` with the revision to release). The entry's revision is the fencing token:
 * every write of the group's actors records it. Leases do not expire by themselves: a lease is valid
 * while its holder is a live member (see {@link Membership}); a dead holder's leases are taken over.
 * Every node watches the bucket, so it knows every group's holder.
 */
export class Leases {
  #kv!: KV;
  #wire!: JsWire;
  #bucket!: string;
  #map = new Map<string, Lease>();
  /** Groups whose lease was seen free (candidates for {@link prune}). */
  #free = new Set<string>();
  /** The latest revision the watch has delivered. */
  #watchedThrough = 0;
  #listeners = new Set<(group: string, prev: Lease | undefined, next: Lease) => void>();
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #log: Logger | undefined;
  readonly stats = { acquired: 0, lost: 0, released: 0, conflicts: 0 };

  static async open(
    nc: NatsConnection,
    opts: { namespace: string; replicas?: number; logger?: Logger },
  ): Promise<Leases> {
    const l = new Leases();
    l.#log = opts.logger;
    l.#bucket = leasesBucket(opts.namespace);
    l.#wire = new JsWire(nc);
    l.#kv = await openBucket(nc, l.#bucket, {
      history: 1,
      replicas: opts.replicas ?? 1,
      storage: 'file' as never,
    });
    const status = await l.#kv.status();
    let resolveSynced!: () => void;
    const synced = new Promise<void>((r) => (resolveSynced = r));
    if (status.values === 0) resolveSynced();
    l.#watch = await l.#kv.watch();
    void (async () => {
      for await (const e of l.#watch!) {
        l.#watched(e);
        if (e.isUpdate) resolveSynced();
      }
    })().catch((err: unknown) => l.#log?.warn({ err }, 'lease watch ended'));
    await within(synced, 10_000);
    return l;
  }

  get kv(): KV {
    return this.#kv;
  }

  on(listener: (group: string, prev: Lease | undefined, next: Lease) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #set(next: Lease): void {
    const prev = this.#map.get(next.group);
    if (prev && prev.revision >= next.revision) return; // an older event, or one already applied
    this.#map.set(next.group, next);
    if (!next.holder) this.#free.add(next.group);
    for (const l of this.#listeners) {
      try {
        l(next.group, prev, next);
      } catch (err) {
        this.#log?.error({ err }, 'lease listener threw');
      }
    }
  }

  /** From the watch (in the stream's order): after it, no older event of any key can come from there. */
  #watched(e: KvWatchEntry): void {
    this.#onEntry(e);
    if (e.revision > this.#watchedThrough) this.#watchedThrough = e.revision;
    if (this.#free.size >= PRUNE_FREE_AT) this.#prune();
  }

  /**
   * Forgets free leases the watch has gone past (a released episode's key keeps its delete marker
   * for ever: without this, every node's map would hold one entry per episode the cluster ever ran,
   * and every sweep would walk them). A forgotten group reads as free, as before; an older event
   * of it cannot arrive any more, since the watch delivers in order and is already past it.
   */
  #prune(): void {
    for (const group of this.#free) {
      const l = this.#map.get(group);
      if (l && !l.holder && l.revision <= this.#watchedThrough) this.#map.delete(group);
      if (!l || l.holder || l.revision <= this.#watchedThrough) this.#free.delete(group);
    }
  }

  #onEntry(e: Pick<KvWatchEntry, 'key' | 'operation' | 'revision' | 'json'>): void {
    const group = untok(e.key);
    // This node's own acquisitions come back through the watch: known already, nothing to parse.
    if ((this.#map.get(group)?.revision ?? -1) >= e.revision) return;
    if (e.operation !== 'PUT') {
      this.#set({ group, holder: null, revision: e.revision });
      return;
    }
    let holder: LeaseHolder | undefined;
    try {
      holder = tryParse(LeaseHolderContract, e.json<unknown>());
    } catch {
      holder = undefined;
    }
    // Not a lease (a poison value written to the bucket): ignored, never fatal.
    if (holder) this.#set({ group, holder, revision: e.revision });
    else this.#log?.warn({ key: e.key }, 'leases: invalid lease value ignored');
  }

  get(group: string): Lease | undefined {
    return this.#map.get(group);
  }

  /** The member (node and incarnation) holding `group`'s lease, as last seen; undefined if none. */
  ownerOf(group: string): string | undefined {
    return this.#map.get(group)?.holder?.member;
  }

  /** Every known lease with a holder. */
  all(): Lease[] {
    return [...this.#map.values()].filter((l) => l.holder);
  }

  heldBy(member: string): Lease[] {
    return this.all().filter((l) => l.holder?.member === member);
  }

  /**
   * Acquires a group's lease for `member`: creates it if free, or takes it over from `from` (a lease
   * seen at that revision, whose holder is dead). Resolves with the new lease, or undefined if someone
   * else won the race.
   */
  async acquire(group: string, holder: LeaseHolder, from?: Lease): Promise<Lease | undefined> {
    const key = tok(group);
    const value = JSON.stringify(holder);
    try {
      // Taking over a holder's lease is a compare-and-set on the revision seen; a free (deleted or
      // never created) lease is created, which fails if anyone created it meanwhile. A new episode's
      // key was never written: one publish that expects the key's subject to be empty creates it
      // (and tells that the group is fresh); a key with a delete marker is created by the KV client.
      let revision: number;
      let fresh = false;
      if (from?.holder) revision = await this.#kv.update(key, value, from.revision);
      else {
        const created = await this.#createNew(key, value);
        fresh = created !== undefined;
        revision = created ?? (await this.#kv.create(key, value));
      }
      const lease: Lease = { group, holder, revision, ...(fresh ? { fresh } : {}) };
      this.#set(lease);
      this.stats.acquired++;
      return lease;
    } catch (err) {
      if (isCasConflict(err) || /wrong last sequence|exists/i.test(String((err as Error)?.message))) {
        this.stats.conflicts++;
        // Learn the current holder now rather than wait for the watch.
        const e = await this.#kv.get(key).catch(() => null);
        if (e) this.#onEntry({ key, operation: e.operation, revision: e.revision, json: <T>() => e.json<T>() });
        return undefined;
      }
      throw err;
    }
  }

  /** Creates a key that was never written (its revision), or undefined if the key's subject holds anything. */
  async #createNew(key: string, value: string): Promise<number | undefined> {
    try {
      const ack = await this.#wire.publish(this.#subject(key), Buffer.from(value, 'utf8'), {
        expect: { lastSubjectSequence: 0 },
      });
      return ack.seq;
    } catch (err) {
      if (isCasConflict(err)) return undefined;
      throw err;
    }
  }

  #subject(key: string): string {
    return `$KV.${this.#bucket}.${key}`;
  }

  /** Releases a lease held at `lease.revision` (compare-and-set: a lease taken over meanwhile stays). */
  async release(lease: Lease): Promise<boolean> {
    try {
      // The KV client's delete: a delete marker, written only if the lease is still at that revision.
      const ack = await this.#wire.publish(this.#subject(tok(lease.group)), EMPTY, {
        headers: { 'KV-Operation': 'DEL' },
        expect: { lastSubjectSequence: lease.revision },
      });
      this.stats.released++;
      // Known free at once, at the delete marker's revision (its event from the watch then changes nothing).
      const cur = this.#map.get(lease.group);
      if (cur && cur.revision <= ack.seq) {
        this.#map.set(lease.group, { group: lease.group, holder: null, revision: ack.seq });
        this.#free.add(lease.group);
      }
      return true;
    } catch (err) {
      if (isCasConflict(err)) return false;
      throw err;
    }
  }

  /**
   * Reads the groups' leases from the server now (not from the watch, which may lag behind): after a
   * pause or a lost connection a node must learn what it lost before it acts. Resolves once every
   * read has been applied (a lease taken over meanwhile fires the listeners); rejects if the server
   * could not be read.
   */
  async refresh(groups: Iterable<string>): Promise<void> {
    await Promise.all(
      [...groups].map(async (group) => {
        const key = tok(group);
        const e = await this.#kv.get(key);
        if (!e) {
          const cur = this.#map.get(group);
          // Gone altogether (purged): nobody holds it; this node does not.
          if (cur?.holder) this.#set({ group, holder: null, revision: Number.MAX_SAFE_INTEGER });
          return;
        }
        this.#onEntry({ key, operation: e.operation, revision: e.revision, json: <T>() => e.json<T>() });
      }),
    );
  }

  close(): void {
    this.#watch?.stop();
    this.#wire?.close();
  }
}
