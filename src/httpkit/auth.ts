import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CredentialsFile, type ModelGrant, type Principal, type ScryptHash } from '../contracts/auth.ts';
import { ModelError } from '../contracts/errors.ts';
import { toIssues } from '../contracts/parse.ts';
import type { LoadedModel } from '../models/loader.ts';
import { MemorySessionStore, type SessionRecord, type SessionStore, type StoredRecord } from './session-store.ts';

export type { ModelGrant, Principal } from '../contracts/auth.ts';

export const DEFAULT_SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

const scryptOpts = (h: { N: number; r: number; p: number }): ScryptOptions => ({
  N: h.N,
  r: h.r,
  p: h.p,
  maxmem: 256 * h.N * h.r + 1024 * 1024,
});

/** Hashes a password with a fresh 16-byte salt (for `reviewers.json`). */
export async function hashPassword(
  password: string,
  params: { N: number; r: number; p: number; keylen: number } = DEFAULT_SCRYPT,
): Promise<ScryptHash> {
  const salt = randomBytes(16);
  const key = await scrypt(password.normalize('NFC'), salt, params.keylen, scryptOpts(params));
  return { algorithm: 'scrypt', ...params, salt: salt.toString('base64'), hash: key.toString('base64') };
}

/** Verifies a password against its hash; the comparison takes the same time whatever the result. */
export async function verifyPassword(password: string, secret: ScryptHash): Promise<boolean> {
  const expected = Buffer.from(secret.hash, 'base64');
  const key = await scrypt(
    password.normalize('NFC'),
    Buffer.from(secret.salt, 'base64'),
    expected.length,
    scryptOpts(secret),
  );
  return key.length === expected.length && timingSafeEqual(key, expected);
}

interface Account {
  principal: Principal;
  secret: ScryptHash;
  disabled: boolean;
}

/**
 * Reviewer accounts of every loaded model: identity and roles from `model.json` (`reviewers`),
 * secrets from the optional `reviewers.json` beside it. A reviewer without a credential cannot log in.
 */
export class Directory {
  #accounts = new Map<string, Account>();
  /** Verified against when an id is unknown, so the answer takes as long as for a known id. */
  #decoy: ScryptHash;

  private constructor(decoy: ScryptHash) {
    this.#decoy = decoy;
  }

  static async load(models: readonly LoadedModel[]): Promise<Directory> {
    const dir = new Directory(await hashPassword(randomBytes(12).toString('hex')));
    for (const model of models) {
      const file = join(model.dir, 'reviewers.json');
      const present = await stat(file).then(
        () => true,
        () => false,
      );
      if (!present) continue;
      let raw: unknown;
      try {
        raw = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        throw new ModelError(model.name, [{ file, path: '', message: `not valid JSON: ${(err as Error).message}` }]);
      }
      const parsed = CredentialsFile.safeParse(raw);
      if (!parsed.success)
        throw new ModelError(
          model.name,
          toIssues(parsed.error).map((i) => ({ file, ...i })),
        );
      const problems: { file: string; path: string; message: string }[] = [];
      parsed.data.sensitiveRoles.forEach((r, i) => {
        if (!model.config.roles[r])
          problems.push({ file, path: `sensitiveRoles.${i}`, message: `unknown role '${r}'` });
      });
      parsed.data.reviewers.forEach((cred, i) => {
        const reviewer = model.config.reviewers.find((r) => r.id === cred.id);
        if (!reviewer) {
          problems.push({ file, path: `reviewers.${i}.id`, message: `'${cred.id}' is not a reviewer of model.json` });
          return;
        }
        const grant: ModelGrant = {
          roles: [...reviewer.roles],
          seeSensitive: reviewer.roles.some((r) => parsed.data.sensitiveRoles.includes(r)),
        };
        const existing = dir.#accounts.get(cred.id);
        if (existing) {
          // The same person in two models: one account, one grant per model; the first secret counts.
          existing.principal.grants[model.name] = grant;
        } else {
          dir.#accounts.set(cred.id, {
            principal: { id: cred.id, name: reviewer.name, grants: { [model.name]: grant } },
            secret: cred.secret,
            disabled: cred.disabled,
          });
        }
      });
      if (problems.length) throw new ModelError(model.name, problems);
    }
    return dir;
  }

  get size(): number {
    return this.#accounts.size;
  }

  /** The principal for a correct id and password, or null; takes about as long either way. */
  async authenticate(id: string, password: string): Promise<Principal | null> {
    const account = this.#accounts.get(id);
    const ok = await verifyPassword(password, account?.secret ?? this.#decoy);
    if (!account || !ok || account.disabled) return null;
    return structuredClone(account.principal);
  }
}

export interface Session {
  /** SHA-256 of the token: the key the session is stored under (the token itself is never kept). */
  key: string;
  principal: Principal;
  /** Derived from the token (never stored): every node computes the same one. */
  csrf: string;
  via: 'password' | 'oidc';
  createdAt: number;
  lastSeen: number;
  expiresAt: number;
}

