import { HandoffError } from '../contracts/errors.ts';
import { HttpError } from '../httpkit/http.ts';

export interface ApiLimitsOptions {
  /** Requests per second each service account may make, sustained. @default `HANDOFF_API_RATE`, else 200 */
  perAccountPerSecond?: number;
  /** Requests an account may make at once above the sustained rate. @default `HANDOFF_API_BURST`, else 400 */
  perAccountBurst?: number;
  /** API requests this node handles at once (streams not counted). @default `HANDOFF_API_MAX_IN_FLIGHT`, else 512 */
  maxInFlight?: number;
}

const ENV = {
  perAccountPerSecond: 'HANDOFF_API_RATE',
  perAccountBurst: 'HANDOFF_API_BURST',
  maxInFlight: 'HANDOFF_API_MAX_IN_FLIGHT',
} as const;

/**
 * The limits set in the environment (`HANDOFF_API_RATE`, `HANDOFF_API_BURST`, `HANDOFF_API_MAX_IN_FLIGHT`):
 * each a positive number; anything else is refused with `config.invalid` naming the variable.
 */
export function apiLimitsFromEnv(env: Record<string, string | undefined> = process.env): ApiLimitsOptions {
  const out: ApiLimitsOptions = {};
  for (const [key, name] of Object.entries(ENV) as [keyof ApiLimitsOptions, string][]) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || (key !== 'perAccountPerSecond' && !Number.isInteger(n)))
      throw new HandoffError(
        'config.invalid',
        `${name} must be a positive ${key === 'perAccountPerSecond' ? 'number' : 'integer'} (got '${raw.slice(0, 40)}')`,
        { field: name },
      );
    out[key] = n;
  }
  return out;
}

/**
 * Load limits of `/api/v1`: a token bucket per service account and a bound on the requests in flight
 * on this node. Past either, the request is refused with 429, a `Retry-After` and a typed error
 * (`api.rate_limited`, `node.overloaded`) before any work is done; a client retries with the same
 * idempotency key and loses nothing.
 */
export class ApiLimits {
  readonly rate: number;
  readonly burst: number;
  /** May be changed while serving. */
  maxInFlight: number;
  #buckets = new Map<string, { tokens: number; at: number }>();
  #inFlight = 0;
  #now: () => number;

  constructor(given: ApiLimitsOptions = {}, now: () => number = () => performance.now()) {
    const opts = { ...apiLimitsFromEnv(), ...given };
    this.rate = opts.perAccountPerSecond ?? 200;
    this.burst = opts.perAccountBurst ?? 400;
    this.maxInFlight = opts.maxInFlight ?? 512;
    this.#now = now;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Takes one in-flight slot, or throws `node.overloaded` (429). Give it back with {@link release}. */
  enter(): void {
    if (this.#inFlight >= this.maxInFlight) {
      const retryAfterMs = 1000;
      throw new HttpError(
        429,
        'node.overloaded',
        `this node has ${this.#inFlight} API requests in flight (limit ${this.maxInFlight}); retry after ${retryAfterMs / 1000} s`,
        {
          inFlight: this.#inFlight,
          limit: this.maxInFlight,
          retryAfterMs,
        },
      );
    }
    this.#inFlight++;
  }

  release(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
  }

  /** Takes a token of the account's bucket, or throws `api.rate_limited` (429) saying when one is back. */
  take(accountId: string): void {
    const now = this.#now();
    let b = this.#buckets.get(accountId);
    if (!b) {
      if (this.#buckets.size >= 10_000) this.#buckets.clear();
      b = { tokens: this.burst, at: now };
      this.#buckets.set(accountId, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    const retryAfterMs = Math.ceil(((1 - b.tokens) / this.rate) * 1000);
    throw new HttpError(
      429,
      'api.rate_limited',
      `account ${accountId} is over its rate of ${this.rate} requests per second; retry after ${Math.ceil(retryAfterMs / 1000)} s`,
      {
        accountId,
        limit: this.rate,
        retryAfterMs,
      },
    );
  }
}

/** The Retry-After header (whole seconds, at least 1) of a 429's details. */
export function retryAfterHeader(details: Record<string, unknown>): Record<string, string> {
  const ms = typeof details.retryAfterMs === 'number' ? details.retryAfterMs : 1000;
  return { 'Retry-After': String(Math.max(1, Math.ceil(ms / 1000))) };
}
