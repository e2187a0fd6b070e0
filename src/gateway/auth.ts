import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CredentialsFile, type ScryptHash } from '../contracts/auth.ts';
import { ModelError } from '../contracts/errors.ts';
import { toIssues } from '../contracts/parse.ts';
import type { LoadedModel } from '../models/loader.ts';

/** What a reviewer may do in one model: their roles there, and whether they see sensitive fields. */
export interface ModelGrant {
  roles: string[];
  seeSensitive: boolean;
}

/** The authenticated reviewer of a session. Built on the server from the model config, never sent by the client. */
export interface Principal {
  id: string;
  name: string;
  /** By model name. A reviewer listed in several models has a grant in each. */
  grants: Record<string, ModelGrant>;
}

export const DEFAULT_SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

function scrypt(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

const scryptOpts = (h: { N: number; r: number; p: number }): ScryptOptions => ({ N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + 1024 * 1024 });

/** Hashes a password with a fresh 16-byte salt (for `reviewers.json`). */
export async function hashPassword(password: string, params: { N: number; r: number; p: number; keylen: number } = DEFAULT_SCRYPT): Promise<ScryptHash> {
  const salt = randomBytes(16);
  const key = await scrypt(password.normalize('NFC'), salt, params.keylen, scryptOpts(params));
  return { algorithm: 'scrypt', ...params, salt: salt.toString('base64'), hash: key.toString('base64') };
}

/** Verifies a password against its hash; the comparison takes the same time whatever the result. */
export async function verifyPassword(password: string, secret: ScryptHash): Promise<boolean> {
  const expected = Buffer.from(secret.hash, 'base64');
  const key = await scrypt(password.normalize('NFC'), Buffer.from(secret.salt, 'base64'), expected.length, scryptOpts(secret));
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
      if (!parsed.success) throw new ModelError(model.name, toIssues(parsed.error).map((i) => ({ file, ...i })));
      const problems: { file: string; path: string; message: string }[] = [];
      parsed.data.sensitiveRoles.forEach((r, i) => {
        if (!model.config.roles[r]) problems.push({ file, path: `sensitiveRoles.${i}`, message: `unknown role '${r}'` });
      });
      parsed.data.reviewers.forEach((cred, i) => {
        const reviewer = model.config.reviewers.find((r) => r.id === cred.id);
        if (!reviewer) {
          problems.push({ file, path: `reviewers.${i}.id`, message: `'${cred.id}' is not a reviewer of model.json` });
          return;
        }
        const grant: ModelGrant = { roles: [...reviewer.roles], seeSensitive: reviewer.roles.some((r) => parsed.data.sensitiveRoles.includes(r)) };
        const existing = dir.#accounts.get(cred.id);
        if (existing) {
          // The same person in two models: one account, one grant per model; the first secret counts.
          existing.principal.grants[model.name] = grant;
        } else {
          dir.#accounts.set(cred.id, { principal: { id: cred.id, name: reviewer.name, grants: { [model.name]: grant } }, secret: cred.secret, disabled: cred.disabled });
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
  /** Random 256-bit token; only its hash is kept as the map key. */
  principal: Principal;
  csrf: string;
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
}

export type SessionLookup = { ok: true; session: Session } | { ok: false; reason: 'missing' | 'expired' };

const tokenKey = (token: string) => createHash('sha256').update(token).digest('base64url');

/**
 * Server-side sessions, in memory: a restart signs everyone out. Sliding idle expiry with an
 * absolute cap; expired tokens are remembered for a while so the console can say "expired"
 * rather than "not signed in".
 */
export class Sessions {
  #live = new Map<string, Session & { key: string }>();
  #expired = new Map<string, number>();
  readonly idleMs: number;
  readonly absoluteMs: number;
  #now: () => number;
  #listeners = new Set<(principalId: string, key: string) => void>();

  constructor(opts: SessionOptions = {}) {
    this.idleMs = opts.idleMs ?? 30 * 60_000;
    this.absoluteMs = opts.absoluteMs ?? 12 * 3600_000;
    this.#now = opts.now ?? Date.now;
  }

  create(principal: Principal): { token: string; session: Session } {
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    const key = tokenKey(token);
    const session = { key, principal, csrf: randomBytes(24).toString('base64url'), createdAt: now, lastSeen: now, expiresAt: Math.min(now + this.idleMs, now + this.absoluteMs) };
    this.#live.set(key, session);
    this.#sweep();
    return { token, session };
  }

  /** Looks a token up; `touch` slides the idle expiry (any authenticated HTTP request does). */
  lookup(token: string | undefined, touch = true): SessionLookup {
    if (!token || token.length > 200) return { ok: false, reason: 'missing' };
    const key = tokenKey(token);
    const s = this.#live.get(key);
    const now = this.#now();
    if (!s) return { ok: false, reason: this.#expired.has(key) ? 'expired' : 'missing' };
    if (now >= s.expiresAt) {
      this.#expire(key);
      return { ok: false, reason: 'expired' };
    }
    if (touch) {
      s.lastSeen = now;
      s.expiresAt = Math.min(now + this.idleMs, s.createdAt + this.absoluteMs);
    }
    return { ok: true, session: s };
  }

  /** Whether the session behind `key` is still valid (for long-lived WebSockets; does not slide). */
  alive(session: Session): boolean {
    const s = session as Session & { key: string };
    if (!this.#live.has(s.key)) return false;
    if (this.#now() >= s.expiresAt) {
      this.#expire(s.key);
      return false;
    }
    return true;
  }

  destroy(session: Session): void {
    this.#expire((session as Session & { key: string }).key);
  }

  /** Called when a session ends (logout or expiry), so its sockets close. */
  onEnd(listener: (principalId: string, key: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  keyOf(session: Session): string {
    return (session as Session & { key: string }).key;
  }

  #expire(key: string): void {
    const s = this.#live.get(key);
    this.#live.delete(key);
    this.#expired.set(key, this.#now());
    if (s) for (const l of this.#listeners) l(s.principal.id, key);
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, s] of this.#live) if (now >= s.expiresAt) this.#expire(key);
    for (const [key, at] of this.#expired) if (now - at > 24 * 3600_000) this.#expired.delete(key);
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
    private readonly opts: { maxFailures: (key: string) => number; windowMs: number; lockMs: number; now: () => number } = {
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
