import type { Clock } from './clock.ts';
import { MinHeap } from './heap.ts';

export interface TimerFiring {
  actorId: string;
  name: string;
  dueAt: number;
}

/**
 * Durable timers, run in memory: deadlines come from actors' persisted contexts, so after a restart
 * they are armed again for exactly the time they had left (or fire at once if they passed while the
 * node was down). One clock timeout is armed for the earliest deadline. Stale firings (a timer that
 * was re-armed or cleared) are harmless: the machine's guards compare the deadline it carries.
 */
export class TimerService {
  #heap = new MinHeap<TimerFiring>();
  #armedFor: number | undefined;
  #handle: unknown;
  #clock: Clock;
  #fire: (t: TimerFiring) => void;
  #stopped = false;

  constructor(clock: Clock, fire: (t: TimerFiring) => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  get size(): number {
    return this.#heap.size;
  }

  schedule(t: TimerFiring): void {
    if (this.#stopped) return;
    this.#heap.push(t.dueAt, t);
    this.#rearm();
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
      this.#fire(this.#heap.pop()!.value);
    }
    this.#rearm();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#handle !== undefined) this.#clock.clearTimeout(this.#handle);
  }
}
