import { randomBytes } from 'node:crypto';
import { parseTraceparent, type TraceContext } from '../contracts/envelope.ts';
import { createActor, type Actor, type AnyMachineSnapshot, type AnyStateMachine, type InspectionEvent, type StateValue } from 'xstate';
import pino, { type Logger } from 'pino';
import { perceive } from '../actors/perceivers/perceive.ts';
import { rulePlanner, type Planner } from '../actors/planners/planner.ts';
import { executeOnce } from '../actors/executors/execute.ts';
import { stepContext } from '../actors/step-context.ts';
import {
  ActorCrashedError,
  ActorRestartingError,
  ActorSuspendedError,
  ActorExistsError,
  ActorNotFoundError,
  ConflictError,
  EffectError,
  EventRejectedError,
  HandoffError,
  RuntimeStoppedError,
  UnauthorizedError,
} from '../contracts/errors.ts';
import { CaseInput } from '../contracts/review-case.ts';
import { ReviewerCommand } from '../contracts/reviewer-command.ts';
import { parseContract } from '../contracts/parse.ts';
import { agentMachineFor, type AgentContext, type AgentEvent } from '../machines/agent.ts';
import type { EffectRequest, Timers } from '../machines/effects.ts';
import { explainCaseRejection, reviewCaseMachine, currentTier, type CaseContext, type CaseEvent } from '../machines/review-case.ts';
import type { EffectFence, World } from '../models/define.ts';
import type { LoadedModel } from '../models/loader.ts';
import { MemoryTransport } from '../transport/memory-transport.ts';
import { subjects, subjectToken, type Transport } from '../transport/transport.ts';
import type { AuditDraft } from './audit-log.ts';
import { systemClock, type Clock } from './clock.ts';
import type { ActorKind, ActorRecord, Commit, DeadLetter, JournalEntry, OutboxMessage, Store, TimerEntry } from './store.ts';
import { TimerService } from './timer-service.ts';
import { createLogger } from './logger.ts';
import { ActorMovedError, isNotMine } from '../contracts/cluster-errors.ts';
import type { Ack } from '../contracts/ack.ts';
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker.ts';
import { maybeFail, type FaultSpec } from './faults.ts';
import { drawFor } from './rng.ts';
import { Supervisor, type SupervisionStrategy } from './supervisor.ts';
import type { GateDecision } from '../contracts/gate-decision.ts';
import type { TierSpec } from '../contracts/review-case.ts';

/** Options of {@link Runtime.open}. */
export interface RuntimeOptions {
  store: Store;
  /** The outside world actions act on (the pilots use the simulated {@link LevelWorld}). */
  world: World;
  models: LoadedModel[];
  /** @default systemClock */
  clock?: Clock;
  /** @default a pino logger at `warn`, with sensitive fields of every model redacted */
  logger?: Logger;
  /** @default a new {@link MemoryTransport} (the embedded default) */
  transport?: Transport;
  /** Namespace of subjects on the transport. @default 'default' */
  namespace?: string;
  /** Seed for the stable draws handed to models (simulated failures). @default 'handoff' */
  seed?: string;
  /** Planner per model name. @default the model's rule-based planner */
  planners?: Record<string, Planner>;
  /**
   * Replaces a model's gate (e.g. a gate that tightens when reviewers keep overriding the agent).
   * @default the model's policy gate, `model.gate`
   */
  gateFor?: (model: LoadedModel) => LoadedModel['gate'];
  /** Transient failures injected into perceive / plan / execute / compensate (tests, `--faults`). */
  faults?: FaultSpec;
  /** Restart strategy per actor kind. @default see {@link DEFAULT_STRATEGY} */
  supervision?: Partial<Record<ActorKind, Partial<SupervisionStrategy>>>;
  /** Circuit breaker per action type. @default 5 consecutive failures, 30 s cool-down */
  circuitBreaker?: CircuitBreakerOptions;
  /**
   * Passivation: at most this many actors stay in memory; idle ones beyond it are evicted and
   * rehydrated from the store on their next message or timer. A resident actor takes some 30-40 KB
   * of heap. @default 10000
   */
  maxResident?: number;
  /**
   * Timers due within this horizon (clock ms) are held in memory; later ones stay in the store's
   * timer index and are loaded as the horizon moves. @default 60000
   */
  timerHorizonMs?: number;
  /** XState's inspection events of every hosted actor, with its id (the inspector's stream, `src/inspect`). */
  inspect?: (event: InspectionEvent, actorId: string) => void;
  /** Told of every durable transition, with the state it left and the whole event (tracing and metrics, `src/telemetry`). */
  telemetry?: (t: TransitionTelemetry) => void;
  /**
   * Cluster hook (`src/cluster`): whether this node hosts the actor now (it holds the lease of the
   * actor's group). An actor this node does not own is never loaded or spawned here; the attempt
   * fails with `actor.moved`. @default every actor
   */
  owns?: (actorId: string) => boolean;
  /**
   * Cluster hook (`src/cluster`): effect fencing. `token` is the fencing token (lease revision) under
   * which an effect is dispatched, captured at dispatch; `check` throws (`lease.lost`) when this node
   * can no longer prove it holds the actor's lease under that token. Execute and compensate effects
   * check it before the ledger lookup and at every application (`EffectFence`). @default none
   */
  fencing?: { token(actorId: string): number | undefined; check(actorId: string, token: number): void };
  /**
   * Destinations outside the actor system for outbox messages (webhooks: `src/notify`). What a
   * channel adds to a transition is written in the same commit and delivered at least once.
   * @default none
   */
  channels?: OutboxChannel[];
}

/** A transition as an {@link OutboxChannel} sees it, before it is written. */
export interface ChannelTransition {
  id: string;
  kind: ActorKind;
  model: LoadedModel;
  seq: number;
  event: { type: string; at: number; [k: string]: unknown };
  state: string;
  status: ActorRecord['status'];
  /** The context before the event (undefined at creation) and after it. */
  prev: AgentContext | CaseContext | undefined;
  context: AgentContext | CaseContext;
}

/**
 * A destination outside the actor system for outbox messages (webhooks, `src/notify`). The messages
 * it adds to a commit are written atomically with the transition, handed to `deliver` once durable,
 * and handed again at every start until the channel removes them with `store.ackOutbox`.
 */
export interface OutboxChannel {
  /** Outbox messages whose `to` starts with this belong to the channel, e.g. `webhook:`. */
  readonly prefix: string;
  /** Messages to write with this transition. It runs on the write path: quick, and it must not throw. */
  messagesFor(t: ChannelTransition): OutboxMessage[];
  deliver(msg: OutboxMessage): void;
  /** Delivers one of the channel's dead letters again; throws when it still cannot be delivered. */
  replay(letter: DeadLetter): Promise<void>;
}

/** What a caller gets back once an event is durable (declared in contracts/, where the client needs it). */
export type { Ack } from '../contracts/ack.ts';

export interface ActorView {
  id: string;
  kind: ActorKind;
  model: string;
  seq: number;
  state: string;
  status: ActorRecord['status'];
  context: AgentContext | CaseContext;
}

/** Published on every durable transition, and to in-process listeners. */
export interface TransitionNotice {
  id: string;
  kind: ActorKind;
  model: string;
  seq: number;
  at: number;
  event: string;
  state: string;
  status: ActorRecord['status'];
  /** For cases: what a queue view needs. */
  queue?: { queue: string; roles: string[]; tier: number; priority: number; claimedBy: string | null; ackDueAt?: number; resolveDueAt?: number; openedAt: number };
}

/** What {@link RuntimeOptions.telemetry} is told: the notice, the state left (null at creation), the event, the context after it. */
export interface TransitionTelemetry extends TransitionNotice {
  from: string | null;
  data: { type: string; at: number; [k: string]: unknown };
  context: AgentContext | CaseContext;
}

