import { ActorExistsError, HandoffError } from '../contracts/errors.ts';
import { isNotMine } from '../contracts/cluster-errors.ts';
import type { AgentEvent } from '../machines/agent.ts';
import type { Timers } from '../machines/effects.ts';
import type { RuntimeEvent } from './cell.ts';
import type { Host } from './host.ts';
import { operatorCaseInput } from './operator-case.ts';
import type { OutboxChannel } from './runtime-types.ts';
import type { ActorKind, ActorRecord, OutboxMessage } from './store.ts';
import type { Supervisor } from './supervisor.ts';

type Resolution = { outcome: string; caseId: string; decidedBy: string[]; reason?: string };
export type OperatorHandler = (resolution: Resolution) => Promise<void> | void;

/**
 * Supervision and dead letters: what happens when an actor crashes (restart or escalate, by its
 * kind's strategy in {@link Supervisor}), suspended actors and the operator cases that decide them,
 * and the dead letters of what could not be delivered.
 */
export class Supervision {
  readonly supervisor: Supervisor;
  /** Suspended actors and the operator case deciding each; few, so kept in memory and in one meta key. */
  readonly suspended = new Map<string, string>();
  readonly operatorHandlers = new Map<string, OperatorHandler>();
  #host: Host;
  #restartTimers = new Set<string>();

  constructor(host: Host, supervisor: Supervisor) {
    this.#host = host;
    this.supervisor = supervisor;
  }