export interface SessionOptions {
  /** A session unused this long expires (sliding). @default 30 min */
  idleMs?: number;
  /** A session expires this long after login, however active. @default 12 h */
  absoluteMs?: number;
  now?: () => number;
  /** Where sessions live. @default in memory (a restart signs everyone out) */
  store?: SessionStore;
  /** How often expired sessions and stale sign-ins are removed from the store. @default 5 min */
  sweepMs?: number;
}

export type SessionLookup = { ok: true; session: Session } | { ok: false; reason: 'missing' | 'expired' };

/** The store key of a token (or of any other bearer secret, such as a sign-in's transaction cookie). */
export const tokenKey = (token: string) => createHash('sha256').update(token).digest('base64url');
const csrfOf = (token: string) => createHash('sha256').update(`handoff-csrf\0${token}`).digest('base64url');
/** Ended sessions are kept this long so the console can say "expired" rather than "not signed in". */
const TOMBSTONE_MS = 24 * 3600_000;

/**
 * Server-side sessions on a {@link SessionStore}: sliding idle expiry with an absolute cap, a new
 * token on every sign-in, and an end (sign-out, expiry) that holds on every process sharing the
 * store. Every HTTP request reads the store, so a sign-out on one node is refused on the next request
 * to any other; a store that can `watch` also tells this process at once, which closes its sockets.
 * Use is recorded at most every `touchMs` (a tenth of the idle time, at most a minute), so a busy
 * reviewer does not write on every request; the idle expiry counts from the last recorded use.
 */
