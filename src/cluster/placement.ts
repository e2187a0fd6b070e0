import { hash32 } from '../base/rng.ts';
import { ScaledClock, type ClockOrigin } from '../base/cluster-clock.ts';
import type { JetStreamStore } from './jetstream-store.ts';

/** Highest-random-weight placement: the member that takes a group over when its holder dies. */
export function rendezvous(group: string, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    const score = hash32(`${group}|${m}`);
    if (score > bestScore || (score === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

/** At most `n` holders at a time (takeovers); the others wait in order. */
export class Limiter {
  #free: number;
  #queue: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((r) => this.#queue.push(r));
  }
  release(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#free++;
  }
}

/** Reads (or fixes, if this is the first) the cluster's clock origin. */
export async function clusterClock(store: JetStreamStore, speed: number): Promise<ScaledClock> {
  const origin = await store.updateAux<ClockOrigin>('cluster', 'clock', (cur) => ({
    value: cur ?? { start: Date.now(), wallStart: Date.now(), speed },
    msgId: `clock:${cur ? 'same' : 'init'}:${Date.now()}`,
  }));
  return new ScaledClock(origin);
}
