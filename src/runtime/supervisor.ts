import type { Clock } from '../base/clock.ts';
import { drawFor } from '../base/rng.ts';
import type { ActorKind } from './store.ts';

/**
 * How the runtime reacts when an actor crashes (an action throws where the machine does not handle
 * it, or its snapshot does not restore). Restarts are one-for-one: only the crashed actor restarts,
 * from its last durable snapshot; the event that crashed it goes to the dead letters.
 *
 * - `restart`: restart at once.
 * - `backoff`: restart after an exponential delay with jitter (`minMs · 2^(n-1)`, capped at `maxMs`,
 *   ± `jitter`); meanwhile commands to the actor are refused with `actor.restarting` and a retry hint,
 *   and its timers wait.
 * - `escalate`: do not restart; escalate at the first crash.
 *
 * With `restart` and `backoff`, more than `maxRestarts` crashes within `windowMs` escalate: the actor
 * is suspended and an operator case asks a human to resume or stop it.
 */
export interface SupervisionStrategy {
  strategy: 'restart' | 'backoff' | 'escalate';
  /** @default 5 */
  maxRestarts: number;
  /** @default 60000 */
  windowMs: number;
  backoff: { minMs: number; maxMs: number; jitter: number };
}

export const DEFAULT_STRATEGY: SupervisionStrategy = {
  strategy: 'backoff',
  maxRestarts: 5,
  windowMs: 60_000,
  backoff: { minMs: 100, maxMs: 30_000, jitter: 0.2 },
};

export type CrashDecision =
  { action: 'restart'; delayMs: number; restarts: number } | { action: 'escalate'; restarts: number };

export class Supervisor {
  #clock: Clock;
  #strategies: Record<ActorKind, SupervisionStrategy>;
  #crashes = new Map<string, number[]>();
  #restartingUntil = new Map<string, number>();

  constructor(clock: Clock, overrides: Partial<Record<ActorKind, Partial<SupervisionStrategy>>> = {}) {
    this.#clock = clock;
    const of = (k: ActorKind): SupervisionStrategy => ({
      ...DEFAULT_STRATEGY,
      ...overrides[k],
      backoff: { ...DEFAULT_STRATEGY.backoff, ...overrides[k]?.backoff },
    });
    this.#strategies = { agent: of('agent'), case: of('case') };
  }

  strategyOf(kind: ActorKind): SupervisionStrategy {
    return this.#strategies[kind];
  }

  onCrash(id: string, kind: ActorKind): CrashDecision {
    const s = this.#strategies[kind];
    const now = this.#clock.now();
    const recent = (this.#crashes.get(id) ?? []).filter((t) => now - t < s.windowMs);
    recent.push(now);
    this.#crashes.set(id, recent);
    const restarts = recent.length;
    if (s.strategy === 'escalate' || restarts > s.maxRestarts) return { action: 'escalate', restarts };
    let delayMs = 0;
    if (s.strategy === 'backoff') {
      const base = Math.min(s.backoff.maxMs, s.backoff.minMs * 2 ** (restarts - 1));
      const jitter = (drawFor(id, restarts, 'jitter') * 2 - 1) * s.backoff.jitter;
      delayMs = Math.max(0, Math.round(base * (1 + jitter)));
    }
    this.#restartingUntil.set(id, now + delayMs);
    return { action: 'restart', delayMs, restarts };
  }

  restartingUntil(id: string): number | undefined {
    const until = this.#restartingUntil.get(id);
    if (until === undefined) return undefined;
    if (until <= this.#clock.now()) {
      this.#restartingUntil.delete(id);
      return undefined;
    }
    return until;
  }

  restarted(id: string): void {
    this.#restartingUntil.delete(id);
  }

  /** Forgets an actor's crash history (an operator resumed it). */
  reset(id: string): void {
    this.#crashes.delete(id);
    this.#restartingUntil.delete(id);
  }
}
