import type { Clock } from '../runtime/clock.ts';

/** Where a cluster's time starts and how fast it runs; shared by every node and driver of the cluster. */
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
