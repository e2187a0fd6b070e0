import type { Logger } from 'pino';
import { LeaseLostError } from '../contracts/cluster-errors.ts';
import { groupOf } from './keys.ts';
import type { Leases } from './leases.ts';
import type { Membership } from './membership.ts';

/** What the write fence needs from its node. */
export interface FenceHost {
  readonly leases: Leases;
  readonly membership: Membership;
  readonly log: Logger;
  readonly stats: { lapses: number };
  stopped(): boolean;
  /** Whether the node hosts the group (adopted or claimed). */
  hosts(group: string): boolean;
  /** The groups the node hosts. */
  hosted(): Iterable<string>;
}

/**
 * Whether a node may write an actor or run its effect now: it hosts the actor's group, the lease in
 * the bucket names it, its membership is alive, and (for an effect) the lease revision is still the
 * one the effect was issued under. After a lapse of its liveness proof, the leases are re-read from
 * the server before anything is written again.
 */
export class WriteFence {
  #host: FenceHost;
  #verifying: Promise<void> | undefined;
  /** Actors refused while the lease was still this node's (fenced for now): reloaded once healthy. */
  readonly refusedWhileMine = new Set<string>();

  constructor(host: FenceHost) {
    this.#host = host;
  }

  /** Whether this node may write the actor now: it holds its group's lease and its membership is alive. */
  mayWrite(actorId: string): boolean {
    const h = this.#host;
    if (h.stopped()) return false;
    const group = groupOf(actorId);
    const mine = h.hosts(group) && h.leases.ownerOf(group) === h.membership.id;
    if (!mine) return false;
    if (!h.membership.healthy) {
      // Fenced for now (heartbeat overdue), but the lease is still ours: reload it once healthy.
      this.refusedWhileMine.add(actorId);
      return false;
    }
    return true;
  }

  /** Why {@link mayWrite} refuses an actor. */
  whyNot(actorId: string): string {
    const h = this.#host;
    const group = groupOf(actorId);
    if (h.stopped()) return 'the node is stopping';
    if (!h.membership.healthy)
      return h.membership.lapsed
        ? 'this node is fenced: its liveness proof lapsed and its leases are being re-read'
        : 'this node is fenced: its heartbeat is overdue';
    if (!h.hosts(group)) return `this node does not hold ${group}`;
    const holder = h.leases.get(group)?.holder;
    return holder?.member === h.membership.id
      ? 'writable'
      : `the lease of ${group} is held by ${holder?.member ?? 'nobody'}`;
  }

  /**
   * Effects are fenced, not only writes: an effect dispatched under lease revision `token` may touch
   * the world only while this node can prove it still holds that lease (same revision, membership
   * proof fresh by the monotonic clock, leases re-read after any lapse). Throws `lease.lost`.
   */
  checkEffect(actorId: string, token: number): void {
    if (!this.mayWrite(actorId)) throw new LeaseLostError(actorId, `effect fenced: ${this.whyNot(actorId)}`);
    const rev = this.#host.leases.get(groupOf(actorId))?.revision;
    if (rev !== token)
      throw new LeaseLostError(actorId, `effect fenced: issued under lease revision ${token}, now ${rev ?? 'none'}`);
  }

  /**
   * This node's liveness proof lapsed (it was paused, starved or cut off for longer than the
   * self-fence bound): others may have taken its episodes. Before it writes or runs any effect again
   * it re-reads every lease it believes it holds from the server; those taken over are dropped (no
   * write, no effect), then it is confirmed healthy and reloads the rest.
   */
  async verifyLeases(gapMs: number): Promise<void> {
    const h = this.#host;
    if (this.#verifying || h.stopped()) return;
    this.#verifying = (async () => {
      try {
        h.stats.lapses++;
        const held = [...h.hosted()];
        await h.leases.refresh(held);
        h.membership.confirm();
        h.log.warn({ gapMs, held: held.length }, 'liveness proof lapsed: leases re-read before acting again');
      } catch (err) {
        h.log.warn({ err }, 'leases could not be re-read; still fenced');
      } finally {
        this.#verifying = undefined;
      }
    })();
    await this.#verifying;
  }
}
