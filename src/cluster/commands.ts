import type { Ack } from '../contracts/ack.ts';
import { ActorMovedError, OverloadedError, UnavailableError } from '../contracts/cluster-errors.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { subjects, type Msg, type Subscription } from '../transport/transport.ts';
import { ForwardedCommandContract, parseClusterMessage } from './contracts.ts';
import type { NatsTransport } from './nats-transport.ts';
import { groupOf, tok } from './keys.ts';
import type { Leases } from './leases.ts';
import type { Membership } from './membership.ts';
import { childTraceparent, episodeTraceparent, withSpan } from './trace.ts';

/** A node's own subjects: forwarded commands (`cmd`), forwarded starts (`start`) and liveness probes (`ping`). */
export function nodeSubject(namespace: string, member: string, what: 'cmd' | 'start' | 'ping' = 'cmd'): string {
  return `handoff.${namespace}.node.${tok(member)}.${what}`;
}

/** What the command router needs from its node. */
export interface CommandHost {
  readonly name: string;
  readonly namespace: string;
  readonly runtime: Runtime;
  readonly leases: Leases;
  readonly membership: Membership;
  readonly transport: NatsTransport;
  readonly stats: { commands: number; forwarded: number; overloaded: number };
  /** Runtime operations in flight above which commands are refused (`node.overloaded`). */
  readonly maxInFlight: number;
  /** Whether this node is adopting the group right now. */
  adopting(group: string): boolean;
  /** Takes a live group that has no owner (its lease released too early, or never taken); false: another node took it. */
  takeOrphan(group: string): Promise<boolean>;
}

/**
 * Reviewer commands on a node: any node takes a request from the commands' queue group and routes it
 * to the case's owner (the leases bucket says who); the owner commits it.
 */
export class CommandRouter {
  #host: CommandHost;
  constructor(host: CommandHost) {
    this.#host = host;
  }

  /**
   * Serves reviewer commands: the namespace's command subject in a queue group shared by every
   * node, and this node's own subject for commands forwarded to it (parsed with their contract).
   */
  serve(): Subscription[] {
    const h = this.#host;
    const forwarded = (m: Msg) =>
      parseClusterMessage(ForwardedCommandContract, m.data, 'ForwardedCommand') as { caseId: string };
    return [
      h.transport.serve(subjects(h.namespace).actorAll, (m) => this.route(m), {
        queue: `handoff-${h.namespace}-commands`,
      }),
      h.transport.serve(
        nodeSubject(h.namespace, h.membership.id),
        (m) => this.local(forwarded(m), m.headers?.traceparent),
        {
          queue: 'direct',
        },
      ),
    ];
  }

  /** A command from the queue group: handled here if this node owns the case, else forwarded to its owner. */
  async route(m: Msg): Promise<unknown> {
    const h = this.#host;
    const cmd = m.data as { caseId?: unknown } | undefined;
    const traceparent = m.headers?.traceparent;
    if (!cmd || typeof cmd.caseId !== 'string') return h.runtime.command(m.data);
    const group = groupOf(cmd.caseId);
    const holder = h.leases.get(group)?.holder;
    if (!holder || holder.member === h.membership.id) return this.local(cmd as { caseId: string }, traceparent);
    if (h.membership.isDead(holder.member))
      throw new UnavailableError(cmd.caseId, 'its node died; the takeover is in progress', 500);
    h.stats.forwarded++;
    const tp = childTraceparent(traceparent, () => episodeTraceparent(h.namespace, group));
    return h.transport.request(nodeSubject(h.namespace, holder.member), cmd, {
      timeoutMs: 8000,
      headers: { traceparent: tp },
    });
  }

  /** A command for a case this node owns (or should). */
  async local(cmd: { caseId: string }, traceparent: string | undefined): Promise<Ack> {
    const h = this.#host;
    h.stats.commands++;
    const limit = h.maxInFlight;
    const busy = h.runtime.busy;
    if (busy > limit) {
      h.stats.overloaded++;
      throw new OverloadedError(h.name, busy, limit, Math.min(2000, 50 + Math.round(busy / 10)));
    }
    const group = groupOf(cmd.caseId);
    if (h.adopting(group)) throw new UnavailableError(cmd.caseId, 'it is being taken over by this node', 200);
    const attrs = { 'handoff.case': cmd.caseId, 'handoff.node': h.name };
    return withSpan('handoff.command', traceparent ?? episodeTraceparent(h.namespace, group), attrs, async () => {
      try {
        return await h.runtime.command(cmd);
      } catch (err) {
        if (!(err instanceof ActorMovedError) || h.leases.get(group)?.holder) throw err;
        // A live actor with no owner (its lease was released too early, or never taken): take it.
        if (!(await h.takeOrphan(group))) throw new UnavailableError(cmd.caseId, 'another node is taking it', 200);
        return h.runtime.command(cmd);
      }
    });
  }
}
