import { createActor, type AnyStateMachine, type InspectionEvent } from 'xstate';
import type { Logger } from 'pino';
import {
  ActorCrashedError,
  ActorRestartingError,
  ActorSuspendedError,
  ActorExistsError,
  ActorNotFoundError,
  EventRejectedError,
  HandoffError,
  RuntimeStoppedError,
  UnauthorizedError,
} from '../contracts/errors.ts';
import { ActorMovedError, isNotMine } from '../contracts/cluster-errors.ts';
import type { Ack } from '../contracts/ack.ts';
import { agentMachineFor, type AgentContext, type AgentEvent } from '../machines/agent.ts';
import type { Timers } from '../machines/effects.ts';
import { explainCaseRejection, reviewCaseMachine, type CaseContext, type CaseEvent } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import { subjects, subjectToken, type Transport } from '../transport/transport.ts';
import { caseQueueOf, stateString, type Cell, type RuntimeEvent } from './cell.ts';
import { buildCommit } from './commit-builder.ts';
import type { Clock } from '../base/clock.ts';
import { Effects } from './effects.ts';
import type { Host, RuntimeStats } from './host.ts';
import { Outbox } from './outbox.ts';
import { Rehydration } from './rehydration.ts';
import type { RuntimeOptions, TransitionNotice } from './runtime-types.ts';
import type { ActorKind, ActorRecord, OutboxMessage, Store, TimerEntry } from './store.ts';
import { Supervision } from './supervision.ts';
import { Supervisor } from './supervisor.ts';
import { TimerService } from './timer-service.ts';

type Notice = { event: string; at: number; state: string; seq: number; status: ActorRecord['status'] };

/**
 * Hosting: the resident actors of one node by id, loaded, spawned, passivated; each accepted event
 * committed write-ahead and its consequences released once durable. The runtime's parts (effects,
 * outbox, supervision, rehydration, the commit builder) each live in their own file; `Runtime` is
 * the public face.
 */
export class ActorHost implements Host {
  readonly store: Store;
  readonly clock: Clock;
  readonly log: Logger;
  readonly transport: Transport;
  readonly models: ReadonlyMap<string, LoadedModel>;
  readonly stats: RuntimeStats = {
    events: 0,
    effects: 0,
    rejected: 0,
    crashes: 0,
    restarts: 0,
    restored: 0,
    evicted: 0,
    rehydrated: 0,
    deadLetters: 0,
    storeFailures: 0,
  };
  readonly cells = new Map<string, Cell>();
  readonly listeners = new Set<(n: TransitionNotice) => void>();
  readonly supervision: Supervision;
  readonly effects: Effects;
  readonly outbox: Outbox;
  readonly rehydration: Rehydration;
  readonly timers: TimerService;
  stopped = false;
  #busy = 0;
  #idleWaiters: (() => void)[] = [];
  #machines = new Map<string, AnyStateMachine>();
  #loading = new Map<string, Promise<Cell | ActorRecord | undefined>>();
  /** Actors recently used, oldest first (Map keeps insertion order; touching re-inserts). */
  #lru = new Map<string, true>();
  /** Notices waiting to be published after the replies of their commands (see {@link #publishLater}). */
  #notices: [subject: string, notice: TransitionNotice][] = [];
  #subjects: ReturnType<typeof subjects>;
  #maxResident: number;
  #inspect: RuntimeOptions['inspect'];
  #telemetry: RuntimeOptions['telemetry'];
  /** Cluster hook: see {@link RuntimeOptions.owns}. */
  #owns: RuntimeOptions['owns'];

