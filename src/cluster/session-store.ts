import { KvWatchInclude, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { SessionStore, StoredRecord } from '../httpkit/session-store.ts';
import type { Keyring } from '../security/keyring.ts';
import { openMaybe, seal } from '../security/seal.ts';
import { tok } from './keys.ts';
import { openBucket } from './kv.ts';

export function sessionsBucket(namespace: string): string {
  return `ho_${tok(namespace).replace(/=/g, '_')}_sessions`;
}

/**
 * Console sessions in a KV bucket every node of the namespace shares (`ho_<ns>_sessions`, one key
 * per SHA-256 of a session token, history 1): a reviewer signed in on one node is signed in on all,
 * a sign-out on one ends the session on every node (the next request reads the bucket; the watch
 * closes the session's sockets at once), and a node restart signs nobody out. With data keys, values
 * are sealed (AES-256-GCM, bound to their key) like the JetStream store's.
 */
export class NatsSessionStore implements SessionStore {
  readonly kind = 'nats-kv';
  #kv: KV;
  #watchers = new Set<(key: string, rec: StoredRecord | undefined) => void>();
  #watch: Awaited<ReturnType<KV['watch']>> | undefined;
  #log: Logger | undefined;
  #keyring: Keyring | undefined;

  private constructor(kv: KV, log: Logger | undefined, keyring: Keyring | undefined) {
    this.#kv = kv;
    this.#log = log;
    this.#keyring = keyring;
  }

  static async open(
    nc: NatsConnection,
    opts: { namespace: string; replicas?: number; logger?: Logger; keyring?: Keyring | undefined },
  ): Promise<NatsSessionStore> {
    const kv = await openBucket(nc, sessionsBucket(opts.namespace), {
      history: 1,
      replicas: opts.replicas ?? 1,
      storage: 'file' as never,
    });
    const store = new NatsSessionStore(kv, opts.logger, opts.keyring);
    store.#watch = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
    const w = store.#watch;
    void (async () => {
      for await (const e of w) store.#onEntry(e);
    })().catch((err: unknown) => store.#log?.warn({ err }, 'session watch ended'));
    return store;
  }

  #onEntry(e: KvWatchEntry): void {
    let rec: StoredRecord | undefined;
    if (e.operation === 'PUT') {
      try {
        rec = this.#decode(e.key, e.value);
      } catch {
        return; // not a session (a poison value, or sealed under a key this node lacks): ignored
      }
      if (!rec || typeof rec !== 'object' || (rec.kind !== 'session' && rec.kind !== 'oidc-pending')) return;
    }
    for (const w of this.#watchers) w(e.key, rec);
  }

  async get(key: string): Promise<StoredRecord | undefined> {
    const e = await this.#kv.get(key);
    if (!e || e.operation !== 'PUT') return undefined;
    try {
      return this.#decode(key, e.value);
    } catch (err) {
      this.#log?.warn({ err, code: 'auth.session_unreadable' }, 'a stored session cannot be read; treated as absent');
      return undefined;
    }
  }

  #decode(key: string, value: Uint8Array): StoredRecord {
    return JSON.parse(Buffer.from(openMaybe(this.#keyring, value, `session:${key}`)).toString('utf8')) as StoredRecord;
  }

  async put(key: string, rec: StoredRecord): Promise<void> {
    const json = Buffer.from(JSON.stringify(rec));
    await this.#kv.put(key, this.#keyring ? seal(this.#keyring, json, `session:${key}`) : json);
  }

  async delete(key: string): Promise<void> {
    await this.#kv.delete(key);
  }

  async *entries(): AsyncIterable<[string, StoredRecord]> {
    const keys: string[] = [];
    for await (const k of await this.#kv.keys()) keys.push(k);
    for (const k of keys) {
      const rec = await this.get(k);
      if (rec) yield [k, rec];
    }
  }

  watch(onChange: (key: string, rec: StoredRecord | undefined) => void): () => void {
    this.#watchers.add(onChange);
    return () => this.#watchers.delete(onChange);
  }

  async close(): Promise<void> {
    this.#watch?.stop();
    this.#watchers.clear();
  }
}
