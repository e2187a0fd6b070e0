import type { LedgerEntry, World } from '../models/define.ts';
import type { LevelStore } from './level-store.ts';

/**
 * The simulated outside world of the pilot models, kept in the data folder beside the runtime's own
 * state. Its ledger is the record of every effect that took place, by idempotency key: an effect
 * applied twice under one key shows as `applications: 2`, which is how duplicates are counted.
 */
export class LevelWorld implements World {
  #store: LevelStore;
  #locks = new Map<string, Promise<unknown>>();
  constructor(store: LevelStore) {
    this.#store = store;
  }

  apply(key: string, action: string, args: Record<string, unknown>, result: unknown): Promise<void> {
    // Serialise per key so two racing applications are both counted.
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const next = prev.then(async () => {
      const existing = await this.#store.getAux<LedgerEntry>('w', key);
      const entry: LedgerEntry = existing
        ? { ...existing, applications: existing.applications + 1 }
        : { key, action, args, result, at: Date.now(), applications: 1 };
      await this.#store.putAux('w', key, entry);
    });
    const settled = next.catch(() => undefined);
    this.#locks.set(key, settled);
    void settled.then(() => {
      if (this.#locks.get(key) === settled) this.#locks.delete(key);
    });
    return next;
  }

  lookup(key: string): Promise<LedgerEntry | undefined> {
    return this.#store.getAux<LedgerEntry>('w', key);
  }

  async *entries(): AsyncIterable<LedgerEntry> {
    yield* this.#store.auxValues<LedgerEntry>('w');
  }

  /** Counts over the whole ledger: effects applied, and extra applications beyond the first. */
  async totals(): Promise<{ effects: number; duplicates: number }> {
    let effects = 0;
    let duplicates = 0;
    for await (const e of this.entries()) {
      effects++;
      duplicates += e.applications - 1;
    }
    return { effects, duplicates };
  }
}