  /** Reads the suspended actors at start. */
  async load(): Promise<void> {
    const stored = (await this.#host.store.getMeta<Record<string, string>>('suspended')) ?? {};
    for (const [id, caseId] of Object.entries(stored)) this.suspended.set(id, caseId);
  }

  /** An actor crashed: dead-letter what crashed it, then restart it or escalate, by its strategy. */
  onCrash(id: string, kind: ActorKind, model: string, error: unknown, poison: RuntimeEvent | undefined): void {
    const h = this.#host;
    h.stats.crashes++;
    const message = error instanceof Error ? error.message : String(error);
    h.log.error({ actor: id, event: poison?.type, err: error }, 'actor crashed');
    if (poison)
      void this.deadLetter(id, poison, `crashed the actor: ${message}`, 'actor.crashed').catch((err: unknown) =>
        h.log.error({ actor: id, err }, 'dead letter not written'),
      );
    const decision = this.supervisor.onCrash(id, kind);
    if (decision.action === 'restart') {
      this.scheduleRestart(id, message, decision.delayMs);
      return;
    }
    h.begin();
    void this.#escalate(id, kind, model, message, decision.restarts)
      .catch((err: unknown) => h.log.error({ actor: id, err }, 'escalation failed'))
      .finally(() => h.settle());
  }

  /** Restarts an actor from its last durable snapshot after `delayMs` (a store failure, a crash). */
  scheduleRestart(id: string, reason: string, delayMs = 0): void {
    const h = this.#host;
    if (this.#restartTimers.has(id) || h.stopped) return;
    this.#restartTimers.add(id);
    // Counted as work only once it runs: a restart waiting out its backoff must not hold up a
    // simulated clock that waits for the runtime to be idle before it moves.
    const restart = () => {
      h.begin();
      this.#restartTimers.delete(id);
      this.supervisor.restarted(id);
      h.stats.restarts++;
      // What the actor did in memory may still be on its way to disk: restart from what is durable.
      void h.store
        .flush()
        .then(() => h.cell(id))
        .catch((err: unknown) => {
          if (err instanceof HandoffError && err.code === 'store.write_failed') this.scheduleRestart(id, reason, 50);
          else if (!isNotMine(err)) h.log.error({ actor: id, err, reason }, 'restart failed');
        })
        .finally(() => h.settle());
    };
    if (delayMs <= 0) queueMicrotask(restart);
    else h.clock.setTimeout(restart, delayMs);
  }

  /** Past its restart limit: suspend the actor and ask an operator, through a case, what to do. */
  async #escalate(id: string, kind: ActorKind, modelName: string, message: string, restarts: number): Promise<void> {
    const h = this.#host;
    const model = h.model(modelName);
    const caseId = `${id}.operator-${Date.now().toString(36)}`;
    this.suspended.set(id, caseId);
    await h.store.putMeta('suspended', Object.fromEntries(this.suspended));
    const now = h.clock.now();
    const observation = {
      id: `${id}.crash`,
      kind: 'handoff.actor.crashed',
      subject: id,
      provenance: { source: 'handoff/supervisor', observedAt: new Date(now).toISOString(), transforms: [] },
      classification: 'internal' as const,
      dataClasses: ['internal' as const],
      fields: { actor: id, kind, crashes: restarts, error: message },
    };
    const rationale = `The ${kind} ${id} crashed ${restarts} times (last: ${message}). Approve to resume it from its last snapshot; reject to stop it for good.`;
    const input = operatorCaseInput(
      model,
      caseId,
      id,
      observation,
      rationale,
      'supervision:restart-limit',
      h.clock.now(),
    );
    await h.spawn('case', caseId, model, input).catch((err: unknown) => {
      if (!(err instanceof ActorExistsError)) throw err;
    });
    await h.store.appendAudit([
      {
        at: now,
        kind: 'actor.suspended',
        actor: id,
        by: 'runtime',
        data: { operatorCase: caseId, crashes: restarts, error: message },
      },
    ]);
  }

  /** An operator decided about a suspended actor: resume it, or stop it for good. */
  async operatorDecision(msg: OutboxMessage): Promise<void> {
    const h = this.#host;
    const { resolution } = msg.event as unknown as { resolution: Resolution };
    const id = msg.to;
    const handler = this.operatorHandlers.get(id);
    if (handler) {
      await handler(resolution);
      await h.store.ackOutbox(msg.id);
      return;
    }
    this.suspended.delete(id);
    await h.store.putMeta('suspended', Object.fromEntries(this.suspended));
    const rec = await h.currentRecord(id);
    if (resolution.outcome === 'approved' || resolution.outcome === 'modified') {
      this.supervisor.reset(id);
      const by = resolution.decidedBy.join(',') || 'operator';
      await h.store.appendAudit([
        { at: h.clock.now(), kind: 'actor.resumed', actor: id, by, data: { operatorCase: resolution.caseId } },
      ]);
      await h.cell(id);
    } else if (rec) {
      const ctx = (rec.snapshot as { context: Record<string, unknown> }).context;
      const error = {
        message: `stopped by operator (${resolution.caseId})`,
        code: 'actor.stopped',
        transient: false,
        phase: 'supervision',
      };
      const stopped: ActorRecord = {
        ...rec,
        status: 'stopped',
        state: 'stopped',
        seq: rec.seq + 1,
        updatedAt: h.clock.now(),
        snapshot: {
          ...(rec.snapshot as object),
          context: { ...ctx, outcome: rec.kind === 'agent' ? 'failed' : ctx.outcome, error, effect: null, timers: {} },
        },
      };
      const audit = [
        {
          at: h.clock.now(),
          kind: 'actor.stopped',
          actor: id,
          by: resolution.decidedBy.join(',') || 'operator',
          data: { operatorCase: resolution.caseId },
        },
      ];
      const timersCleared = Object.entries((ctx.timers ?? {}) as Timers).flatMap(([name, dueAt]) =>
        dueAt === undefined ? [] : [{ actorId: id, name, dueAt }],
      );
      const event = { type: 'handoff.operator.stop', caseId: resolution.caseId };
      await h.store.commit({
        actor: stopped,
        journal: { seq: stopped.seq, at: stopped.updatedAt, event, state: 'stopped' },
        outboxDone: [msg.id],
        audit,
        timersCleared,
      });
      return;
    }
    await h.store.ackOutbox(msg.id);
  }

  async deadLetter(actorId: string, event: RuntimeEvent, reason: string, code: string): Promise<void> {
    const h = this.#host;
    h.stats.deadLetters++;
    const at = h.clock.now();
    await h.store.putDeadLetter({
      id: `${at.toString(36)}-${actorId}-${h.stats.deadLetters}`,
      at,
      actorId,
      event,
      reason,
      code,
    });
  }

  /** Sends dead letters again; those delivered are removed. A channel's letters go back to the channel. */
  async replayDeadLetters(
    filter: (id: string) => boolean,
    channelOf: (to: string) => OutboxChannel | undefined,
  ): Promise<{ delivered: number; failed: { id: string; error: string }[] }> {
    const h = this.#host;
    let delivered = 0;
    const failed: { id: string; error: string }[] = [];
    const letters = [];
    for await (const d of h.store.deadLetters()) if (filter(d.id)) letters.push(d);
    for (const d of letters) {
      try {
        const channel = channelOf(d.actorId);
        if (channel) await channel.replay(d);
        else await h.send(d.actorId, { ...d.event, at: h.clock.now() } as unknown as AgentEvent);
        await h.store.deleteDeadLetter(d.id);
        delivered++;
      } catch (err) {
        failed.push({ id: d.id, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return { delivered, failed };
  }
}
