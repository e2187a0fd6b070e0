import { randomHex } from '../base/random-hex.ts';
import { parseTraceparent, type TraceContext } from '../contracts/envelope.ts';
import type { Logger } from 'pino';
import {
  ActorExistsError,
  ActorNotFoundError,
  ConflictError,
  EventRejectedError,
  HandoffError,
} from '../contracts/errors.ts';
import { CaseInput } from '../contracts/review-case.ts';
import { ReviewerCommand } from '../contracts/reviewer-command.ts';
import { parseContract } from '../contracts/parse.ts';
import { isNotMine } from '../contracts/cluster-errors.ts';
import type { Ack } from '../contracts/ack.ts';
import type { AgentEvent } from '../machines/agent.ts';
import type { CaseContext, CaseEvent } from '../machines/review-case.ts';
import type { World } from '../models/define.ts';
import type { LoadedModel } from '../models/loader.ts';
import { MemoryTransport } from '../transport/memory-transport.ts';
import type { Transport } from '../transport/transport.ts';
import type { AuditDraft } from '../base/audit-log.ts';
import { stateString } from './cell.ts';
import { systemClock, type Clock } from '../base/clock.ts';
import type { RuntimeStats } from './host.ts';
import { ActorHost } from './hosting.ts';
import { createLogger } from './logger.ts';
import { operatorCaseInput } from './operator-case.ts';
import type { ActorView, RuntimeOptions, TransitionNotice } from './runtime-types.ts';
import type { ActorRecord, JournalEntry, OutboxMessage, Store } from './store.ts';
import type { OperatorHandler } from './supervision.ts';

export type {
  ActorView,
  ChannelTransition,
  OutboxChannel,
  RuntimeOptions,
  TransitionNotice,
  TransitionTelemetry,
} from './runtime-types.ts';
export { persistedSnapshot } from './cell.ts';
/** What a caller gets back once an event is durable (declared in contracts/, where the client needs it). */
export type { Ack } from '../contracts/ack.ts';

/**
 * The actor system of one node: hosts agent episodes and review cases as XState actors, by id.
 *
 * Write-ahead: an event is applied in memory, then its journal entry (and, where the actor can rest,
 * its new snapshot) is committed; only when that commit is durable are its consequences released:
 * the caller's acknowledgement, the requested effect, the timers, messages to other actors and
 * published notices. A crash at any point therefore leaves the store at a state from which the same
 * consequences follow. This class is the public face; hosting and its parts live beside it
 * (hosting.ts, commit-builder.ts, effects.ts, outbox.ts, supervision.ts, rehydration.ts).
 */
export class Runtime {
  readonly store: Store;
  readonly world: World;
  readonly clock: Clock;
  readonly log: Logger;
  readonly transport: Transport;
  readonly namespace: string;
  readonly models: ReadonlyMap<string, LoadedModel>;
  /** Counters for progress displays and benchmarks. */
  readonly stats: RuntimeStats;
  #h: ActorHost;
  #recentCommands = new Set<string>();
  #ownsTransport: boolean;

