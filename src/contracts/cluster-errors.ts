import { HandoffError } from './errors.ts';

/**
 * This node no longer holds the lease of the actor's group (another node took it over, or this node
 * lost its membership): the write was refused and nothing changed. The actor runs elsewhere.
 */
export class LeaseLostError extends HandoffError {
  constructor(actorId: string, reason: string) {
    super('lease.lost', `${actorId}: lease lost (${reason}); the actor is owned by another node now`, {
      actorId,
      reason,
    });
  }
}

/** The actor is owned by another node (or by none yet): ask again, the cluster routes it. */
export class ActorMovedError extends HandoffError {
  readonly retryAfterMs: number;
  constructor(actorId: string, owner: string | null, retryAfterMs = 200) {
    super(
      'actor.moved',
      `${actorId} is not hosted on this node${owner ? ` (owner: ${owner})` : ''}; retry in ${retryAfterMs} ms`,
      { actorId, owner, retryAfterMs },
    );
    this.retryAfterMs = retryAfterMs;
  }
}

/** The node has too much work in flight: nothing was done; retry after `retryAfterMs`. */
export class OverloadedError extends HandoffError {
  readonly retryAfterMs: number;
  constructor(node: string, inFlight: number, limit: number, retryAfterMs: number) {
    super(
      'node.overloaded',
      `node ${node} is overloaded (${inFlight} operations in flight, limit ${limit}); retry after ${retryAfterMs} ms`,
      { node, inFlight, limit, retryAfterMs },
    );
    this.retryAfterMs = retryAfterMs;
  }
}

/** The actor's group is being taken over (its node died) or no node can take it now: retry shortly. */
export class UnavailableError extends HandoffError {
  readonly retryAfterMs: number;
  constructor(actorId: string, reason: string, retryAfterMs = 250) {
    super('cluster.unavailable', `${actorId} is unavailable (${reason}); retry after ${retryAfterMs} ms`, {
      actorId,
      reason,
      retryAfterMs,
    });
    this.retryAfterMs = retryAfterMs;
  }
}

/** Error codes after which a client may simply retry the same request (same commandId). */
export const RETRYABLE_CODES = new Set([
  'node.overloaded',
  'cluster.unavailable',
  'actor.moved',
  'lease.lost',
  'transport.timeout',
  'transport.no_responders',
  'store.write_failed',
  'actor.restarting',
]);

/** The error means "not this node's actor": drop it quietly, its owner handles it. */
export function isNotMine(err: unknown): boolean {
  return err instanceof HandoffError && (err.code === 'lease.lost' || err.code === 'actor.moved');
}