interface Cell {
  id: string;
  kind: ActorKind;
  model: LoadedModel;
  actor: Actor<AnyStateMachine>;
  seq: number;
  /** Timers as last committed. */
  timers: Timers;
  /** Id of the effect last dispatched, so it is dispatched once. */
  dispatched: string | null;
  /** Commits and effects of this actor in progress; a busy actor is never passivated. */
  pending: number;
  /** Seq of the last commit that rewrote the actor's record (its snapshot); later ones are journal only. */
  checkpointSeq: number;
  /** The hot flag of the live-index entry as last written; undefined: unknown, write it with the next commit. */
  liveHot: boolean | undefined;
}

const NO_CONTEXT = {};
/**
 * What `actor.getPersistedSnapshot()` returns, without XState's walk of the whole context for actor
 * refs to replace (it visits every nested object of the observation, the plan, the decision... on
 * every checkpoint: 5 to 7% of the CPU of a HITL cycle). The walk returns the context itself when
 * it finds no ref, and the runtime's machines spawn no children and hold data only in their context
 * (zod-checked inputs and events), so the result is the same; an actor that has children takes
 * XState's own path. Everything else (history, output, error) is still XState's.
 */
export function persistedSnapshot(logic: AnyStateMachine, snap: AnyMachineSnapshot): unknown {
  if (Object.keys(snap.children).length > 0) return logic.getPersistedSnapshot(snap);
  const persisted = logic.getPersistedSnapshot({ ...snap, context: NO_CONTEXT } as never) as unknown as { context: unknown };
  persisted.context = snap.context;
  return persisted;
}

/**
 * An agent with an effect in flight is rebuilt from its record plus at most this many journal
 * entries: its commits between rest points write the journal entry only (see docs/durability.md).
 */
const MAX_JOURNAL_TAIL = 8;

function stateString(value: StateValue): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([k, v]) => (v === undefined ? k : `${k}.${stateString(v)}`))
    .join(',');
}

type RuntimeEvent = { type: string; at: number; [k: string]: unknown };

const FINAL_CASE_STATES = new Set(['approved', 'modified', 'rejected', 'expired']);

/**
 * The actor system of one node: hosts agent episodes and review cases as XState actors, by id.
 *
 * Write-ahead: an event is applied in memory, then its journal entry and the new snapshot are
 * committed; only when that commit is durable are its consequences released: the caller's
 * acknowledgement, the requested effect, the timers, messages to other actors and published notices.
 * A crash at any point therefore leaves the store at a state from which the same consequences follow.
 */
export class Runtime {
  readonly store: Store;
  readonly world: World;
  readonly clock: Clock;
  readonly log: Logger;
  readonly transport: Transport;
  readonly namespace: string;
  readonly models: ReadonlyMap<string, LoadedModel>;
  #seed: string;
  #planners: Record<string, Planner>;
  #machines = new Map<string, { agent: AnyStateMachine }>();
  #cells = new Map<string, Cell>();
  #loading = new Map<string, Promise<Cell | ActorRecord | undefined>>();
  #timers: TimerService;
  #subjects: ReturnType<typeof subjects>;
  #recentCommands = new Set<string>();
  #listeners = new Set<(n: TransitionNotice) => void>();
  #busy = 0;
  #idleWaiters: (() => void)[] = [];
  #faults: FaultSpec | undefined;
  #breakers = new Map<string, CircuitBreaker>();
  #breakerOpts: CircuitBreakerOptions;
  #supervisor: Supervisor;
  #maxResident: number;
  /** Actors recently used, oldest first (Map keeps insertion order; touching re-inserts). */
  #lru = new Map<string, true>();
  #stopped = false;
  #ownsTransport: boolean;
  #inspect: RuntimeOptions['inspect'];
  #telemetry: RuntimeOptions['telemetry'];
  #channels: OutboxChannel[];
  /** Counters for progress displays and benchmarks. */
  readonly stats = { events: 0, effects: 0, rejected: 0, crashes: 0, restarts: 0, restored: 0, evicted: 0, rehydrated: 0, deadLetters: 0, storeFailures: 0 };

  /** Cluster hook: see {@link RuntimeOptions.owns}. */
  #owns: ((actorId: string) => boolean) | undefined;
  #fencing: RuntimeOptions['fencing'];