  constructor(opts: RuntimeOptions & { clock: Clock; log: Logger; transport: Transport; namespace: string }) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.log = opts.log;
    this.transport = opts.transport;
    this.models = new Map(opts.models.map((m) => [m.name, m]));
    this.#subjects = subjects(opts.namespace);
    for (const m of opts.models) {
      const gate = opts.gateFor?.(m) ?? m.gate;
      this.#machines.set(
        m.name,
        agentMachineFor({ gate, onExpiry: m.config.policy.onExpiry, freshness: m.config.freshness }),
      );
    }
    this.#inspect = opts.inspect;
    this.#telemetry = opts.telemetry;
    this.#owns = opts.owns;
    this.#maxResident = opts.maxResident ?? 10_000;
    this.supervision = new Supervision(this, new Supervisor(this.clock, opts.supervision));
    this.outbox = new Outbox(this, opts.channels ?? []);
    this.effects = new Effects(this, {
      world: opts.world,
      seed: opts.seed ?? 'handoff',
      planners: opts.planners ?? {},
      faults: opts.faults,
      fencing: opts.fencing,
      circuitBreaker: opts.circuitBreaker ?? {},
    });
    this.rehydration = new Rehydration({
      store: this.store,
      clock: this.clock,
      log: this.log,
      agentMachine: (m) => this.#machines.get(m),
      inspect: this.#inspect,
    });
    // A failed batch: drop the affected actors at once, before another event can build on state that
    // was never written, and restart each from what is durable.
    this.store.onBatchFailed = (ids) => {
      for (const id of ids) {
        const cell = this.cells.get(id);
        if (!cell) continue;
        this.drop(cell);
        this.scheduleRestart(id, 'store write failed');
      }
    };
    this.timers = new TimerService(this.clock, (t) => this.#fireTimer(t), {
      horizonMs: opts.timerHorizonMs ?? 60_000,
      load: (until) => this.store.dueTimers(until),
      next: (after) => this.store.nextTimerAfter(after),
      work: { begin: () => this.begin(), end: () => this.settle() },
    });
  }

  get busy(): number {
    return this.#busy;
  }

  begin(): void {
    this.#busy++;
  }

  settle(): void {
    this.#busy--;
    if (this.#busy === 0 && this.#idleWaiters.length > 0) {
      // Let promise chains that were just released start their next step before declaring idle.
      setImmediate(() => {
        if (this.#busy !== 0) return;
        const waiters = this.#idleWaiters;
        this.#idleWaiters = [];
        for (const w of waiters) w();
      });
    }
  }

  whenIdle(): Promise<void> {
    if (this.#busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  model(name: string): LoadedModel {
    const m = this.models.get(name);
    if (!m)
      throw new HandoffError(
        'model.unknown',
        `no model named '${name}' is loaded (loaded: ${[...this.models.keys()].join(', ')})`,
        { model: name },
      );
    return m;
  }

  drop(cell: Cell): void {
    if (this.cells.get(cell.id) !== cell) return;
    cell.actor.stop();
    this.cells.delete(cell.id);
    this.#lru.delete(cell.id);
  }

  currentRecord(id: string): Promise<ActorRecord | undefined> {
    return this.rehydration.currentRecord(id);
  }

  scheduleRestart(id: string, reason: string, delayMs?: number): void {
    this.supervision.scheduleRestart(id, reason, delayMs);
  }

  deadLetter(actorId: string, event: RuntimeEvent, reason: string, code: string): Promise<void> {
    return this.supervision.deadLetter(actorId, event, reason, code);
  }

  deliver(msg: OutboxMessage): void {
    this.outbox.deliver(msg);
  }

  operatorDecision(msg: OutboxMessage): Promise<void> {
    return this.supervision.operatorDecision(msg);
  }

  /** The resident cell, or the record of a finished actor, or undefined. Loads passivated actors. */
  async cell(id: string): Promise<Cell | ActorRecord | undefined> {
    const resident = this.cells.get(id);
    if (resident) {
      this.#touch(id);
      return resident;
    }
    const pending = this.#loading.get(id);
    if (pending) return pending;
    const load = (async () => {
      const rec = await this.store.load(id);
      if (!rec) return undefined;
      if (rec.status !== 'active') return rec;
      const tail = await this.rehydration.tailOf(rec);
      const again = this.cells.get(id);
      if (again) return again;
      if (this.#owns && !this.#owns(id)) throw new ActorMovedError(id, null);
      const restarting = this.supervision.supervisor.restartingUntil(id);
      if (restarting !== undefined) throw new ActorRestartingError(id, restarting - this.clock.now());
      const suspended = this.supervision.suspended.get(id);
      if (suspended) throw new ActorSuspendedError(id, suspended);
      let cell: Cell;
      try {
        cell = this.rehydration.restore(this.rehydration.replay(rec, tail), this.model(rec.model), rec.seq);
      } catch (err) {
        this.supervision.onCrash(id, rec.kind, rec.model, err, undefined);
        throw new ActorCrashedError(id, err);
      }
      this.cells.set(id, cell);
      this.#touch(id);
      this.stats.rehydrated++;
      // A rehydrated actor picks up where its snapshot stands: a pending effect is issued again
      // (effects are idempotent), and its timers are armed.
      this.#release(cell, cell.actor.getSnapshot().context as AgentContext | CaseContext, []);
      return cell;
    })();
    this.#loading.set(id, load);
    try {
      return await load;
    } finally {
      this.#loading.delete(id);
    }
  }

  #touch(id: string): void {
    this.#lru.delete(id);
    this.#lru.set(id, true);
  }

  /** Evicts idle actors beyond `maxResident`, oldest first. Busy ones stay. */
  #passivate(): void {
    if (this.cells.size <= this.#maxResident) return;
    for (const id of this.#lru.keys()) {
      if (this.cells.size <= this.#maxResident) break;
      const cell = this.cells.get(id);
      if (!cell) {
        this.#lru.delete(id);
        continue;
      }
      if (cell.pending > 0) continue;
      const ctx = cell.actor.getSnapshot().context as AgentContext | CaseContext;
      if (cell.kind === 'agent' && (ctx as AgentContext).effect) continue;
      this.drop(cell);
      this.stats.evicted++;
    }
  }

  async spawn(kind: ActorKind, id: string, model: LoadedModel, input: unknown): Promise<Ack> {
    if (this.stopped) throw new RuntimeStoppedError();
    if (this.#owns && !this.#owns(id)) throw new ActorMovedError(id, null);
    const existing = await this.cell(id);
    // Checked again after the await: a concurrent start of the same id may have created it meanwhile
    // (both found nothing in the store), and the id must name one actor (idempotent starts rely on it).
    if (existing || this.cells.has(id)) throw new ActorExistsError(id);
    const machine = kind === 'agent' ? this.#machines.get(model.name)! : reviewCaseMachine;
    const inspect = this.#inspect && ((e: InspectionEvent) => this.#inspect!(e, id));
    const actor = createActor(machine, {
      input: input as never,
      clock: this.clock as never,
      ...(inspect ? { inspect } : {}),
    });
    actor.subscribe({ error: () => undefined });
    actor.start();
    const snap = actor.getSnapshot();
    if (snap.status === 'error') throw new ActorCrashedError(id, snap.error);
    const cell: Cell = {
      id,
      kind,
      model,
      actor,
      seq: 0,
      timers: {},
      dispatched: null,
      pending: 0,
      checkpointSeq: 0,
      liveHot: undefined,
    };
    this.cells.set(id, cell);
    this.#touch(id);
    return this.#commitTransition(cell, { type: 'xstate.init', at: this.clock.now(), input }, undefined, undefined);
  }

  /** Sends a runtime event (effect result, timer, case resolution) to an actor. */
  async send(actorId: string, event: AgentEvent | CaseEvent): Promise<Ack> {
    const cell = await this.cell(actorId);
    if (!cell) throw new ActorNotFoundError(actorId);
    if (!('actor' in cell))
      throw new EventRejectedError(actorId, event.type, cell.state, `the actor has finished (${cell.state})`);
    return this.apply(cell, event);
  }

  async apply(cell: Cell, event: AgentEvent | CaseEvent, commandId?: string): Promise<Ack> {
    if (this.stopped) throw new RuntimeStoppedError();
    const before = cell.actor.getSnapshot();
    if (!before.can(event)) {
      this.stats.rejected++;
      throw this.#rejection(cell, stateString(before.value), before.context, event);
    }
    if (cell.kind === 'agent' && event.type === 'case.resolved')
      event = samePlan(event, (before.context as AgentContext).plan);
    cell.actor.send(event);
    const after = cell.actor.getSnapshot();
    if (after.status === 'error') {
      const error = after.error;
      cell.actor.stop();
      this.cells.delete(cell.id);
      this.#lru.delete(cell.id);
      this.supervision.onCrash(cell.id, cell.kind, cell.model.name, error, event as unknown as RuntimeEvent);
      throw new ActorCrashedError(cell.id, error);
    }
    const prev = before.context as AgentContext | CaseContext;
    return this.#commitTransition(
      cell,
      event as unknown as RuntimeEvent,
      prev,
      commandId,
      this.#telemetry ? stateString(before.value) : null,
    );
  }

  #rejection(cell: Cell, state: string, context: unknown, event: AgentEvent | CaseEvent): HandoffError {
    if (cell.kind === 'case') {
      const why = explainCaseRejection(state, context as CaseContext, event as CaseEvent);
      if (why?.forbidden)
        return new UnauthorizedError(`${cell.id}: ${why.reason}`, {
          actorId: cell.id,
          rule: why.rule,
          eventType: event.type,
        });
      if (why) return new EventRejectedError(cell.id, event.type, state, why.reason, why.rule);
    }
    return new EventRejectedError(cell.id, event.type, state, 'no transition accepts it (stale or out of order)');
  }

  async #commitTransition(
    cell: Cell,
    event: RuntimeEvent,
    prev: AgentContext | CaseContext | undefined,
    commandId: string | undefined,
    from: string | null = null,
  ): Promise<Ack> {
    this.#busy++;
    try {
      const built = buildCommit({
        cell,
        event,
        prev,
        commandId,
        channels: this.outbox.channels,
        journalTail: !!this.store.journalTail,
        log: this.log,
      });
      const { ctx, seq, state, status, outbox } = built;
      cell.seq = seq;
      if (built.checkpoint) cell.checkpointSeq = seq;
      cell.liveHot = status === 'active' ? built.hot : undefined;
      cell.timers = { ...built.timers };
      this.stats.events++;
      const durable = this.store.commit(built.commit);
      // Perception and planning only read: nothing outside the process sees them, and after a crash
      // they simply run again. They may start while their request is being written; effects that
      // the world can see (execute, compensate) wait for durability below. Opening a case writes
      // only to this store: where commits are durable in the order they are made, the case's first
      // commit cannot be durable before this one, so it may start now too (see docs/durability.md).
      if (cell.kind === 'agent') {
        const effect = (ctx as AgentContext).effect;
        const early =
          effect &&
          (effect.kind === 'perceive' ||
            effect.kind === 'plan' ||
            (effect.kind === 'openCase' && this.store.orderedCommits));
        if (effect && early && effect.id !== cell.dispatched) {
          cell.dispatched = effect.id;
          this.effects.run(cell, ctx as AgentContext, effect);
        }
      }
      const early =
        cell.kind === 'case' && status === 'done' && this.store.orderedCommits
          ? outbox.filter((m) => this.outbox.deliverEarly(m, durable))
          : [];
      cell.pending++;
      try {
        await durable;
      } catch (err) {
        // The in-memory actor ran ahead of the store: drop it and restart it from what is durable.
        this.stats.storeFailures++;
        if (this.cells.get(cell.id) === cell) {
          this.drop(cell);
          this.scheduleRestart(cell.id, 'store write failed');
        }
        throw err;
      } finally {
        cell.pending--;
      }
      this.#release(cell, ctx, early.length ? outbox.filter((m) => !early.includes(m)) : outbox, {
        event: event.type,
        at: event.at,
        state,
        seq,
        status,
      });
      if (this.#telemetry) {
        try {
          this.#telemetry({
            id: cell.id,
            kind: cell.kind,
            model: cell.model.name,
            seq,
            at: event.at,
            event: event.type,
            state,
            status,
            from,
            data: event,
            context: ctx,
          });
        } catch (err) {
          this.log.error({ err }, 'telemetry hook threw');
        }
      }
      if (status === 'done') this.drop(cell);
      this.#passivate();
      return { actorId: cell.id, seq, state, status };
    } finally {
      this.settle();
    }
  }

  /** Consequences of a durable transition: effect, timers, deliveries, notices. */
  #release(cell: Cell, ctx: AgentContext | CaseContext, outbox: OutboxMessage[], notice?: Notice): void {
    if (cell.kind === 'agent') {
      const effect = (ctx as AgentContext).effect;
      const current = (cell.actor.getSnapshot().context as AgentContext).effect;
      if (effect && effect.id !== cell.dispatched && current?.id === effect.id) {
        cell.dispatched = effect.id;
        this.effects.run(cell, ctx as AgentContext, effect);
      }
    }
    for (const [name, dueAt] of Object.entries((ctx.timers ?? {}) as Timers))
      if (dueAt !== undefined) this.timers.schedule({ actorId: cell.id, name, dueAt });
    for (const msg of outbox) this.outbox.deliver(msg);
    if (notice) this.#notify(cell, ctx, notice);
  }

  /**
   * A durable transition's notice: in-process listeners (read models such as the console's queue)
   * hear it now, before the caller's acknowledgement, so whoever awaited a command reads its effect;
   * the events and queue subjects get it once the acknowledgement has gone out ({@link #publishLater}).
   */
  #notify(cell: Cell, ctx: AgentContext | CaseContext, n: Notice): void {
    const notice: TransitionNotice = { id: cell.id, kind: cell.kind, model: cell.model.name, ...n };
    if (cell.kind === 'case') {
      notice.queue = caseQueueOf(ctx as CaseContext);
      this.#publishLater(this.#subjects.queue(subjectToken(notice.queue.queue)), notice);
    }
    this.#publishLater(this.#subjects.events(cell.kind, subjectToken(cell.id)), notice);
    for (const l of this.listeners) {
      try {
        l(notice);
      } catch (err) {
        this.log.error({ err }, 'transition listener threw');
      }
    }
  }

  /**
   * Publishes a notice after the reply to the command that caused it: the reply is sent in the
   * promise reactions that follow the commit's durability; the notices right after a reply, in the
   * same socket write, where the transport offers it (`afterReply`, NATS), else in the check phase of
   * the same turn of the event loop (`setImmediate`); in commit order either way. Notices were already
   * best effort and published only once durable (G1); now the requester's acknowledgement no longer
   * waits for them (issue 23). Counted as work, so `whenIdle` and `close` wait for them.
   */
  #publishLater(subject: string, notice: TransitionNotice): void {
    if (this.#notices.length === 0) {
      this.begin();
      const publish = () => {
        const batch = this.#notices;
        this.#notices = [];
        for (const [s, n] of batch) {
          try {
            this.transport.publish(s, n);
          } catch (err) {
            // Outside the command's promise now: a failed publish is logged, and the rest still go out.
            this.log.error({ err, subject: s }, 'publishing a transition notice failed');
          }
        }
        this.settle();
      };
      if (this.transport.afterReply) this.transport.afterReply(publish);
      else setImmediate(publish);
    }
    this.#notices.push([subject, notice]);
  }

  #fireTimer(t: TimerEntry): void {
    this.#busy++;
    const event = { type: `timer.${t.name}`, dueAt: t.dueAt, at: this.clock.now() };
    this.send(t.actorId, event as AgentEvent | CaseEvent)
      .catch(async (err: unknown) => {
        if (err instanceof EventRejectedError || err instanceof RuntimeStoppedError || isNotMine(err)) return;
        if (err instanceof ActorRestartingError) this.timers.schedule(t, this.clock.now() + err.retryAfterMs + 1);
        else if (err instanceof ActorSuspendedError)
          await this.deadLetter(t.actorId, event, err.message, err.code).catch(() => undefined);
        else if (err instanceof HandoffError && err.code === 'store.write_failed') {
          // The actor restarts from its durable snapshot and re-arms this timer itself.
          this.log.debug({ actor: t.actorId, timer: t.name }, 'timer delivery hit a failed write');
        } else if (!(err instanceof ActorCrashedError))
          this.log.error({ actor: t.actorId, timer: t.name, err }, 'timer delivery failed');
      })
      .finally(() => this.settle());
  }
}

/**
 * A resolution whose plan is the agent's own plan, unchanged (an approval), carries the agent's plan
 * object rather than the case's copy of it: the agent's stored form then refers to the plan it has
 * stored already instead of storing it again (record-codec.ts knows stored objects by identity).
 */
function samePlan(event: AgentEvent | CaseEvent, plan: AgentContext['plan']): AgentEvent | CaseEvent {
  const resolution = (event as Extract<AgentEvent, { type: 'case.resolved' }>).resolution;
  if (!plan || !resolution?.plan || resolution.plan === plan || !sameJson(resolution.plan, plan)) return event;
  return { ...event, resolution: { ...resolution, plan } } as AgentEvent;
}

/** Deep equality of JSON values (plain objects, arrays, primitives). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (
    typeof a !== 'object' ||
    typeof b !== 'object' ||
    a === null ||
    b === null ||
    Array.isArray(a) !== Array.isArray(b)
  )
    return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka)
    if (!Object.hasOwn(b, k) || !sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
      return false;
  return true;
}
