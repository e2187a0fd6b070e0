import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * Sign-in throttling, the client address behind trusted proxies, and the rate limit of refusal
 * audit entries (docs/console.md#security-model).
 *
 * Guessing is limited **per account**: after `accountFailures` failed sign-ins an account is locked
 * for `accountLockMs`, and every further failure doubles the lock (30 s, 1 min, 2 min, …, capped),
 * until a successful sign-in or `windowMs` without failures. A client address is limited only
 * against floods (`addressFailures` failures across any accounts within `windowMs`, a much higher
 * threshold), so one person, or a proxy every reviewer shares, cannot lock everyone out by
 * failing on one account.
 */
export interface SignInThrottleOptions {
  /** Failed sign-ins of one account before it is locked. @default 5 */
  accountFailures?: number;
  /** The first lock of an account; each further failure doubles it. @default 30 s */
  accountLockMs?: number;
  /** Longest lock of an account. @default 15 min */
  accountMaxLockMs?: number;
  /** Failed sign-ins from one client address (any accounts) before the address is throttled. @default 100 */
  addressFailures?: number;
  /** How long a flooding address is throttled; doubles with each flood. @default 60 s */
  addressLockMs?: number;
  /** Failures older than this (after the last lock ends) are forgotten. @default 15 min */
  windowMs?: number;
  now?: () => number;
}

interface AccountState {
  failures: number;
  last: number;
  lockedUntil: number;
}

interface AddressState {
  failures: number;
  first: number;
  lockedUntil: number;
  locks: number;
}

export type ThrottleVerdict = { waitMs: number; scope: 'account' | 'address' } | null;

export class SignInThrottle {
  readonly opts: Required<Omit<SignInThrottleOptions, 'now'>>;
  #now: () => number;
  #accounts = new Map<string, AccountState>();
  #addresses = new Map<string, AddressState>();

  constructor(opts: SignInThrottleOptions = {}) {
    this.opts = {
      accountFailures: opts.accountFailures ?? 5,
      accountLockMs: opts.accountLockMs ?? 30_000,
      accountMaxLockMs: opts.accountMaxLockMs ?? 15 * 60_000,
      addressFailures: opts.addressFailures ?? 100,
      addressLockMs: opts.addressLockMs ?? 60_000,
      windowMs: opts.windowMs ?? 15 * 60_000,
    };
    this.#now = opts.now ?? Date.now;
  }

  #account(id: string, now: number): AccountState | undefined {
    const a = this.#accounts.get(id);
    if (a && a.lockedUntil <= now && now - Math.max(a.last, a.lockedUntil) > this.opts.windowMs) {
      this.#accounts.delete(id);
      return undefined;
    }
    return a;
  }

  #address(ip: string, now: number): AddressState | undefined {
    const a = this.#addresses.get(ip);
    if (a && a.lockedUntil <= now && now - a.first > this.opts.windowMs) {
      // The flood count starts again; the number of floods (the lock's doubling) is kept for a day.
      if (now - a.first > 24 * 3600_000) this.#addresses.delete(ip);
      else Object.assign(a, { failures: 0, first: now });
    }
    return this.#addresses.get(ip);
  }

  /** Whether a sign-in for `account` from `address` must wait, and which limit says so. */
  check(account: string, address: string): ThrottleVerdict {
    const now = this.#now();
    const acc = this.#account(account, now);
    const addr = this.#address(address, now);
    const accWait = acc && acc.lockedUntil > now ? acc.lockedUntil - now : 0;
    const addrWait = addr && addr.lockedUntil > now ? addr.lockedUntil - now : 0;
    if (accWait === 0 && addrWait === 0) return null;
    return accWait >= addrWait ? { waitMs: accWait, scope: 'account' } : { waitMs: addrWait, scope: 'address' };
  }

  /** Failures so far of an account (for the audit). */
  failures(account: string): number {
    return this.#account(account, this.#now())?.failures ?? 0;
  }

  /** Records a failed sign-in; says what it locked, and for how long. */
  failed(account: string, address: string): { failures: number; accountLockMs: number; addressLockMs: number } {
    const now = this.#now();
    let acc = this.#account(account, now);
    if (!acc) this.#accounts.set(account, (acc = { failures: 0, last: now, lockedUntil: 0 }));
    acc.failures++;
    acc.last = now;
    let accountLockMs = 0;
    const over = acc.failures - this.opts.accountFailures;
    if (over >= 0) {
      accountLockMs = Math.min(this.opts.accountMaxLockMs, this.opts.accountLockMs * 2 ** Math.min(over, 30));
      acc.lockedUntil = now + accountLockMs;
    }
    let addr = this.#address(address, now);
    if (!addr) this.#addresses.set(address, (addr = { failures: 0, first: now, lockedUntil: 0, locks: 0 }));
    addr.failures++;
    let addressLockMs = 0;
    if (addr.failures >= this.opts.addressFailures) {
      addr.locks++;
      addressLockMs = this.opts.addressLockMs * 2 ** Math.min(addr.locks - 1, 6);
      addr.lockedUntil = now + addressLockMs;
      addr.failures = 0;
      addr.first = now;
    }
    this.#bound(this.#accounts);
    this.#bound(this.#addresses);
    return { failures: acc.failures, accountLockMs, addressLockMs };
  }

  /** A successful sign-in clears the account's failures (not the address's). */
  succeeded(account: string): void {
    this.#accounts.delete(account);
  }

  /** Memory stays bounded whatever an attacker sends: the oldest entries go first. */
  #bound(m: Map<string, unknown>): void {
    if (m.size <= 50_000) return;
    let drop = m.size - 45_000;
    for (const k of m.keys()) {
      if (drop-- <= 0) break;
      m.delete(k);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Client address
// ------------------------------------------------------------------------------------------------

/** `::ffff:10.0.0.1` → `10.0.0.1`, so IPv4 rules match IPv4 clients on a dual-stack socket. */
export function normalizeIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

/**
 * The proxies whose `X-Forwarded-For` the gateway believes: addresses or CIDR ranges, IPv4 or IPv6
 * (`127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`). Empty by default: the header is then ignored.
 */
export class TrustedProxies {
  readonly entries: readonly string[];
  #list = new BlockList();

  constructor(entries: readonly string[] = []) {
    this.entries = entries.map((e) => e.trim()).filter(Boolean);
    for (const e of this.entries) {
      const [addr, bits] = e.split('/') as [string, string | undefined];
      const ip = normalizeIp(addr);
      const family = isIP(ip);
      if (!family) throw new Error(`trusted proxy '${e}' is not an IP address or CIDR range`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.#list.addAddress(ip, type);
      else {
        const prefix = Number(bits);
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128))
          throw new Error(`trusted proxy '${e}' has a bad prefix length`);
        this.#list.addSubnet(ip, prefix, type);
      }
    }
  }

  /** From a comma-separated list (`HANDOFF_TRUSTED_PROXIES`). */
  static parse(text: string | undefined): TrustedProxies {
    return new TrustedProxies((text ?? '').split(','));
  }

  has(ip: string): boolean {
    if (this.entries.length === 0) return false;
    const n = normalizeIp(ip);
    const family = isIP(n);
    return family !== 0 && this.#list.check(n, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The client's address: the direct peer, unless the peer is a trusted proxy; then the rightmost
   * address of `X-Forwarded-For` that is not itself a trusted proxy (the leftmost entries are
   * whatever the client wrote, so they are never believed past an untrusted hop).
   */
  clientOf(req: IncomingMessage): string {
    const peer = normalizeIp(req.socket.remoteAddress ?? 'unknown');
    if (!this.has(peer)) return peer;
    const raw = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(raw) ? raw.join(',') : (raw ?? ''))
      .split(',')
      .map((s) => normalizeIp(s.trim()))
      .filter(Boolean);
    let client = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (!isIP(hop)) break;
      client = hop;
      if (!this.has(hop)) break;
    }
    return client;
  }
}

