import {
  ActorCrashedError,
  ActorNotFoundError,
  ActorRestartingError,
  ActorSuspendedError,
  EventRejectedError,
  RuntimeStoppedError,
} from '../contracts/errors.ts';
import { isNotMine } from '../contracts/cluster-errors.ts';
import type { AgentEvent } from '../machines/agent.ts';
import type { RuntimeEvent } from './cell.ts';
import type { Host } from './host.ts';
import type { OutboxChannel } from './runtime-types.ts';
import type { OutboxMessage } from './store.ts';

/**
 * Delivery of durable outbox messages: a case's resolution to its agent (or to an operator
 * decision's handler), and the messages of channels outside the actor system (webhooks).
 */
export class Outbox {
  readonly channels: OutboxChannel[];
  #host: Host;

  constructor(host: Host, channels: OutboxChannel[]) {
    this.#host = host;
    this.channels = channels;
  }

  channelOf(to: string): OutboxChannel | undefined {
    return this.channels.find((c) => to.startsWith(c.prefix));
  }

  deliver(msg: OutboxMessage): void {
    const h = this.#host;
    // A channel's deliveries (webhooks) run on their own schedule, outside the runtime's work count.
    const channel = this.channelOf(msg.to);
    if (channel) return channel.deliver(msg);
    h.begin();
    const operator =
      msg.event.type === 'case.resolved' &&
      (msg.event as unknown as { resolution: { caseId: string } }).resolution.caseId.startsWith(`${msg.to}.operator-`);
    (operator ? h.operatorDecision(msg) : h.send(msg.to, msg.event as unknown as AgentEvent))
      .catch(async (err: unknown) => {
        if (err instanceof ActorRestartingError) {
          // Deliver again once the target has restarted; the message stays in the outbox meanwhile.
          h.clock.setTimeout(() => this.deliver(msg), err.retryAfterMs + 1);
        } else if (err instanceof EventRejectedError) {
          h.log.debug({ msg: msg.id, err: err.message }, 'outbox message no longer applies');
        } else if (err instanceof ActorNotFoundError || err instanceof ActorSuspendedError) {
          await h
            .deadLetter(msg.to, msg.event as RuntimeEvent, err.message, err.code)
            .catch(() => h.clock.setTimeout(() => this.deliver(msg), 100));
        } else if (err instanceof ActorCrashedError || err instanceof RuntimeStoppedError || isNotMine(err)) {
          // A crash dead-letters the event that caused it; a stopping node redelivers on its next start;
          // an actor that moved to another node gets it from its new owner.
        } else {
          // A lost write: the message is still in the durable outbox; try again shortly.
          h.log.warn({ msg: msg.id, err }, 'outbox delivery failed; retrying');
          h.clock.setTimeout(() => this.deliver(msg), 100);
        }
      })
      .finally(() => h.settle());
  }

  /**
   * A case's resolution for an agent resident on this node is applied at once, without waiting for
   * the case's commit: the agent's commit (which also deletes the outbox message) is queued after the
   * case's, so it lands in the same batch or a later one and cannot be durable first; a failed batch
   * fails everything queued behind it, so both restart from what is durable. The agent's own
   * consequences (its next effect) still wait for its commit. If the agent does not take it now,
   * the message goes the usual way: delivered from the outbox once the case's commit is durable.
   * Only on stores with `Store.orderedCommits`.
   */
  deliverEarly(msg: OutboxMessage, durable: Promise<void>): boolean {
    const h = this.#host;
    const target = h.cells.get(msg.to);
    if (!target || target.kind !== 'agent' || msg.event.type !== 'case.resolved' || this.channelOf(msg.to) || h.stopped)
      return false;
    if (
      (msg.event as unknown as { resolution: { caseId: string } }).resolution.caseId.startsWith(`${msg.to}.operator-`)
    )
      return false;
    h.begin();
    h.send(msg.to, msg.event as unknown as AgentEvent)
      .catch((err: unknown) => {
        // Refused (stale) as the outbox delivery would be; otherwise deliver it from the outbox once
        // (and only if) the resolution is durable: never retry a resolution that may have been lost.
        if (!(err instanceof EventRejectedError))
          void durable.then(
            () => this.deliver(msg),
            () => undefined,
          );
      })
      .finally(() => h.settle());
    return true;
  }
}
