import { EffectError } from '../contracts/errors.ts';
import type { Clock } from './clock.ts';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. @default 5 */
  failureThreshold?: number;
  /** How long the circuit stays open before one trial call is let through. @default 30 s */
  cooldownMs?: number;
}

/**
 * Closed → open after `failureThreshold` consecutive failures; while open, calls fail fast with a
 * transient error (the caller's retry backoff takes over); after `cooldownMs` one call is let through
 * (half-open): success closes the circuit, failure opens it again.
 */
export class CircuitBreaker {
  readonly name: string;
  #clock: Clock;
  #threshold: number;
  #cooldownMs: number;
  #failures = 0;
  #openedAt: number | null = null;
  #trial = false;

  constructor(name: string, clock: Clock, opts: CircuitBreakerOptions = {}) {
    this.name = name;
    this.#clock = clock;
    this.#threshold = opts.failureThreshold ?? 5;
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
  }

  get state(): 'closed' | 'open' | 'half-open' {
    if (this.#openedAt === null) return 'closed';
    return this.#clock.now() - this.#openedAt >= this.#cooldownMs ? 'half-open' : 'open';
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const state = this.state;
    if (state === 'open' || (state === 'half-open' && this.#trial)) {
      throw new EffectError(`circuit '${this.name}' is open after ${this.#failures} consecutive failures`, {
        transient: true,
        code: 'circuit.open',
      });
    }
    if (state === 'half-open') this.#trial = true;
    try {
      const v = await fn();
      this.#failures = 0;
      this.#openedAt = null;
      return v;
    } catch (err) {
      // Only failures of the dependency count; a permanent business refusal says nothing of its health.
      if (!(err instanceof EffectError) || err.transient) {
        this.#failures++;
        if (this.#failures >= this.#threshold || state === 'half-open') this.#openedAt = this.#clock.now();
      }
      throw err;
    } finally {
      if (state === 'half-open') this.#trial = false;
    }
  }
}