// ------------------------------------------------------------------------------------------------
// Refusal audit rate limit
// ------------------------------------------------------------------------------------------------

/**
 * Refusals (401, 403, refused WebSocket upgrades, throttled sign-ins) are audited, but an
 * anonymous client must not be able to flood the audit log: at most `perKey` entries a minute per
 * kind and client address, `total` a minute in all. What is left out is counted and reported in the
 * next entry written for that key (`data.suppressed`).
 */
export class RefusalLimiter {
  #keys = new Map<string, { minute: number; count: number; suppressed: number }>();
  #total = { minute: 0, count: 0 };
  constructor(
    private readonly perKey = 20,
    private readonly total = 600,
    private readonly now: () => number = Date.now,
  ) {}

  /** null: leave this one out; otherwise how many were left out before it (0 or more). */
  admit(key: string): number | null {
    const minute = Math.floor(this.now() / 60_000);
    if (this.#total.minute !== minute) this.#total = { minute, count: 0 };
    let k = this.#keys.get(key);
    if (!k || k.minute !== minute) {
      k = { minute, count: 0, suppressed: k?.suppressed ?? 0 };
      this.#keys.set(key, k);
      if (this.#keys.size > 20_000) this.#keys.clear();
    }
    if (k.count >= this.perKey || this.#total.count >= this.total) {
      k.suppressed++;
      return null;
    }
    k.count++;
    this.#total.count++;
    const suppressed = k.suppressed;
    k.suppressed = 0;
    return suppressed;
  }
}