  private constructor(opts: RuntimeOptions) {
    this.store = opts.store;
    this.world = opts.world;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? createLogger({ models: opts.models });
    this.#ownsTransport = !opts.transport;
    this.transport = opts.transport ?? new MemoryTransport();
    this.namespace = opts.namespace ?? 'default';
    this.#h = new ActorHost({
      ...opts,
      clock: this.clock,
      log: this.log,
      transport: this.transport,
      namespace: this.namespace,
    });
    this.models = this.#h.models;
    this.stats = this.#h.stats;
  }

  /** Opens the runtime on its store and restores every unfinished actor, effects and timers included. */
  static async open(opts: RuntimeOptions): Promise<Runtime> {
    const rt = new Runtime(opts);
    await rt.#recover();
    return rt;
  }

  async #recover(): Promise<void> {
    const h = this.#h;
    await h.supervision.load();
    // Only actors with an effect in flight are loaded now; every other actor is rehydrated on its
    // next message or timer, so a node with many open cases is ready at once.
    const hot: string[] = [];
    for await (const entry of this.store.liveIndex()) if (entry.hot) hot.push(entry.id);
    for (const id of hot) {
      // A suspended actor waits for its operator; one that fails to restore is handled by its
      // supervisor (dead letters, operator case). Neither may keep the node from starting.
      if (h.supervision.suspended.has(id)) continue;
      try {
        const cell = await h.cell(id);
        if (cell && 'actor' in cell) this.stats.restored++;
      } catch (err) {
        this.log.error({ actor: id, err }, 'actor not restored at start');
      }
    }
    await h.timers.start();
    for await (const msg of this.store.outbox()) h.deliver(msg);
  }

  /**
   * Starts an episode on a signal, validated against the model's signal contract. Its trace continues
   * `opts.traceparent` (or a `traceparent` field of the raw signal) when one is given and valid, else
   * it is a new random trace; either way it is fixed in the episode's snapshot, so every node,
   * restart and review case traces into it.
   */
  async startEpisode(
    modelName: string,
    signal: unknown,
    opts: { episodeId: string; traceparent?: string },
  ): Promise<Ack> {
    const model = this.#h.model(modelName);
    const raw = signal && typeof signal === 'object' ? (signal as { traceparent?: unknown }).traceparent : undefined;
    const carried = typeof raw === 'string' ? raw : undefined;
    const parsed = parseContract(model.handlers.signal, signal, `${model.name}.signal`, 'signal');
    const input = {
      episodeId: opts.episodeId,
      model: model.name,
      signal: parsed,
      retry: model.config.retry,
      trace: traceContextOf(opts.traceparent ?? carried),
    };
    // Counted as work from the first await (the existence check reads the store), so a driver that
    // waits for idleness does not move a simulated clock past a start in progress.
    this.#h.begin();
    try {
      return await this.#h.spawn('agent', opts.episodeId, model, input);
    } finally {
      this.#h.settle();
    }
  }

  /**
   * Opens a review case directly (cases normally open from an agent's gate). The input is parsed
   * with the CaseInput contract; its resolution is delivered to `input.episodeId`.
   */
  async openCase(input: unknown): Promise<Ack> {
    const parsed = parseContract(CaseInput, input, 'CaseInput');
    this.#h.begin();
    try {
      return await this.#h.spawn('case', parsed.caseId, this.#h.model(parsed.model), parsed);
    } finally {
      this.#h.settle();
    }
  }

  /**
   * Opens an operator case about something that is not an episode (a drift alarm, a stuck
   * integration): a review case in the model's operator tier. When an operator decides it, the
   * handler registered for `target` with {@link onOperatorDecision} is called. Returns the case id.
   */
  async openOperatorCase(opts: {
    model: string;
    target: string;
    kind: string;
    rationale: string;
    ruleId: string;
    fields: Record<string, unknown>;
  }): Promise<string> {
    const model = this.#h.model(opts.model);
    const now = this.clock.now();
    const caseId = `${opts.target}.operator-${now.toString(36)}`;
    const observation = {
      id: `${caseId}.obs`,
      kind: opts.kind,
      subject: opts.target,
      provenance: { source: 'handoff/runtime', observedAt: new Date(now).toISOString(), transforms: [] },
      classification: 'internal' as const,
      dataClasses: ['internal' as const],
      fields: opts.fields,
    };
    const input = operatorCaseInput(
      model,
      caseId,
      opts.target,
      observation,
      opts.rationale,
      opts.ruleId,
      this.clock.now(),
    );
    await this.#h.spawn('case', caseId, model, input).catch((err: unknown) => {
      if (!(err instanceof ActorExistsError)) throw err;
    });
    return caseId;
  }

  /** Handles operator decisions on cases opened with {@link openOperatorCase} for `target`. */
  onOperatorDecision(target: string, handler: OperatorHandler): void {
    this.#h.supervision.operatorHandlers.set(target, handler);
  }

  /**
   * Applies a reviewer command, parsed with the contract at this boundary. Refusals are typed:
   * ContractError (bad field), ActorNotFoundError, UnauthorizedError (role, separation of duties,
   * four eyes), ConflictError (stale version), EventRejectedError (wrong state), `command.replayed`.
   */
  async command(input: unknown): Promise<Ack> {
    const cmd = parseContract(ReviewerCommand, input, 'ReviewerCommand');
    const replayed = () =>
      new HandoffError('command.replayed', `command ${cmd.commandId} was already applied`, {
        commandId: cmd.commandId,
      });
    // Claimed synchronously, before any await, so the same command sent twice at once applies once.
    if (this.#recentCommands.has(cmd.commandId)) throw replayed();
    this.#recentCommands.add(cmd.commandId);
    try {
      return await this.#command(cmd);
    } catch (err) {
      if (!(err instanceof HandoffError && err.code === 'command.replayed')) this.#recentCommands.delete(cmd.commandId);
      throw err;
    }
  }

  async #command(cmd: ReviewerCommand): Promise<Ack> {
    if (await this.store.hasCommand(cmd.commandId))
      throw new HandoffError('command.replayed', `command ${cmd.commandId} was already applied`, {
        commandId: cmd.commandId,
      });
    const cell = await this.#h.cell(cmd.caseId);
    if (!cell || !('actor' in cell)) {
      if (cell)
        throw new EventRejectedError(
          cmd.caseId,
          cmd.type,
          cell.state,
          `the case is closed (${cell.state})`,
          'case-closed',
        );
      throw new ActorNotFoundError(cmd.caseId);
    }
    if (cell.kind !== 'case') throw new EventRejectedError(cmd.caseId, cmd.type, 'n/a', 'not a review case');
    if (cmd.expectedVersion !== undefined && cmd.expectedVersion !== cell.seq)
      throw new ConflictError(cmd.caseId, cmd.expectedVersion, cell.seq);
    const at = this.clock.now();
    const base = { reviewer: cmd.reviewer, commandId: cmd.commandId, at };
    let event: CaseEvent;
    switch (cmd.type) {
      case 'handoff.case.claim':
        event = { type: 'claim', ...base };
        break;
      case 'handoff.case.release':
        event = { type: 'release', ...base, ...(cmd.reason ? { reason: cmd.reason } : {}) };
        break;
      case 'handoff.case.renew':
        event = { type: 'renew', ...base };
        break;
      case 'handoff.case.approve':
        event = { type: 'approve', ...base, ...(cmd.comment ? { comment: cmd.comment } : {}) };
        break;
      case 'handoff.case.modify': {
        const plan = (cell.actor.getSnapshot().context as CaseContext).plan;
        event = {
          type: 'modify',
          ...base,
          actions: cell.model.editActions(plan, cmd.actions),
          comment: cmd.comment.trim(),
        };
        break;
      }
      case 'handoff.case.reject':
        event = { type: 'reject', ...base, reason: cmd.reason.trim() };
        break;
      case 'handoff.case.escalate':
        event = { type: 'escalate', ...base, reason: cmd.reason.trim() };
        break;
    }
    // Ids of durable commands are in the store; the in-memory set only guards those in flight.
    if (this.#recentCommands.size > 100_000) this.#recentCommands.clear();
    return this.#h.apply(cell, event, cmd.commandId);
  }

  /** Sends a runtime event (effect result, timer, case resolution) to an actor. */
  send(actorId: string, event: AgentEvent | CaseEvent): Promise<Ack> {
    return this.#h.send(actorId, event);
  }

  async get(actorId: string): Promise<ActorView | undefined> {
    const cell = this.#h.cells.get(actorId);
    if (cell) {
      const snap = cell.actor.getSnapshot();
      return {
        id: cell.id,
        kind: cell.kind,
        model: cell.model.name,
        seq: cell.seq,
        state: stateString(snap.value),
        status: snap.status,
        context: snap.context,
      };
    }
    const rec = await this.#h.currentRecord(actorId);
    return rec ? viewOfRecord(rec) : undefined;
  }

  journal(actorId: string): AsyncIterable<JournalEntry> {
    return this.store.journal(actorId);
  }

  /** Listens to every durable transition on this node. */
  onTransition(listener: (n: TransitionNotice) => void): () => void {
    this.#h.listeners.add(listener);
    return () => this.#h.listeners.delete(listener);
  }

  /** Events, effects and deliveries in progress. */
  get busy(): number {
    return this.#h.busy;
  }

  /** Actors resident in memory. */
  get resident(): number {
    return this.#h.cells.size;
  }

  /**
   * Cluster hook: this node took these actors over (placement, failover). Each is loaded from the
   * store (a pending effect is issued again, its timers are armed) and their undelivered outbox
   * messages are delivered.
   */
  async adopt(ids: Iterable<string>, outbox: Iterable<OutboxMessage> = []): Promise<void> {
    for (const id of ids) {
      try {
        await this.#h.cell(id);
      } catch (err) {
        if (!isNotMine(err)) this.log.warn({ actor: id, err }, 'an adopted actor did not load');
      }
    }
    for (const msg of outbox) this.#h.deliver(msg);
  }

  /** Cluster hook: this node no longer owns these actors; they leave memory without any write. */
  relinquish(ids: Iterable<string>): void {
    for (const id of ids) {
      const cell = this.#h.cells.get(id);
      if (cell) this.#h.drop(cell);
    }
  }

  /** Resolves when no event, effect or delivery is in progress (timers may still be pending). */
  whenIdle(): Promise<void> {
    return this.#h.whenIdle();
  }

  /** Appends audit entries outside an actor transition (logins, refused commands). */
  async audit(drafts: AuditDraft[]): Promise<void> {
    if (drafts.length === 0) return;
    await this.store.appendAudit(drafts);
  }

  /** Sends dead letters again; those delivered are removed. Returns how many were delivered. */
  replayDeadLetters(
    filter: (id: string) => boolean = () => true,
  ): Promise<{ delivered: number; failed: { id: string; error: string }[] }> {
    return this.#h.supervision.replayDeadLetters(filter, (to) => this.#h.outbox.channelOf(to));
  }

  async close(): Promise<void> {
    const h = this.#h;
    if (h.stopped) return;
    h.stopped = true;
    h.timers.stop();
    await this.whenIdle();
    for (const cell of h.cells.values()) cell.actor.stop();
    h.cells.clear();
    await this.store
      .flush()
      .catch((err: unknown) =>
        this.log.error({ err }, 'final flush failed: what it held is redone from the journal on the next start'),
      );
    if (this.#ownsTransport) await this.transport.close();
  }
}

/** An episode's trace: continuing a valid W3C `traceparent`, or a new random trace. */
export function traceContextOf(traceparent: string | undefined): TraceContext {
  const p = parseTraceparent(traceparent);
  const spanId = randomHex(8);
  if (p && !/^0+$/.test(p.traceId) && !/^0+$/.test(p.spanId))
    return { traceId: p.traceId, spanId, parentSpanId: p.spanId, sampled: p.sampled };
  return { traceId: randomHex(16), spanId };
}

/** An actor as its stored record has it (a live actor's in-memory state may be a step ahead). */
export function viewOfRecord(rec: ActorRecord): ActorView {
  const context = (rec.snapshot as { context: ActorView['context'] }).context;
  return { id: rec.id, kind: rec.kind, model: rec.model, seq: rec.seq, state: rec.state, status: rec.status, context };
}
