import type { Clock } from '../base/clock.ts';
import { MinHeap } from '../base/heap.ts';
import type { TimerEntry } from './store.ts';

export type TimerFiring = TimerEntry;

export interface TimerServiceOptions {
  /** Deadlines within this horizon are held in memory. */
  horizonMs: number;
  /** Reads the store's timer index: every timer due at or before `until`, earliest first. */
  load: (until: number) => AsyncIterable<TimerEntry>;
  /** The earliest indexed deadline after `after`, however far. */
  next: (after: number) => Promise<number | undefined>;
  /**
   * Brackets a refill: it reads the store asynchronously, and until it has scheduled what it read,
   * the runtime is not idle (a driver of a simulated clock must not conclude nothing is due).
   */
  work?: { begin(): void; end(): void };
}

/**
 * Durable timers. Deadlines live in actors' persisted contexts and in the store's timer index; only
 * those due within the horizon are held in memory (one heap, one clock timeout for the earliest), so
 * a node with a million open cases keeps a handful of timers resident. When time reaches the horizon
 * the next slice is loaded from the index, which also wakes passivated actors. After a restart every
 * deadline is armed again for exactly the time it had left (or fires at once if it passed).
 * Stale firings (a timer re-armed or cleared since) are harmless: the machine's guards compare the
 * deadline each firing carries.
 */
export class TimerService {
  #heap = new MinHeap<TimerFiring>();
  #queued = new Set<string>();
  #armedFor: number | undefined;
  #handle: unknown;
  #clock: Clock;
  #fire: (t: TimerFiring) => void;
  #opts: TimerServiceOptions;
  #horizonEnd = -Infinity;
  #refillAt: number | undefined;
  #refillHandle: unknown;
  #stopped = false;

  constructor(clock: Clock, fire: (t: TimerFiring) => void, opts: TimerServiceOptions) {
    this.#clock = clock;
    this.#fire = fire;
    this.#opts = opts;
  }

  get size(): number {
    return this.#heap.size;
  }

  /** Loads the first slice from the store's index. */
  async start(): Promise<void> {
    await this.#refill();
  }

  /** A deadline that became durable; `fireAt` delays a firing (e.g. while its actor restarts). */
  schedule(t: TimerFiring, fireAt = t.dueAt): void {
    if (this.#stopped) return;
    if (fireAt > this.#horizonEnd) {
      this.#armRefill(fireAt);
      return;
    }
    const key = `${t.actorId}\u0000${t.name}\u0000${t.dueAt}`;
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#heap.push(fireAt, t);
    this.#rearm();
  }

  #armRefill(at: number): void {
    if (this.#refillAt !== undefined && this.#refillAt <= at) return;
    if (this.#refillHandle !== undefined) this.#clock.clearTimeout(this.#refillHandle);
    this.#refillAt = at;
    this.#refillHandle = this.#clock.setTimeout(() => {
      this.#refillAt = undefined;
      this.#refillHandle = undefined;
      this.#refill().catch(() => this.#armRefill(this.#clock.now() + 1000));
    }, at - this.#clock.now());
  }

  async #refill(): Promise<void> {
    if (this.#stopped) return;
    this.#opts.work?.begin();
    try {
      this.#horizonEnd = this.#clock.now() + this.#opts.horizonMs;
      const until = this.#horizonEnd;
      for await (const t of this.#opts.load(until)) this.schedule(t);
      // Come back when time reaches the first deadline beyond this slice, however far it is.
      const beyond = await this.#opts.next(until);
      if (beyond !== undefined) this.#armRefill(beyond);
    } finally {
      this.#opts.work?.end();
    }
  }

  #rearm(): void {
    const next = this.#heap.peekKey();
    if (next === undefined || (this.#armedFor !== undefined && this.#armedFor <= next)) return;
    if (this.#handle !== undefined) this.#clock.clearTimeout(this.#handle);
    this.#armedFor = next;
    this.#handle = this.#clock.setTimeout(() => this.#tick(), next - this.#clock.now());
  }

  #tick(): void {
    this.#handle = undefined;
    this.#armedFor = undefined;
    const now = this.#clock.now();
    for (let k = this.#heap.peekKey(); k !== undefined && k <= now && !this.#stopped; k = this.#heap.peekKey()) {
      const t = this.#heap.pop()!.value;
      this.#queued.delete(`${t.actorId}\u0000${t.name}\u0000${t.dueAt}`);
      this.#fire(t);
    }
    this.#rearm();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#handle !== undefined) this.#clock.clearTimeout(this.#handle);
    if (this.#refillHandle !== undefined) this.#clock.clearTimeout(this.#refillHandle);
  }
}
