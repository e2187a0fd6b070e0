import { nuid } from '@nats-io/transport-node';
import type { EffectFence, LedgerEntry, World } from '../models/define.ts';
import type { JetStreamStore } from './jetstream-store.ts';
import type { AuxVersion } from './index-space.ts';
import { LeaseLostError } from '../contracts/cluster-errors.ts';
import { groupOf } from './keys.ts';

const SEEN = new Error('already applied');
/** Claims remembered for their application (see {@link JetStreamWorld.apply}). */
const MAX_REMEMBERED_CLAIMS = 10_000;

/** A ledger entry as stored: an applied effect, or a claim on its key (`applications: 0`) by a fencing token. */
export interface StoredLedgerEntry extends LedgerEntry {
  /** Fencing token of the last writer (claim or application). */
  epoch?: number;
}

/**
 * The pilots' simulated outside world on JetStream, shared by every node of a cluster: its ledger
 * records each effect under its idempotency key and counts applications, so an effect applied twice
 * (by two nodes, or after a takeover) shows as `applications: 2`. Each application is a
 * compare-and-set on the key; a retried publish of the same application lands once (msg id), a second
 * application by anyone else is counted.
 *
 * **Fencing at the world.** Effects run under the episode's fencing token (`EffectFence`, the lease
 * revision, which grows with each takeover). The world behaves as a fencing-aware service: the
 * lookup before an effect *claims* the key for its token (compare-and-set), and an application, or a
 * claim, carrying a smaller token than the key's is refused (`lease.lost`), not applied (an effect
 * under its episode's first token only reads the key: there is no smaller token to fence out; every
 * token after a takeover claims). So a node
 * that was paused or cut off while its effect was in flight, and whose episode was taken over, cannot
 * apply it after the new owner looked the key up: its write is refused by the compare-and-set on the
 * key, whatever the timing. What is counted as a duplicate is a second application by a writer whose
 * token was current. Refusals are counted in {@link stats} (per process).
 */
export class JetStreamWorld implements World {
  #store: JetStreamStore;
  /**
   * Keys this process claimed (by {@link lookup}) and has not applied yet, with the claim's stream
   * sequence: the application writes against it without reading the key again. Only a guess for
   * the compare-and-set (a key written meanwhile is read and decided as before); bounded.
   */
  #claimed = new Map<string, AuxVersion<StoredLedgerEntry>>();
  readonly stats = { claims: 0, refusedStale: 0 };
  constructor(store: JetStreamStore) {
    this.#store = store;
  }

  async apply(
    key: string,
    action: string,
    args: Record<string, unknown>,
    result: unknown,
    fence?: EffectFence,
  ): Promise<void> {
    const call = nuid.next();
    const known = this.#claimed.get(key);
    this.#claimed.delete(key);
    await this.#store.casAux<StoredLedgerEntry>(
      'world',
      key,
      (existing) => {
        if (fence) {
          fence.check();
          if ((existing?.epoch ?? -1) > fence.token) this.#stale(key, fence, existing!);
        }
        const applied = existing && existing.applications > 0;
        const value: StoredLedgerEntry = applied
          ? { ...existing, applications: existing.applications + 1, ...(fence ? { epoch: fence.token } : {}) }
          : { key, action, args, result, at: Date.now(), applications: 1, ...(fence ? { epoch: fence.token } : {}) };
        return { value, msgId: `world:${key}:${value.applications}:${call}` };
      },
      known,
    );
  }

  /**
   * The effect under `key`, if it was applied. With a fence, the key is claimed for the fence's
   * token first (refused if a newer token holds it), so that an older writer's application landing
   * after this lookup is refused. The claim is written first against an empty key (an effect's first
   * attempt: one round trip); only when the key holds something is it read and decided on.
   */
  async lookup(key: string, fence?: EffectFence): Promise<LedgerEntry | undefined> {
    if (!fence) {
      const e = await this.#store.getAux<StoredLedgerEntry>('world', key);
      return e && e.applications > 0 ? e : undefined;
    }
    if (this.#store.firstToken(groupOf(key)) === fence.token) return this.#lookupFirst(key, fence);
    const call = nuid.next();
    let applied: StoredLedgerEntry | undefined;
    let wrote = false;
    try {
      const claim = await this.#store.casAux<StoredLedgerEntry>(
        'world',
        key,
        (existing) => {
          fence.check();
          if (existing && existing.applications > 0) {
            applied = existing;
            throw SEEN; // applied already: nothing to write
          }
          if ((existing?.epoch ?? -1) > fence.token) this.#stale(key, fence, existing!);
          wrote = !(existing && existing.epoch === fence.token);
          if (!wrote) return null; // claimed by this token already
          return {
            value: {
              key,
              action: existing?.action ?? '',
              args: {},
              result: null,
              at: Date.now(),
              applications: 0,
              epoch: fence.token,
            },
            msgId: `world-claim:${key}:${fence.token}:${call}`,
          };
        },
        { value: undefined, seq: 0 },
      );
      if (wrote) this.stats.claims++;
      this.#remember(key, claim);
    } catch (err) {
      if (err !== SEEN) throw err;
    }
    return applied;
  }

  /**
   * The lookup of an effect running under its episode's first fencing token (the episode's lease was
   * created by this node on a key never written): no smaller token of the episode exists, so there
   * is no older writer for a claim to fence out. The key is read, and the application writes against
   * what was read (compare-and-set): a newer token's claim or application that lands in between
   * makes it read the key again and be refused as stale, as with a claim.
   */
  async #lookupFirst(key: string, fence: EffectFence): Promise<LedgerEntry | undefined> {
    fence.check();
    const cur = await this.#store.readAux<StoredLedgerEntry>('world', key);
    if (cur.value && cur.value.applications > 0) return cur.value;
    if ((cur.value?.epoch ?? -1) > fence.token) this.#stale(key, fence, cur.value!);
    this.#remember(key, cur);
    return undefined;
  }

  #remember(key: string, claim: AuxVersion<StoredLedgerEntry>): void {
    this.#claimed.delete(key);
    this.#claimed.set(key, claim);
    // Claims whose effect never applied (it failed, or its node lost the episode) age out.
    if (this.#claimed.size > MAX_REMEMBERED_CLAIMS) this.#claimed.delete(this.#claimed.keys().next().value!);
  }

  #stale(key: string, fence: EffectFence, existing: StoredLedgerEntry): never {
    this.stats.refusedStale++;
    throw new LeaseLostError(
      key,
      `the world refused fencing token ${fence.token}: the effect's key is held under token ${existing.epoch}`,
    );
  }

  async *entries(): AsyncIterable<LedgerEntry> {
    for await (const e of this.#store.auxValues<StoredLedgerEntry>('world')) if (e.applications > 0) yield e;
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
