import { MinHeap } from './heap.ts';

/** Time source injected into the runtime; machines never read the wall clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Where a clock's time starts and how fast it runs: shared by every node and driver of a cluster, kept in an embedded data folder. */
export interface ClockOrigin {
  /** Clock time (epoch ms) at `wallStart`. */
  start: number;
  /** Wall time (epoch ms) at which the clock read `start`. */
  wallStart: number;
  /** Clock ms per wall ms: 1 is real time; the demo runs SLA hours in seconds with 3600. */
  speed: number;
}

/**
 * A clock shared across processes: `start + (Date.now() - wallStart) * speed`. With `speed` 1 it is
 * the wall clock (shifted); with a larger speed, simulated deadlines (SLA hours, lease minutes) pass
 * in seconds on every node alike, so a cluster demo runs like the embedded one without a central
 * clock. Timers fire after `ms / speed` wall ms.
 */
export class ScaledClock implements Clock {
  readonly origin: ClockOrigin;
  constructor(origin: ClockOrigin) {
    if (!(origin.speed > 0)) throw new Error('clock speed must be positive');
    this.origin = origin;
  }
  now(): number {
    return Math.round(this.origin.start + (Date.now() - this.origin.wallStart) * this.origin.speed);
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const t = setTimeout(fn, Math.max(0, ms / this.origin.speed));
    t.unref?.();
    return t;
  }
  clearTimeout(handle: unknown): void {
    clearTimeout(handle as NodeJS.Timeout);
  }
}

/**
 * A clock that only moves when told to. `advanceTo` fires every timer due on the way, in due order,
 * so days of SLA time pass in milliseconds and tests are deterministic.
 */
export class SimulatedClock implements Clock {
  #now: number;
  #seq = 0;
  #heap = new MinHeap<number>();
  #fns = new Map<number, () => void>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#fns.set(id, fn);
    this.#heap.push(this.#now + Math.max(0, ms), id);
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#fns.delete(handle as number);
  }
  /** Earliest pending timer, if any. */
  nextDue(): number | undefined {
    this.#dropCleared();
    return this.#heap.peekKey();
  }
  /** Moves time forward to `at`, firing due timers in order (ties in creation order). */
  advanceTo(at: number): void {
    for (;;) {
      this.#dropCleared();
      const due = this.#heap.peekKey();
      if (due === undefined || due > at) break;
      const { value: id } = this.#heap.pop()!;
      const fn = this.#fns.get(id)!;
      this.#fns.delete(id);
      this.#now = Math.max(this.#now, due);
      fn();
    }
    this.#now = Math.max(this.#now, at);
  }
  #dropCleared(): void {
    for (let top = this.#heap.peek(); top && !this.#fns.has(top.value); top = this.#heap.peek()) this.#heap.pop();
  }
  /**
   * Fires the earliest pending timer only (ties in creation order); false when none is left. A
   * driver that waits for the system to settle after each one gets the same run for the same seed,
   * which `advanceTo` (firing every due timer at once, their flows racing on I/O) does not give.
   */
  fireNext(): boolean {
    this.#dropCleared();
    const top = this.#heap.pop();
    if (!top) return false;
    const fn = this.#fns.get(top.value)!;
    this.#fns.delete(top.value);
    this.#now = Math.max(this.#now, top.key);
    fn();
    return true;
  }

  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }
}