export class Sessions {
  readonly idleMs: number;
  readonly absoluteMs: number;
  readonly touchMs: number;
  readonly store: SessionStore;
  #now: () => number;
  #listeners = new Set<(principalId: string, key: string) => void>();
  /** Sessions this process has seen recently (for its sockets' `alive` checks), by key. */
  #known = new Map<string, Session>();
  /** Keys this process knows ended, with when. */
  #ended = new Map<string, number>();
  #unwatch: (() => void) | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(opts: SessionOptions = {}) {
    this.idleMs = opts.idleMs ?? 30 * 60_000;
    this.absoluteMs = opts.absoluteMs ?? 12 * 3600_000;
    this.touchMs = Math.min(60_000, Math.floor(this.idleMs / 10));
    this.#now = opts.now ?? Date.now;
    this.store = opts.store ?? new MemorySessionStore();
    this.#unwatch = this.store.watch?.((key, rec) => this.#changed(key, rec));
    if (opts.sweepMs !== 0) {
      this.#sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), opts.sweepMs ?? 5 * 60_000);
      this.#sweepTimer.unref();
    }
  }

  #expiry(r: { createdAt: number; lastSeen: number }): number {
    return Math.min(r.lastSeen + this.idleMs, r.createdAt + this.absoluteMs);
  }

  #session(key: string, token: string, r: SessionRecord): Session {
    const s: Session = {
      key,
      principal: r.principal,
      csrf: csrfOf(token),
      via: r.via,
      createdAt: r.createdAt,
      lastSeen: r.lastSeen,
      expiresAt: this.#expiry(r),
    };
    this.#known.set(key, s);
    return s;
  }

  /** A new session with a fresh token (rotation: a sign-in never reuses a token). */
  async create(
    principal: Principal,
    via: 'password' | 'oidc' = 'password',
  ): Promise<{ token: string; session: Session }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    const key = tokenKey(token);
    const rec: SessionRecord = {
      kind: 'session',
      principal,
      via,
      createdAt: now,
      lastSeen: now,
      expiresAt: Math.min(now + this.idleMs, now + this.absoluteMs),
    };
    await this.store.put(key, rec);
    return { token, session: this.#session(key, token, rec) };
  }

  /** Looks a token up; `touch` slides the idle expiry (any authenticated HTTP request does). */
  async lookup(token: string | undefined, touch = true): Promise<SessionLookup> {
    if (!token || token.length > 200) return { ok: false, reason: 'missing' };
    const key = tokenKey(token);
    const rec = await this.store.get(key);
    if (!rec || rec.kind !== 'session') {
      this.#known.delete(key);
      return { ok: false, reason: this.#ended.has(key) ? 'expired' : 'missing' };
    }
    if (rec.endedAt !== undefined) {
      this.#markEnded(key, rec.principal.id, rec.endedAt);
      return { ok: false, reason: 'expired' };
    }
    const now = this.#now();
    if (now >= this.#expiry(rec)) {
      await this.#end(key, rec, 'expired');
      return { ok: false, reason: 'expired' };
    }
    if (touch && now - rec.lastSeen >= this.touchMs) {
      rec.lastSeen = now;
      rec.expiresAt = this.#expiry(rec);
      await this.store.put(key, rec);
    }
    return { ok: true, session: this.#session(key, token, rec) };
  }

  /** Whether a session is still valid as far as this process knows (for long-lived WebSockets; does not slide or read the store). */
  alive(session: Session): boolean {
    if (this.#ended.has(session.key)) return false;
    const known = this.#known.get(session.key) ?? session;
    if (this.#now() >= known.expiresAt) {
      void this.#end(session.key, undefined, 'expired').catch(() => undefined);
      return false;
    }
    return true;
  }

  /** Ends a session everywhere: sign-out, or a new sign-in of the same browser (`replaced`). */
  async destroy(session: Session, reason: 'signout' | 'replaced' = 'signout'): Promise<void> {
    await this.#end(session.key, undefined, reason);
  }

  /** Called when a session ends (sign-out or expiry, here or on another node sharing the store), so its sockets close. */
  onEnd(listener: (principalId: string, key: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  keyOf(session: Session): string {
    return session.key;
  }

  /** Keeps an ended session as a tombstone (so other nodes refuse it too), and tells the listeners. */
  async #end(key: string, rec: SessionRecord | undefined, reason: 'signout' | 'replaced' | 'expired'): Promise<void> {
    const now = this.#now();
    const known = this.#known.get(key);
    const current = rec ?? (await this.store.get(key));
    this.#markEnded(key, current?.kind === 'session' ? current.principal.id : known?.principal.id, now);
    if (current?.kind === 'session' && current.endedAt === undefined)
      await this.store.put(key, { ...current, endedAt: now, endReason: reason });
  }

  #markEnded(key: string, principalId: string | undefined, at: number): void {
    this.#known.delete(key);
    if (this.#ended.has(key)) return;
    this.#ended.set(key, at);
    if (principalId === undefined) return;
    for (const l of this.#listeners) l(principalId, key);
  }

  /** A change from another process sharing the store. */
  #changed(key: string, rec: StoredRecord | undefined): void {
    if (rec === undefined) {
      const known = this.#known.get(key);
      if (known) this.#markEnded(key, known.principal.id, this.#now());
      return;
    }
    if (rec.kind !== 'session') return;
    if (rec.endedAt !== undefined) return this.#markEnded(key, rec.principal.id, rec.endedAt);
    const known = this.#known.get(key);
    if (known && rec.lastSeen > known.lastSeen) {
      known.lastSeen = rec.lastSeen;
      known.expiresAt = this.#expiry(rec);
    }
  }

  /** Ends expired sessions and removes tombstones older than a day and stale sign-ins. */
  async sweep(): Promise<void> {
    const now = this.#now();
    for await (const [key, rec] of this.store.entries()) {
      if (rec.kind === 'oidc-pending') {
        if (now >= rec.expiresAt) await this.store.delete(key);
      } else if (rec.endedAt !== undefined) {
        if (now - rec.endedAt > TOMBSTONE_MS) await this.store.delete(key);
      } else if (now >= this.#expiry(rec)) await this.#end(key, rec, 'expired');
    }
    for (const [key, at] of this.#ended) if (now - at > TOMBSTONE_MS) this.#ended.delete(key);
    for (const [key, s] of this.#known) if (now >= s.expiresAt) this.#known.delete(key);
  }

  close(): void {
    this.#unwatch?.();
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
  }
}

/**
 * Slows password guessing: after `maxFailures` failed logins for a key (a reviewer id, or a client
 * address, which gets a larger allowance since an office shares one) within the window, further
 * attempts are refused for a lock-out that doubles each time.
 */
export class LoginThrottle {
  #failures = new Map<string, { count: number; first: number; lockedUntil: number; locks: number }>();
  constructor(
    private readonly opts: {
      maxFailures: (key: string) => number;
      windowMs: number;
      lockMs: number;
      now: () => number;
    } = {
      maxFailures: (key) => (key.startsWith('ip:') ? 25 : 5),
      windowMs: 15 * 60_000,
      lockMs: 30_000,
      now: Date.now,
    },
  ) {}

  /** Milliseconds to wait before another attempt is allowed for any of the keys, or 0. */
  retryAfter(keys: string[]): number {
    const now = this.opts.now();
    let wait = 0;
    for (const k of keys) {
      const f = this.#failures.get(k);
      if (f && f.lockedUntil > now) wait = Math.max(wait, f.lockedUntil - now);
    }
    return wait;
  }

  /** Records a failure; returns the keys that just got locked out. */
  failed(keys: string[]): string[] {
    const now = this.opts.now();
    const locked: string[] = [];
    for (const k of keys) {
      let f = this.#failures.get(k);
      if (!f || now - f.first > this.opts.windowMs) f = { count: 0, first: now, lockedUntil: 0, locks: f?.locks ?? 0 };
      f.count++;
      if (f.count >= this.opts.maxFailures(k)) {
        f.locks++;
        f.lockedUntil = now + this.opts.lockMs * 2 ** Math.min(f.locks - 1, 6);
        f.count = 0;
        f.first = now;
        locked.push(k);
      }
      this.#failures.set(k, f);
    }
    if (this.#failures.size > 50_000) this.#failures.clear();
    return locked;
  }

  succeeded(keys: string[]): void {
    for (const k of keys) this.#failures.delete(k);
  }
}