  private constructor(opts: RuntimeOptions) {
    this.store = opts.store;
    this.world = opts.world;
    this.clock = opts.clock ?? systemClock;
    this.models = new Map(opts.models.map((m) => [m.name, m]));
    this.log = opts.logger ?? createLogger({ models: opts.models });
    this.#ownsTransport = !opts.transport;
    this.transport = opts.transport ?? new MemoryTransport();
    this.namespace = opts.namespace ?? 'default';
    this.#subjects = subjects(this.namespace);
    this.#seed = opts.seed ?? 'handoff';
    this.#planners = opts.planners ?? {};
    for (const m of opts.models) {
      const gate = opts.gateFor?.(m) ?? m.gate;
      this.#machines.set(m.name, { agent: agentMachineFor({ gate, onExpiry: m.config.policy.onExpiry, freshness: m.config.freshness }) });
    }
    this.#faults = opts.faults;
    this.#inspect = opts.inspect;
    this.#telemetry = opts.telemetry;
    this.#channels = opts.channels ?? [];
    this.#owns = opts.owns;
    this.#fencing = opts.fencing;
    this.#breakerOpts = opts.circuitBreaker ?? {};
    this.#maxResident = opts.maxResident ?? 10_000;
    this.#supervisor = new Supervisor(this.clock, opts.supervision);
    // A failed batch: drop the affected actors at once, before another event can build on state that
    // was never written, and restart each from what is durable.
    this.store.onBatchFailed = (ids) => {
      for (const id of ids) {
        const cell = this.#cells.get(id);
        if (!cell) continue;
        cell.actor.stop();
        this.#cells.delete(id);
        this.#lru.delete(id);
        this.#scheduleRestart(id, 'store write failed');
      }
    };
    this.#timers = new TimerService(this.clock, (t) => this.#fireTimer(t), {
      horizonMs: opts.timerHorizonMs ?? 60_000,
      load: (until) => this.store.dueTimers(until),
      next: (after) => this.store.nextTimerAfter(after),
      work: { begin: () => void this.#busy++, end: () => this.#settle() },
    });
  }

  /** Opens the runtime on its store and restores every unfinished actor, effects and timers included. */
  static async open(opts: RuntimeOptions): Promise<Runtime> {
    const rt = new Runtime(opts);
    await rt.#recover();
    return rt;
  }

  async #recover(): Promise<void> {
    for (const [id, caseId] of Object.entries((await this.store.getMeta<Record<string, string>>('suspended')) ?? {})) this.#suspended.set(id, caseId);
    // Only actors with an effect in flight are loaded now; every other actor is rehydrated on its
    // next message or timer, so a node with many open cases is ready at once.
    const hot: string[] = [];
    for await (const entry of this.store.liveIndex()) if (entry.hot) hot.push(entry.id);
    for (const id of hot) {
      // A suspended actor waits for its operator; one that fails to restore is handled by its
      // supervisor (dead letters, operator case). Neither may keep the node from starting.
      if (this.#suspended.has(id)) continue;
      try {
        const cell = await this.#cell(id);
        if (cell && 'actor' in cell) this.stats.restored++;
      } catch (err) {
        this.log.error({ actor: id, err }, 'actor not restored at start');
      }
    }
    await this.#timers.start();
    for await (const msg of this.store.outbox()) this.#deliver(msg);
  }

  /** Builds a live actor from its record; throws if the snapshot is corrupt. */
  #restore(rec: ActorRecord, model: LoadedModel, checkpointSeq = rec.seq): Cell {
    const machine = rec.kind === 'agent' ? this.#machines.get(model.name)!.agent : reviewCaseMachine;
    const inspect = this.#inspect && ((e: InspectionEvent) => this.#inspect!(e, rec.id));
    const actor = createActor(machine, { snapshot: rec.snapshot as never, clock: this.clock as never, ...(inspect ? { inspect } : {}) });
    actor.subscribe({ error: () => undefined });
    actor.start();
    const snap = actor.getSnapshot();
    if (snap.status === 'error' || !snap.context) {
      actor.stop();
      throw new Error(`snapshot of ${rec.id} does not restore: ${String(snap.error ?? 'no context')}`);
    }
    const timers = { ...((snap.context as { timers?: Timers }).timers ?? {}) };
    return { id: rec.id, kind: rec.kind, model, actor, seq: rec.seq, timers, dispatched: null, pending: 0, checkpointSeq, liveHot: undefined };
  }

  /** Journal entries after an agent's durable record (commits that did not rewrite it); none for other actors. */
  async #tailOf(rec: ActorRecord): Promise<JournalEntry[]> {
    if (!this.store.journalTail || rec.kind !== 'agent' || rec.status !== 'active') return [];
    const tail: JournalEntry[] = [];
    for await (const e of this.store.journal(rec.id, rec.seq + 1)) if (e.seq > rec.seq) tail.push(e);
    return tail;
  }

  /**
   * The record as of the actor's last journal entry: its durable snapshot with the journal tail
   * replayed through the machine (machines are pure and every input is in the journal, so the replay
   * reaches exactly the state each entry recorded; a mismatch throws, like a corrupt snapshot).
   */
  #replay(rec: ActorRecord, tail: JournalEntry[]): ActorRecord {
    if (tail.length === 0) return rec;
    const machine = this.#machines.get(rec.model)?.agent;
    if (!machine) throw new Error(`cannot replay ${rec.id}: no model named '${rec.model}' is loaded`);
    const actor = createActor(machine, { snapshot: rec.snapshot as never, clock: this.clock as never });
    actor.subscribe({ error: () => undefined });
    actor.start();
    try {
      let seq = rec.seq;
      let at = rec.updatedAt;
      for (const e of tail) {
        if (e.seq !== seq + 1) throw new Error(`journal of ${rec.id} has a gap after seq ${seq}`);
        const before = actor.getSnapshot();
        if (before.status !== 'active' || !before.can(e.event as never)) throw new Error(`replaying ${rec.id}: seq ${e.seq} (${e.event.type}) is not accepted in ${stateString(before.value)}`);
        actor.send(e.event as never);
        const after = actor.getSnapshot();
        if (after.status === 'error') throw new Error(`replaying ${rec.id}: seq ${e.seq} (${e.event.type}) crashed: ${String(after.error)}`);
        const state = stateString(after.value);
        if (state !== e.state) throw new Error(`replaying ${rec.id}: seq ${e.seq} (${e.event.type}) reached ${state}, the journal says ${e.state}`);
        seq = e.seq;
        at = e.at;
      }
      const snap = actor.getSnapshot();
      return { ...rec, seq, state: stateString(snap.value), status: snap.status === 'done' ? 'done' : 'active', snapshot: persistedSnapshot(machine, snap), updatedAt: at };
    } finally {
      actor.stop();
    }
  }

  /** The durable record brought up to the journal (for reads of actors that are not resident). */
  async #currentRecord(id: string): Promise<ActorRecord | undefined> {
    const rec = await this.store.load(id);
    if (!rec) return undefined;
    const tail = await this.#tailOf(rec);
    try {
      return this.#replay(rec, tail);
    } catch (err) {
      this.log.warn({ actor: id, err }, 'journal tail does not replay; showing the last snapshot');
      return { ...rec, seq: tail.at(-1)?.seq ?? rec.seq };
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Public API
  // ------------------------------------------------------------------------------------------------

  /** Starts an agent episode on a signal, validated against the model's signal contract. */
  /**
   * Starts an episode. Its trace continues `opts.traceparent` (or a `traceparent` field of the raw
   * signal) when one is given and valid, else it is a new random trace; either way it is fixed in the
   * episode's snapshot, so every node, restart and review case traces into it.
   */
  async startEpisode(modelName: string, signal: unknown, opts: { episodeId: string; traceparent?: string }): Promise<Ack> {
    const model = this.#model(modelName);
    const carried = signal && typeof signal === 'object' && typeof (signal as { traceparent?: unknown }).traceparent === 'string' ? (signal as { traceparent: string }).traceparent : undefined;
    const parsed = parseContract(model.handlers.signal, signal, `${model.name}.signal`, 'signal');
    const input = { episodeId: opts.episodeId, model: model.name, signal: parsed, retry: model.config.retry, trace: traceContextOf(opts.traceparent ?? carried) };
    // Counted as work from the first await (the existence check reads the store), so a driver that
    // waits for idleness does not move a simulated clock past a start in progress.
    this.#busy++;
    try {
      return await this.#spawn('agent', opts.episodeId, model, input);
    } finally {
      this.#settle();
    }
  }

  /**
   * Opens a review case directly (cases normally open from an agent's gate). The input is parsed
   * with the CaseInput contract; its resolution is delivered to `input.episodeId`.
   */
  async openCase(input: unknown): Promise<Ack> {
    const parsed = parseContract(CaseInput, input, 'CaseInput');
    this.#busy++;
    try {
      return await this.#spawn('case', parsed.caseId, this.#model(parsed.model), parsed);
    } finally {
      this.#settle();
    }
  }

  /**
   * Opens an operator case about something that is not an episode (a drift alarm, a stuck
   * integration): a review case in the model's operator tier. When an operator decides it, the
   * handler registered for `target` with {@link onOperatorDecision} is called. Returns the case id.
   */
  async openOperatorCase(opts: { model: string; target: string; kind: string; rationale: string; ruleId: string; fields: Record<string, unknown> }): Promise<string> {
    const model = this.#model(opts.model);
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
    await this.#spawn('case', caseId, model, this.#operatorCaseInput(model, caseId, opts.target, observation, opts.rationale, opts.ruleId)).catch((err: unknown) => {
      if (!(err instanceof ActorExistsError)) throw err;
    });
    return caseId;
  }

  /** Handles operator decisions on cases opened with {@link openOperatorCase} for `target`. */
  onOperatorDecision(target: string, handler: (resolution: { outcome: string; caseId: string; decidedBy: string[]; reason?: string }) => Promise<void> | void): void {
    this.#operatorHandlers.set(target, handler);
  }

  /**
   * Applies a reviewer command, parsed with the contract at this boundary. Refusals are typed:
   * ContractError (bad field), ActorNotFoundError, UnauthorizedError (role, separation of duties,
   * four eyes), ConflictError (stale version), EventRejectedError (wrong state), `command.replayed`.
   */
  async command(input: unknown): Promise<Ack> {
    const cmd = parseContract(ReviewerCommand, input, 'ReviewerCommand');
    const replayed = () => new HandoffError('command.replayed', `command ${cmd.commandId} was already applied`, { commandId: cmd.commandId });
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
    if (await this.store.hasCommand(cmd.commandId)) throw new HandoffError('command.replayed', `command ${cmd.commandId} was already applied`, { commandId: cmd.commandId });
    const cell = await this.#cell(cmd.caseId);
    if (!cell || !('actor' in cell)) {
      if (cell) throw new EventRejectedError(cmd.caseId, cmd.type, cell.state, `the case is closed (${cell.state})`, 'case-closed');
      throw new ActorNotFoundError(cmd.caseId);
    }
    if (cell.kind !== 'case') throw new EventRejectedError(cmd.caseId, cmd.type, 'n/a', 'not a review case');
    if (cmd.expectedVersion !== undefined && cmd.expectedVersion !== cell.seq) throw new ConflictError(cmd.caseId, cmd.expectedVersion, cell.seq);
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
      case 'handoff.case.modify':
        event = { type: 'modify', ...base, actions: cell.model.editActions((cell.actor.getSnapshot().context as CaseContext).plan, cmd.actions), comment: cmd.comment.trim() };
        break;
      case 'handoff.case.reject':
        event = { type: 'reject', ...base, reason: cmd.reason.trim() };
        break;
      case 'handoff.case.escalate':
        event = { type: 'escalate', ...base, reason: cmd.reason.trim() };
        break;
    }
    // Ids of durable commands are in the store; the in-memory set only guards those in flight.
    if (this.#recentCommands.size > 100_000) this.#recentCommands.clear();
    return this.#apply(cell, event, cmd.commandId);
  }

  /** Sends a runtime event (effect result, timer, case resolution) to an actor. */
  async send(actorId: string, event: AgentEvent | CaseEvent): Promise<Ack> {
    const cell = await this.#cell(actorId);
    if (!cell) throw new ActorNotFoundError(actorId);
    if (!('actor' in cell)) throw new EventRejectedError(actorId, event.type, cell.state, `the actor has finished (${cell.state})`);
    return this.#apply(cell, event);
  }

  async get(actorId: string): Promise<ActorView | undefined> {
    const cell = this.#cells.get(actorId);
    if (cell) {
      const snap = cell.actor.getSnapshot();
      return { id: cell.id, kind: cell.kind, model: cell.model.name, seq: cell.seq, state: stateString(snap.value), status: snap.status, context: snap.context };
    }
    const rec = await this.#currentRecord(actorId);
    if (!rec) return undefined;
    const context = (rec.snapshot as { context: AgentContext | CaseContext }).context;
    return { id: rec.id, kind: rec.kind, model: rec.model, seq: rec.seq, state: rec.state, status: rec.status, context };
  }

  journal(actorId: string): AsyncIterable<JournalEntry> {
    return this.store.journal(actorId);
  }

  /** Listens to every durable transition on this node. */
  onTransition(listener: (n: TransitionNotice) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Events, effects and deliveries in progress. */
  get busy(): number {
    return this.#busy;
  }

  /** Actors resident in memory. */
  get resident(): number {
    return this.#cells.size;
  }

  /**
   * Cluster hook: this node took these actors over (placement, failover). Each is loaded from the
   * store (a pending effect is issued again, its timers are armed) and their undelivered outbox
   * messages are delivered.
   */
  async adopt(ids: Iterable<string>, outbox: Iterable<OutboxMessage> = []): Promise<void> {
    for (const id of ids) {
      try {
        await this.#cell(id);
      } catch (err) {
        if (!isNotMine(err)) this.log.warn({ actor: id, err }, 'an adopted actor did not load');
      }
    }
    for (const msg of outbox) this.#deliver(msg);
  }

  /** Cluster hook: this node no longer owns these actors; they leave memory without any write. */
  relinquish(ids: Iterable<string>): void {
    for (const id of ids) {
      const cell = this.#cells.get(id);
      if (!cell) continue;
      cell.actor.stop();
      this.#cells.delete(id);
      this.#lru.delete(id);
    }
  }

  /** Resolves when no event, effect or delivery is in progress (timers may still be pending). */
  whenIdle(): Promise<void> {
    if (this.#busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Appends audit entries outside an actor transition (logins, refused commands). */
  async audit(drafts: AuditDraft[]): Promise<void> {
    if (drafts.length === 0) return;
    await this.store.appendAudit(drafts);
  }

  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#timers.stop();
    await this.whenIdle();
    for (const cell of this.#cells.values()) cell.actor.stop();
    this.#cells.clear();
    await this.store.flush().catch((err: unknown) => this.log.error({ err }, 'final flush failed: what it held is redone from the journal on the next start'));
    if (this.#ownsTransport) await this.transport.close();
  }

  // ------------------------------------------------------------------------------------------------
  // Hosting
  // ------------------------------------------------------------------------------------------------

  #model(name: string): LoadedModel {
    const m = this.models.get(name);
    if (!m) throw new HandoffError('model.unknown', `no model named '${name}' is loaded (loaded: ${[...this.models.keys()].join(', ')})`, { model: name });
    return m;
  }

  /** The resident cell, or the record of a finished actor, or undefined. Loads passivated actors. */
  async #cell(id: string): Promise<Cell | ActorRecord | undefined> {
    const resident = this.#cells.get(id);
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
      const tail = await this.#tailOf(rec);
      const again = this.#cells.get(id);
      if (again) return again;
      if (this.#owns && !this.#owns(id)) throw new ActorMovedError(id, null);
      const restarting = this.#supervisor.restartingUntil(id);
      if (restarting !== undefined) throw new ActorRestartingError(id, restarting - this.clock.now());
      const suspended = this.#suspended.get(id);
      if (suspended) throw new ActorSuspendedError(id, suspended);
      let cell: Cell;
      try {
        cell = this.#restore(this.#replay(rec, tail), this.#model(rec.model), rec.seq);
      } catch (err) {
        this.#onCrash(id, rec.kind, rec.model, err, undefined);
        throw new ActorCrashedError(id, err);
      }
      this.#cells.set(id, cell);
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
    if (this.#cells.size <= this.#maxResident) return;
    for (const id of this.#lru.keys()) {
      if (this.#cells.size <= this.#maxResident) break;
      const cell = this.#cells.get(id);
      if (!cell) {
        this.#lru.delete(id);
        continue;
      }
      if (cell.pending > 0) continue;
      const ctx = cell.actor.getSnapshot().context as AgentContext | CaseContext;
      if (cell.kind === 'agent' && (ctx as AgentContext).effect) continue;
      cell.actor.stop();
      this.#cells.delete(id);
      this.#lru.delete(id);
      this.stats.evicted++;
    }
  }

  async #spawn(kind: ActorKind, id: string, model: LoadedModel, input: unknown): Promise<Ack> {
    if (this.#stopped) throw new RuntimeStoppedError();
    if (this.#owns && !this.#owns(id)) throw new ActorMovedError(id, null);
    const existing = await this.#cell(id);
    // Checked again after the await: a concurrent start of the same id may have created it meanwhile
    // (both found nothing in the store), and the id must name one actor (idempotent starts rely on it).
    if (existing || this.#cells.has(id)) throw new ActorExistsError(id);
    const machine = kind === 'agent' ? this.#machines.get(model.name)!.agent : reviewCaseMachine;
    const inspect = this.#inspect && ((e: InspectionEvent) => this.#inspect!(e, id));
    const actor = createActor(machine, { input: input as never, clock: this.clock as never, ...(inspect ? { inspect } : {}) });
    actor.subscribe({ error: () => undefined });
    actor.start();
    const snap = actor.getSnapshot();
    if (snap.status === 'error') throw new ActorCrashedError(id, snap.error);
    const cell: Cell = { id, kind, model, actor, seq: 0, timers: {}, dispatched: null, pending: 0, checkpointSeq: 0, liveHot: undefined };
    this.#cells.set(id, cell);
    this.#touch(id);
    return this.#commitTransition(cell, { type: 'xstate.init', at: this.clock.now(), input }, undefined, undefined);
  }

  async #apply(cell: Cell, event: AgentEvent | CaseEvent, commandId?: string): Promise<Ack> {
    if (this.#stopped) throw new RuntimeStoppedError();
    const before = cell.actor.getSnapshot();
    if (!before.can(event)) {
      this.stats.rejected++;
      throw this.#rejection(cell, stateString(before.value), before.context, event);
    }
    cell.actor.send(event);
    const after = cell.actor.getSnapshot();
    if (after.status === 'error') {
      const error = after.error;
      cell.actor.stop();
      this.#cells.delete(cell.id);
      this.#lru.delete(cell.id);
      this.#onCrash(cell.id, cell.kind, cell.model.name, error, event as unknown as RuntimeEvent);
      throw new ActorCrashedError(cell.id, error);
    }
    return this.#commitTransition(cell, event as unknown as RuntimeEvent, before.context as AgentContext | CaseContext, commandId, this.#telemetry ? stateString(before.value) : null);
  }

  #rejection(cell: Cell, state: string, context: unknown, event: AgentEvent | CaseEvent): HandoffError {
    if (cell.kind === 'case') {
      const why = explainCaseRejection(state, context as CaseContext, event as CaseEvent);
      if (why?.forbidden) return new UnauthorizedError(`${cell.id}: ${why.reason}`, { actorId: cell.id, rule: why.rule, eventType: event.type });
      if (why) return new EventRejectedError(cell.id, event.type, state, why.reason, why.rule);
    }
    return new EventRejectedError(cell.id, event.type, state, 'no transition accepts it (stale or out of order)');
  }

  async #commitTransition(cell: Cell, event: RuntimeEvent, prev: AgentContext | CaseContext | undefined, commandId: string | undefined, from: string | null = null): Promise<Ack> {
    this.#busy++;
    try {
      const snap = cell.actor.getSnapshot();
      const ctx = snap.context as AgentContext | CaseContext;
      const seq = prev === undefined ? 0 : cell.seq + 1;
      const state = stateString(snap.value);
      const status = snap.status === 'done' ? 'done' : 'active';
      const hot = cell.kind === 'agent' && !!(ctx as AgentContext).effect;
      // The record (snapshot) is rewritten where the actor can rest: at creation, when it has no
      // effect in flight (awaiting a human, backing off, finished), and every MAX_JOURNAL_TAIL events.
      // In between (perceive → plan → act) only the journal entry is written: the effect in flight
      // makes the actor hot, so recovery rebuilds it from the record and the journal after it.
      const checkpoint = !this.store.journalTail || cell.kind !== 'agent' || seq === 0 || status !== 'active' || !hot || seq - cell.checkpointSeq >= MAX_JOURNAL_TAIL;
      const liveChanged = status !== 'active' || cell.liveHot !== hot;
      const persisted = checkpoint ? persistedSnapshot(cell.actor.logic, snap) : null;
      const timers = (ctx.timers ?? {}) as Timers;
      const timersSet: TimerEntry[] = [];
      const timersCleared: TimerEntry[] = [];
      // Every current deadline is (re)written to the index with each commit, not only the changed
      // ones: the index must hold what the durable snapshot holds even if an earlier write was lost.
      for (const [name, dueAt] of Object.entries(timers)) if (dueAt !== undefined) timersSet.push({ actorId: cell.id, name, dueAt });
      for (const [name, dueAt] of Object.entries(cell.timers)) if (dueAt !== undefined && timers[name] !== dueAt) timersCleared.push({ actorId: cell.id, name, dueAt });

      const outbox: OutboxMessage[] = [];
      if (cell.kind === 'case' && status === 'done') {
        const c = ctx as CaseContext;
        if (c.resolution) outbox.push({ id: `${cell.id}.resolution`, to: c.episodeId, event: { type: 'case.resolved', at: event.at, resolution: c.resolution } });
      }
      for (const channel of this.#channels) {
        try {
          outbox.push(...channel.messagesFor({ id: cell.id, kind: cell.kind, model: cell.model, seq, event, state, status, prev, context: ctx }));
        } catch (err) {
          this.log.error({ actor: cell.id, channel: channel.prefix, err }, 'outbox channel threw; its messages for this transition are lost');
        }
      }
      const outboxDone = event.type === 'case.resolved' ? [`${(event as unknown as { resolution: { caseId: string } }).resolution.caseId}.resolution`] : undefined;
      const audit = this.#auditFor(cell, prev, ctx, event, status);

      const record: ActorRecord = { id: cell.id, kind: cell.kind, model: cell.model.name, seq, status, state, snapshot: persisted, updatedAt: event.at };
      const commit: Commit = {
        hot,
        ...(checkpoint ? {} : { checkpoint: false }),
        ...(liveChanged ? {} : { liveChanged: false }),
        actor: record,
        journal: { seq, at: event.at, event, state },
        ...(timersSet.length ? { timersSet } : {}),
        ...(timersCleared.length ? { timersCleared } : {}),
        ...(outbox.length ? { outboxPut: outbox } : {}),
        ...(outboxDone ? { outboxDone } : {}),
        ...(audit.length ? { audit } : {}),
        ...(commandId ? { commandId } : {}),
      };
      cell.seq = seq;
      if (checkpoint) cell.checkpointSeq = seq;
      cell.liveHot = status === 'active' ? hot : undefined;
      cell.timers = { ...timers };
      this.stats.events++;
      const durable = this.store.commit(commit);
      // Perception and planning only read: nothing outside the process sees them, and after a crash
      // they simply run again. They may start while their request is being written; effects that
      // the world can see (execute, compensate, openCase) wait for durability below.
      if (cell.kind === 'agent') {
        const effect = (ctx as AgentContext).effect;
        if (effect && (effect.kind === 'perceive' || effect.kind === 'plan') && effect.id !== cell.dispatched) {
          cell.dispatched = effect.id;
          this.#runEffect(cell, ctx as AgentContext, effect);
        }
      }
      const early = cell.kind === 'case' && status === 'done' && this.store.orderedCommits ? outbox.filter((m) => this.#deliverEarly(m, durable)) : [];
      cell.pending++;
      try {
        await durable;
      } catch (err) {
        // The in-memory actor ran ahead of the store: drop it and restart it from what is durable.
        this.stats.storeFailures++;
        if (this.#cells.get(cell.id) === cell) {
          cell.actor.stop();
          this.#cells.delete(cell.id);
          this.#lru.delete(cell.id);
          this.#scheduleRestart(cell.id, 'store write failed');
        }
        throw err;
      } finally {
        cell.pending--;
      }
      this.#release(cell, ctx, early.length ? outbox.filter((m) => !early.includes(m)) : outbox, { event: event.type, at: event.at, state, seq, status });
      if (this.#telemetry) {
        try {
          this.#telemetry({ id: cell.id, kind: cell.kind, model: cell.model.name, seq, at: event.at, event: event.type, state, status, from, data: event, context: ctx });
        } catch (err) {
          this.log.error({ err }, 'telemetry hook threw');
        }
      }
      if (status === 'done') {
        cell.actor.stop();
        this.#cells.delete(cell.id);
        this.#lru.delete(cell.id);
      }
      this.#passivate();
      return { actorId: cell.id, seq, state, status };
    } finally {
      this.#settle();
    }
  }

  /** Consequences of a durable transition: effect, timers, deliveries, notices. */
  #release(cell: Cell, ctx: AgentContext | CaseContext, outbox: OutboxMessage[], notice?: { event: string; at: number; state: string; seq: number; status: ActorRecord['status'] }): void {
    if (cell.kind === 'agent') {
      const effect = (ctx as AgentContext).effect;
      const current = (cell.actor.getSnapshot().context as AgentContext).effect;
      if (effect && effect.id !== cell.dispatched && current?.id === effect.id) {
        cell.dispatched = effect.id;
        this.#runEffect(cell, ctx as AgentContext, effect);
      }
    }
    for (const [name, dueAt] of Object.entries((ctx.timers ?? {}) as Timers)) if (dueAt !== undefined) this.#timers.schedule({ actorId: cell.id, name, dueAt });
    for (const msg of outbox) this.#deliver(msg);
    if (notice) this.#notify(cell, ctx, notice);
  }

  #notify(cell: Cell, ctx: AgentContext | CaseContext, n: { event: string; at: number; state: string; seq: number; status: ActorRecord['status'] }): void {
    const notice: TransitionNotice = { id: cell.id, kind: cell.kind, model: cell.model.name, ...n };
    if (cell.kind === 'case') {
      const c = ctx as CaseContext;
      const tier = currentTier(c);
      notice.queue = {
        queue: tier.queue,
        roles: tier.roles,
        tier: c.tier,
        priority: tier.priority,
        claimedBy: c.claim?.reviewer ?? null,
        openedAt: c.openedAt,
        ...(c.timers.ack !== undefined ? { ackDueAt: c.timers.ack } : {}),
        ...(c.timers.resolve !== undefined ? { resolveDueAt: c.timers.resolve } : {}),
      };
      this.transport.publish(this.#subjects.queue(subjectToken(tier.queue)), notice);
    }
    this.transport.publish(this.#subjects.events(cell.kind, subjectToken(cell.id)), notice);
    for (const l of this.#listeners) {
      try {
        l(notice);
      } catch (err) {
        this.log.error({ err }, 'transition listener threw');
      }
    }
  }

  #settle(): void {
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

  #channelOf(to: string): OutboxChannel | undefined {
    return this.#channels.find((c) => to.startsWith(c.prefix));
  }

  #deliver(msg: OutboxMessage): void {
    // A channel's deliveries (webhooks) run on their own schedule, outside the runtime's work count.
    const channel = this.#channelOf(msg.to);
    if (channel) return channel.deliver(msg);
    this.#busy++;
    const operator = msg.event.type === 'case.resolved' && (msg.event as unknown as { resolution: { caseId: string } }).resolution.caseId.startsWith(`${msg.to}.operator-`);
    (operator ? this.#operatorDecision(msg) : this.send(msg.to, msg.event as unknown as AgentEvent))
      .catch(async (err: unknown) => {
        if (err instanceof ActorRestartingError) {
          // Deliver again once the target has restarted; the message stays in the outbox meanwhile.
          this.clock.setTimeout(() => this.#deliver(msg), err.retryAfterMs + 1);
        } else if (err instanceof EventRejectedError) {
          this.log.debug({ msg: msg.id, err: err.message }, 'outbox message no longer applies');
        } else if (err instanceof ActorNotFoundError || err instanceof ActorSuspendedError) {
          await this.#deadLetter(msg.to, msg.event as RuntimeEvent, err.message, err.code).catch(() => this.clock.setTimeout(() => this.#deliver(msg), 100));
        } else if (err instanceof ActorCrashedError || err instanceof RuntimeStoppedError || isNotMine(err)) {
          // A crash dead-letters the event that caused it; a stopping node redelivers on its next start;
          // an actor that moved to another node gets it from its new owner.
        } else {
          // A lost write: the message is still in the durable outbox; try again shortly.
          this.log.warn({ msg: msg.id, err }, 'outbox delivery failed; retrying');
          this.clock.setTimeout(() => this.#deliver(msg), 100);
        }
      })
      .finally(() => this.#settle());
  }

  /**
   * A case's resolution for an agent resident on this node is applied at once, without waiting for
   * the case's commit: the agent's commit (which also deletes the outbox message) is queued after the
   * case's, so it lands in the same batch or a later one and cannot be durable first; a failed batch
   * fails everything queued behind it, so both restart from what is durable. The agent's own
   * consequences (its next effect) still wait for its commit. If the agent does not take it now,
   * the message goes the usual way: delivered from the outbox once the case's commit is durable.
   * Only on stores with {@link Store.orderedCommits}.
   */
  #deliverEarly(msg: OutboxMessage, durable: Promise<void>): boolean {
    const target = this.#cells.get(msg.to);
    if (!target || target.kind !== 'agent' || msg.event.type !== 'case.resolved' || this.#channelOf(msg.to) || this.#stopped) return false;
    if ((msg.event as unknown as { resolution: { caseId: string } }).resolution.caseId.startsWith(`${msg.to}.operator-`)) return false;
    this.#busy++;
    this.send(msg.to, msg.event as unknown as AgentEvent)
      .catch((err: unknown) => {
        // Refused (stale) as the outbox delivery would be; otherwise deliver it from the outbox once
        // (and only if) the resolution is durable: never retry a resolution that may have been lost.
        if (!(err instanceof EventRejectedError)) void durable.then(() => this.#deliver(msg), () => undefined);
      })
      .finally(() => this.#settle());
    return true;
  }

  #fireTimer(t: TimerEntry): void {
    this.#busy++;
    const event = { type: `timer.${t.name}`, dueAt: t.dueAt, at: this.clock.now() };
    this.send(t.actorId, event as AgentEvent | CaseEvent)
      .catch(async (err: unknown) => {
        if (err instanceof EventRejectedError || err instanceof RuntimeStoppedError || isNotMine(err)) return;
        if (err instanceof ActorRestartingError) this.#timers.schedule(t, this.clock.now() + err.retryAfterMs + 1);
        else if (err instanceof ActorSuspendedError) await this.#deadLetter(t.actorId, event, err.message, err.code).catch(() => undefined);
        else if (err instanceof HandoffError && err.code === 'store.write_failed') {
          // The actor restarts from its durable snapshot and re-arms this timer itself.
          this.log.debug({ actor: t.actorId, timer: t.name }, 'timer delivery hit a failed write');
        } else if (!(err instanceof ActorCrashedError)) this.log.error({ actor: t.actorId, timer: t.name, err }, 'timer delivery failed');
      })
      .finally(() => this.#settle());
  }

  // ------------------------------------------------------------------------------------------------
  // Supervision and dead letters
  // ------------------------------------------------------------------------------------------------

  /** An actor crashed: dead-letter what crashed it, then restart it or escalate, by its strategy. */
  #onCrash(id: string, kind: ActorKind, model: string, error: unknown, poison: RuntimeEvent | undefined): void {
    this.stats.crashes++;
    const message = error instanceof Error ? error.message : String(error);
    this.log.error({ actor: id, event: poison?.type, err: error }, 'actor crashed');
    if (poison) void this.#deadLetter(id, poison, `crashed the actor: ${message}`, 'actor.crashed').catch((err: unknown) => this.log.error({ actor: id, err }, 'dead letter not written'));
    const decision = this.#supervisor.onCrash(id, kind);
    if (decision.action === 'restart') {
      this.#scheduleRestart(id, message, decision.delayMs);
      return;
    }
    this.#busy++;
    void this.#escalate(id, kind, model, message, decision.restarts)
      .catch((err: unknown) => this.log.error({ actor: id, err }, 'escalation failed'))
      .finally(() => this.#settle());
  }

  #restartTimers = new Set<string>();
  /** Suspended actors and the operator case deciding each; few, so kept in memory and in one meta key. */
  #suspended = new Map<string, string>();
  #operatorHandlers = new Map<string, (resolution: { outcome: string; caseId: string; decidedBy: string[]; reason?: string }) => Promise<void> | void>();

  /** Restarts an actor from its last durable snapshot after `delayMs` (a store failure, a crash). */
  #scheduleRestart(id: string, reason: string, delayMs = 0): void {
    if (this.#restartTimers.has(id) || this.#stopped) return;
    this.#restartTimers.add(id);
    // Counted as work only once it runs: a restart waiting out its backoff must not hold up a
    // simulated clock that waits for the runtime to be idle before it moves.
    const restart = () => {
      this.#busy++;
      this.#restartTimers.delete(id);
      this.#supervisor.restarted(id);
      this.stats.restarts++;
      // What the actor did in memory may still be on its way to disk: restart from what is durable.
      void this.store
        .flush()
        .then(() => this.#cell(id))
        .catch((err: unknown) => {
          if (err instanceof HandoffError && err.code === 'store.write_failed') this.#scheduleRestart(id, reason, 50);
          else if (!isNotMine(err)) this.log.error({ actor: id, err, reason }, 'restart failed');
        })
        .finally(() => this.#settle());
    };
    if (delayMs <= 0) queueMicrotask(restart);
    else this.clock.setTimeout(restart, delayMs);
  }

  /** Past its restart limit: suspend the actor and ask an operator, through a case, what to do. */
  async #escalate(id: string, kind: ActorKind, modelName: string, message: string, restarts: number): Promise<void> {
    const model = this.#model(modelName);
    const caseId = `${id}.operator-${Date.now().toString(36)}`;
    this.#suspended.set(id, caseId);
    await this.store.putMeta('suspended', Object.fromEntries(this.#suspended));
    const now = this.clock.now();
    const observation = {
      id: `${id}.crash`,
      kind: 'handoff.actor.crashed',
      subject: id,
      provenance: { source: 'handoff/supervisor', observedAt: new Date(now).toISOString(), transforms: [] },
      classification: 'internal' as const,
      dataClasses: ['internal' as const],
      fields: { actor: id, kind, crashes: restarts, error: message },
    };
    const input = this.#operatorCaseInput(model, caseId, id, observation, `The ${kind} ${id} crashed ${restarts} times (last: ${message}). Approve to resume it from its last snapshot; reject to stop it for good.`, 'supervision:restart-limit');
    await this.#spawn('case', caseId, model, input).catch((err: unknown) => {
      if (!(err instanceof ActorExistsError)) throw err;
    });
    await this.audit([{ at: now, kind: 'actor.suspended', actor: id, by: 'runtime', data: { operatorCase: caseId, crashes: restarts, error: message } }]);
  }

  #operatorCaseInput(model: LoadedModel, caseId: string, target: string, observation: unknown, rationale: string, ruleId: string): unknown {
    const tier: TierSpec = model.config.operator ?? { name: 'operator', queue: 'operators', roles: ['operator'], ackMs: 30 * 60_000, resolveMs: 4 * 3600_000, priority: 9, fourEyes: false };
    const decision: GateDecision = { outcome: 'review', ruleId, reasons: [rationale], tier: 1, riskScore: 1, confidence: 0, policyVersion: model.config.policy.version, rules: [] };
    return parseContract(
      CaseInput,
      {
        caseId,
        episodeId: target,
        model: model.name,
        tier: 1,
        tiers: [tier],
        leaseMs: model.config.review.leaseMs,
        plan: { id: `${caseId}.plan`, planner: 'handoff/supervisor', actions: [{ type: 'handoff.operator.decide', args: {} }], confidence: 0, rationale, risk: { score: 1, factors: [] }, citedInputs: [] },
        decision,
        observation,
        openedAt: this.clock.now(),
      },
      'CaseInput',
    );
  }

  /** An operator decided about a suspended actor: resume it, or stop it for good. */
  async #operatorDecision(msg: OutboxMessage): Promise<void> {
    const { resolution } = msg.event as unknown as { resolution: { outcome: string; caseId: string; decidedBy: string[]; reason?: string } };
    const id = msg.to;
    const handler = this.#operatorHandlers.get(id);
    if (handler) {
      await handler(resolution);
      await this.store.ackOutbox(msg.id);
      return;
    }
    this.#suspended.delete(id);
    await this.store.putMeta('suspended', Object.fromEntries(this.#suspended));
    const rec = await this.#currentRecord(id);
    if (resolution.outcome === 'approved' || resolution.outcome === 'modified') {
      this.#supervisor.reset(id);
      await this.audit([{ at: this.clock.now(), kind: 'actor.resumed', actor: id, by: resolution.decidedBy.join(',') || 'operator', data: { operatorCase: resolution.caseId } }]);
      await this.#cell(id);
    } else if (rec) {
      const ctx = (rec.snapshot as { context: Record<string, unknown> }).context;
      const stopped: ActorRecord = {
        ...rec,
        status: 'stopped',
        state: 'stopped',
        seq: rec.seq + 1,
        updatedAt: this.clock.now(),
        snapshot: { ...(rec.snapshot as object), context: { ...ctx, outcome: rec.kind === 'agent' ? 'failed' : ctx.outcome, error: { message: `stopped by operator (${resolution.caseId})`, code: 'actor.stopped', transient: false, phase: 'supervision' }, effect: null, timers: {} } },
      };
      const audit = [{ at: this.clock.now(), kind: 'actor.stopped', actor: id, by: resolution.decidedBy.join(',') || 'operator', data: { operatorCase: resolution.caseId } }];
      await this.store.commit({ actor: stopped, journal: { seq: stopped.seq, at: stopped.updatedAt, event: { type: 'handoff.operator.stop', caseId: resolution.caseId }, state: 'stopped' }, outboxDone: [msg.id], audit, timersCleared: Object.entries(((ctx.timers ?? {}) as Timers)).flatMap(([name, dueAt]) => (dueAt === undefined ? [] : [{ actorId: id, name, dueAt }])) });
      return;
    }
    await this.store.ackOutbox(msg.id);
  }

  async #deadLetter(actorId: string, event: RuntimeEvent, reason: string, code: string): Promise<void> {
    this.stats.deadLetters++;
    const at = this.clock.now();
    await this.store.putDeadLetter({ id: `${at.toString(36)}-${actorId}-${this.stats.deadLetters}`, at, actorId, event, reason, code });
  }

  /** Sends dead letters again; those delivered are removed. Returns how many were delivered. */
  async replayDeadLetters(filter: (id: string) => boolean = () => true): Promise<{ delivered: number; failed: { id: string; error: string }[] }> {
    let delivered = 0;
    const failed: { id: string; error: string }[] = [];
    const letters = [];
    for await (const d of this.store.deadLetters()) if (filter(d.id)) letters.push(d);
    for (const d of letters) {
      try {
        const channel = this.#channelOf(d.actorId);
        if (channel) await channel.replay(d);
        else await this.send(d.actorId, { ...d.event, at: this.clock.now() } as unknown as AgentEvent);
        await this.store.deleteDeadLetter(d.id);
        delivered++;
      } catch (err) {
        failed.push({ id: d.id, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return { delivered, failed };
  }

  // ------------------------------------------------------------------------------------------------
  // Effects
  // ------------------------------------------------------------------------------------------------

  #breaker(actionType: string): CircuitBreaker {
    let b = this.#breakers.get(actionType);
    if (!b) this.#breakers.set(actionType, (b = new CircuitBreaker(actionType, this.clock, this.#breakerOpts)));
    return b;
  }

  #runEffect(cell: Cell, ctx: AgentContext, effect: EffectRequest): void {
    this.#busy++;
    this.stats.effects++;
    cell.pending++;
    // The fencing token is the one held when the effect is dispatched (after its request is durable).
    const token = this.#fencing?.token(cell.id);
    const fencing = this.#fencing;
    const fence = fencing && token !== undefined ? { token, check: () => fencing.check(cell.id, token) } : undefined;
    void this.#performEffect(cell.model, ctx, effect, fence)
      .then((event) => this.send(cell.id, event))
      .catch((err: unknown) => {
        if (err instanceof EventRejectedError || err instanceof RuntimeStoppedError || err instanceof ActorCrashedError) return;
        // The result was lost (a store write failed, the actor is restarting): the restart re-issues
        // the effect from the durable snapshot, where it is still pending.
        // (Or this node may not write the actor now: the restart reloads it if it is still ours.)
        if (err instanceof HandoffError && (err.code === 'store.write_failed' || err instanceof ActorRestartingError || isNotMine(err))) {
          if (this.#cells.get(cell.id) === cell) {
            cell.actor.stop();
            this.#cells.delete(cell.id);
            this.#lru.delete(cell.id);
          }
          this.#scheduleRestart(cell.id, err.message, err instanceof ActorRestartingError ? err.retryAfterMs + 1 : 0);
          return;
        }
        this.log.error({ actor: cell.id, effect: effect.id, err }, 'effect result could not be delivered');
      })
      .finally(() => {
        cell.pending--;
        this.#settle();
      });
  }

  async #performEffect(model: LoadedModel, ctx: AgentContext, effect: EffectRequest, fence?: EffectFence): Promise<AgentEvent> {
    const key = `${ctx.episodeId}/${effect.kind}`;
    const failedType = { perceive: 'perceive.failed', plan: 'plan.failed', execute: 'action.failed', compensate: 'compensation.failed', openCase: 'plan.failed' } as const;
    try {
      switch (effect.kind) {
        case 'perceive': {
          maybeFail(this.#faults, 'perceive', drawFor(this.#seed, 'fault', effect.id));
          const observation = await perceive(model, ctx.episodeId, ctx.signal, stepContext(this.clock.now(), key, effect.attempt, this.#seed, traceparentOf(ctx.trace)));
          return { type: 'perceive.done', effectId: effect.id, observation, at: this.clock.now() };
        }
        case 'plan': {
          if (!ctx.observation) throw new EffectError('planning without an observation', { transient: false });
          maybeFail(this.#faults, 'plan', drawFor(this.#seed, 'fault', effect.id));
          const planner = this.#planners[model.name] ?? rulePlanner;
          const plan = await planner.plan(model, ctx.episodeId, ctx.observation, stepContext(this.clock.now(), key, effect.attempt, this.#seed, traceparentOf(ctx.trace)));
          return { type: 'plan.done', effectId: effect.id, plan, at: this.clock.now() };
        }
        case 'execute':
        case 'compensate': {
          const step = effect.step ?? 0;
          const compensation = effect.kind === 'compensate';
          const faultKind = compensation ? 'compensate' : 'execute';
          const { result } = await executeOnce(
            {
              model,
              world: this.world,
              ...(fence ? { fence } : {}),
              guard: (type, fn) =>
                this.#breaker(type).run(() => {
                  maybeFail(this.#faults, faultKind, drawFor(this.#seed, 'fault', effect.id));
                  return fn();
                }),
              plan: ctx.plan!,
              step,
              key: `${ctx.episodeId}/${step}${compensation ? '/compensate' : ''}`,
              attempt: effect.attempt,
              now: this.clock.now(),
              seed: this.#seed,
              original: compensation ? ctx.results[step] : undefined,
              ...(ctx.trace ? { traceparent: traceparentOf(ctx.trace) } : {}),
            },
            compensation,
          );
          return compensation
            ? { type: 'compensation.done', effectId: effect.id, at: this.clock.now() }
            : { type: 'action.done', effectId: effect.id, result: result ?? null, at: this.clock.now() };
        }
        case 'openCase': {
          const caseId = effect.caseId!;
          const existing = await this.store.load(caseId);
          if (!existing && !this.#cells.has(caseId) && effect.operator) {
            const step = effect.step ?? 0;
            const action = ctx.plan?.actions[step];
            const comp = action ? model.config.actions[action.type]?.compensation : null;
            const rationale = `Compensation of step ${step + 1} (${comp ?? 'n/a'} undoing ${action?.type ?? 'n/a'}) failed for good: ${ctx.error?.message ?? 'unknown error'}. Approve to retry the compensation; reject to stop with the effect standing (the episode ends failed).`;
            const input = this.#operatorCaseInput(model, caseId, ctx.episodeId, ctx.observation, rationale, 'saga:compensation-failed');
            await this.#spawn('case', caseId, model, input).catch((err: unknown) => {
              if (!(err instanceof ActorExistsError)) throw err;
            });
          } else if (!existing && !this.#cells.has(caseId)) {
            const input = parseContract(
              CaseInput,
              {
                caseId,
                episodeId: ctx.episodeId,
                model: model.name,
                tier: Math.max(1, ctx.decision?.tier ?? 1),
                tiers: model.config.review.tiers,
                leaseMs: model.config.review.leaseMs,
                ...(ctx.observation?.requestedBy ? { requestedBy: ctx.observation.requestedBy } : {}),
                plan: ctx.plan,
                ...(ctx.edits?.length ? { proposedPlan: ctx.proposedPlan ?? undefined, edits: ctx.edits } : {}),
                ...(ctx.trace ? { trace: ctx.trace } : {}),
                decision: ctx.decision,
                observation: ctx.observation,
                openedAt: this.clock.now(),
              },
              'CaseInput',
            );
            await this.#spawn('case', caseId, model, input).catch((err: unknown) => {
              if (!(err instanceof ActorExistsError)) throw err;
            });
          }
          return { type: 'case.opened', effectId: effect.id, caseId, at: this.clock.now() };
        }
      }
    } catch (err) {
      if (effect.kind === 'openCase' || isNotMine(err)) throw err;
      // Unknown errors and lost writes are worth retrying; a typed refusal is not.
      const transient = err instanceof EffectError ? err.transient : !(err instanceof HandoffError) || err.code === 'store.write_failed';
      const code = err instanceof HandoffError ? err.code : 'effect.error';
      const message = err instanceof Error ? err.message : String(err);
      return { type: failedType[effect.kind], effectId: effect.id, error: { message, code, transient }, at: this.clock.now() } as AgentEvent;
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Audit
  // ------------------------------------------------------------------------------------------------

  #auditFor(cell: Cell, prev: AgentContext | CaseContext | undefined, next: AgentContext | CaseContext, event: RuntimeEvent, status: string): AuditDraft[] {
    const out: AuditDraft[] = [];
    const at = event.at;
    if (cell.kind === 'agent') {
      const p = prev as AgentContext | undefined;
      const n = next as AgentContext;
      if (n.decision && n.decision !== p?.decision) {
        const d = n.decision;
        out.push({
          at,
          kind: 'gate.decision',
          actor: cell.id,
          by: 'runtime',
          data: {
            outcome: d.outcome,
            ruleId: d.ruleId,
            tier: d.tier,
            reasons: d.reasons,
            riskScore: d.riskScore,
            confidence: d.confidence,
            policyVersion: d.policyVersion,
            planId: n.plan?.id,
            actions: n.plan?.actions.map((a) => a.type),
            rationale: n.plan?.rationale,
            inputs: n.observation
              ? { observationId: n.observation.id, source: n.observation.provenance.source, observedAt: n.observation.provenance.observedAt, cited: n.plan?.citedInputs ?? [] }
              : null,
          },
        });
      }
      if (event.type === 'action.done' || event.type === 'compensation.done') {
        const step = event.type === 'action.done' ? (p?.step ?? 0) : (p?.compensateStep ?? 0);
        out.push({ at, kind: event.type === 'action.done' ? 'action.executed' : 'action.compensated', actor: cell.id, by: 'runtime', data: { key: `${n.episodeId}/${step}`, type: n.plan?.actions[step]?.type } });
      }
      if (status === 'done') out.push({ at, kind: 'episode.outcome', actor: cell.id, by: 'runtime', data: { outcome: n.outcome, caseIds: n.caseIds, error: n.error?.message ?? null } });
    } else {
      const n = next as CaseContext;
      const from = (prev as CaseContext | undefined)?.history.length ?? 0;
      for (const h of n.history.slice(from)) {
        // A modification is audited with what it changed and whose approvals it discarded, not only its note.
        const edit = h.kind === 'modified' ? n.edits?.at(-1) : undefined;
        const change = edit ? { diff: edit.diff, ...(edit.discardedApprovals ? { discardedApprovals: edit.discardedApprovals } : {}) } : {};
        // A lease that ran out is nobody's act: the runtime's, naming whose claim it ended.
        const lapsed = h.kind === 'lease-expired';
        out.push({ at: h.at, kind: `case.${h.kind}`, actor: cell.id, by: lapsed ? 'runtime' : (h.by ?? 'runtime'), data: { tier: h.tier, ...(h.note ? { note: h.note } : {}), ...(lapsed && h.by ? { holder: h.by } : {}), ...change } });
      }
    }
    return out;
  }
}

export { FINAL_CASE_STATES };

/** The W3C traceparent of an episode's root span, if it has a stored trace. */
function traceparentOf(trace: TraceContext | null | undefined): string | undefined {
  return trace ? `00-${trace.traceId}-${trace.spanId}-${trace.sampled === false ? '00' : '01'}` : undefined;
}

/** An episode's trace: continuing a valid W3C `traceparent`, or a new random trace. */
export function traceContextOf(traceparent: string | undefined): TraceContext {
  const p = parseTraceparent(traceparent);
  const spanId = randomHex(8);
  if (p && !/^0+$/.test(p.traceId) && !/^0+$/.test(p.spanId)) return { traceId: p.traceId, spanId, parentSpanId: p.spanId, sampled: p.sampled };
  return { traceId: randomHex(16), spanId };
}

function randomHex(bytes: number): string {
  for (;;) {
    const h = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(h)) return h;
  }
}
