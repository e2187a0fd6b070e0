import { nuid } from '@nats-io/transport-node';
import type { LedgerEntry, World } from '../models/define.ts';
import type { JetStreamStore } from '../runtime/jetstream-store.ts';

/**
 * The pilots' simulated outside world on JetStream, shared by every node of a cluster: its ledger
 * records each effect under its idempotency key and counts applications, so an effect applied twice
 * (by two nodes, or after a takeover) shows as `applications: 2`. Each application is a
 * compare-and-set on the key; a retried publish of the same application lands once (msg id), a second
 * application by anyone else is counted.
 */
export class JetStreamWorld implements World {
  #store: JetStreamStore;
  constructor(store: JetStreamStore) {
    this.#store = store;
  }

  async apply(key: string, action: string, args: Record<string, unknown>, result: unknown): Promise<void> {
    const call = nuid.next();
    await this.#store.updateAux<LedgerEntry>('world', key, (existing) => {
      const value: LedgerEntry = existing ? { ...existing, applications: existing.applications + 1 } : { key, action, args, result, at: Date.now(), applications: 1 };
      return { value, msgId: `world:${key}:${value.applications}:${call}` };
    });
  }

  lookup(key: string): Promise<LedgerEntry | undefined> {
    return this.#store.getAux<LedgerEntry>('world', key);
  }

  entries(): AsyncIterable<LedgerEntry> {
    return this.#store.auxValues<LedgerEntry>('world');
  }

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
