import type { Principal } from '../contracts/auth.ts';

/**
 * A console session as kept at rest. The key it is stored under is the SHA-256 of the session token
 * (the cookie's value); the token itself, and the CSRF token derived from it, are never stored.
 */
export interface SessionRecord {
  kind: 'session';
  principal: Principal;
  /** How the reviewer signed in. */
  via: 'password' | 'oidc';
  createdAt: number;
  /** Last recorded use (recorded at most `touchMs` late, see `Sessions`). */
  lastSeen: number;
  /** min(lastSeen + idle, createdAt + absolute), as of the last write. */
  expiresAt: number;
  /** When it ended: signed out, replaced by a new sign-in, or expired. Kept a day, so the console can say "expired". */
  endedAt?: number;
  endReason?: 'signout' | 'replaced' | 'expired';
}

/** An OpenID Connect sign-in under way (between the redirect to the provider and its callback); one use, 10 minutes. */
export interface PendingSignIn {
  kind: 'oidc-pending';
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Where to go once signed in: `/` or `/inspector`. */
  next: string;
  expiresAt: number;
}

export type StoredRecord = SessionRecord | PendingSignIn;

/**
 * Where sessions live: in memory (one process; tests), in the embedded console's LevelDB (a restart
 * keeps them), or in a NATS KV bucket every node of a cluster shares. Keys are hashes, never tokens.
 */
export interface SessionStore {
  readonly kind: 'memory' | 'leveldb' | 'nats-kv';
  get(key: string): Promise<StoredRecord | undefined>;
  put(key: string, rec: StoredRecord): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every record, for the sweep of expired ones. */
  entries(): AsyncIterable<[string, StoredRecord]>;
  /**
   * Changes written by other processes sharing the store (another node's sign-out or use), so this
   * one can close the WebSockets of a session ended elsewhere. `undefined`: deleted.
   */
  watch?(onChange: (key: string, rec: StoredRecord | undefined) => void): () => void;
  close?(): Promise<void>;
}

/** Sessions in this process only (the default without a data folder; a restart signs everyone out). */
export class MemorySessionStore implements SessionStore {
  readonly kind = 'memory';
  #map = new Map<string, StoredRecord>();
  #watchers = new Set<(key: string, rec: StoredRecord | undefined) => void>();

  async get(key: string): Promise<StoredRecord | undefined> {
    const r = this.#map.get(key);
    return r ? structuredClone(r) : undefined;
  }
  async put(key: string, rec: StoredRecord): Promise<void> {
    this.#map.set(key, structuredClone(rec));
    this.#notify(key, rec);
  }
  async delete(key: string): Promise<void> {
    this.#map.delete(key);
    this.#notify(key, undefined);
  }
  async *entries(): AsyncIterable<[string, StoredRecord]> {
    for (const [k, v] of [...this.#map]) yield [k, structuredClone(v)];
  }
  /** Gateways of one process sharing this store see each other's changes (as nodes sharing a bucket do). */
  watch(onChange: (key: string, rec: StoredRecord | undefined) => void): () => void {
    this.#watchers.add(onChange);
    return () => this.#watchers.delete(onChange);
  }
  #notify(key: string, rec: StoredRecord | undefined): void {
    for (const w of this.#watchers) queueMicrotask(() => w(key, rec && structuredClone(rec)));
  }
}

/** What {@link LevelSessionStore} needs of the embedded `LevelStore`. */
export interface MetaStore {
  getMeta<T>(key: string): Promise<T | undefined>;
  putMeta(key: string, value: unknown): Promise<void>;
  deleteMeta(key: string): Promise<void>;
  db: { keys(range: { gt: string; lt: string }): AsyncIterable<string> };
}

const META_PREFIX = 'session:';

/**
 * Sessions in the embedded console's LevelDB (meta keys `session:<sha256 of the token>`), sealed with
 * the folder's data keys like every other value: a restart of `handoff start` keeps everyone signed in.
 */
export class LevelSessionStore implements SessionStore {
  readonly kind = 'leveldb';
  constructor(private readonly store: MetaStore) {}

  get(key: string): Promise<StoredRecord | undefined> {
    return this.store.getMeta<StoredRecord>(META_PREFIX + key);
  }
  put(key: string, rec: StoredRecord): Promise<void> {
    return this.store.putMeta(META_PREFIX + key, rec);
  }
  delete(key: string): Promise<void> {
    return this.store.deleteMeta(META_PREFIX + key);
  }
  async *entries(): AsyncIterable<[string, StoredRecord]> {
    const keys: string[] = [];
    for await (const k of this.store.db.keys({ gt: `m:${META_PREFIX}`, lt: `m:${META_PREFIX.slice(0, -1)};` }))
      keys.push(k.slice(2 + META_PREFIX.length));
    for (const k of keys) {
      const rec = await this.get(k);
      if (rec) yield [k, rec];
    }
  }
}
