import type { ActorRefLike, InspectionEvent, StateValue } from 'xstate';
import type { LoadedModel } from '../models/loader.ts';
import type { Subscription, Transport } from '../transport/transport.ts';
import { Redactor } from './redact.ts';

/** The kinds of actors a Handoff node hosts. */
export type InspectedKind = 'agent' | 'case';

/** A transition XState took, by the id the chart gives it (`<source>:<event>:<n>`, see graph.ts). */
export interface TakenTransition {
  edge: string;
  source: string;
  targets: string[];
}

/**
 * One inspection record on `handoff.<ns>.inspect.<actorId>`: XState's inspection events (actor
 * created, event received, snapshot after a macrostep with the microsteps' transitions), with
 * sensitive fields redacted before they leave the node.
 *
 * Detail: records of *focused* actors (those an inspector page or a Stately bridge watches, see
 * {@link focusSubject}) are full: every event with its payload, the context. Everyone else's are
 * light: actor and snapshot records with the event type, the state, the status; enough for live
 * lists and lit states, at a fraction of the cost. Either way a budget bounds the work (see {@link InspectionOptions}); what goes over it is
 * dropped and counted, never queued without bound. The durable journal remains the complete record.
 */
export interface InspectionRecord {
  v: 1;
  type: 'actor' | 'event' | 'snapshot';
  /** The actor's id (an episode id or a case id). */
  id: string;
  kind: InspectedKind;
  model: string;
  /** The node that hosts the actor. */
  node: string;
  /** Position in this node's stream (gaps mean records were dropped). */
  n: number;
  /** Clock time (the runtime's clock) the record was taken. */
  at: number;
  full: boolean;
  /** `event`: the event received; `snapshot`: the event that caused it. Redacted; `{type}` only when light. */
  event?: { type: string; [k: string]: unknown };
  /** `event`: the sender's actor id, when another actor sent it. */
  sourceId?: string | null;
  /** `actor` and `snapshot`: */
  value?: StateValue;
  state?: string;
  status?: string;
  context?: unknown;
  /** `snapshot`: the transitions taken (every microstep of the macrostep). */
  transitions?: TakenTransition[];
  /** `snapshot`: how many earlier snapshots of this actor were folded into this one (it kept their transitions). */
  coalesced?: number;
}

export interface InspectionStats {
  v: 1;
  node: string;
  at: number;
  recorded: number;
  published: number;
  dropped: number;
  /** Milliseconds spent on redaction and publishing since the stream started. */
  workMs: number;
  focused: number;
}

export interface InspectionOptions {
  models: readonly LoadedModel[];
  namespace?: string;
  /** The node's name in records. @default 'local' */
  node?: string;
  /** Time of records. @default Date.now */
  now?: () => number;
  /** Records published per second at most (all actors together). @default 2000 */
  maxPerSecond?: number;
  /**
   * Share of wall time the stream may spend redacting and publishing (the runtime's own work gets
   * the rest). @default 0.04
   */
  cpuShare?: number;
  /** Records are batched and published this often. @default 20 ms */
  flushMs?: number;
  /** Records waiting at most; beyond, new records are dropped. @default 20000 */
  maxQueue?: number;
  /** Publish every actor's records in full (for a Stately bridge of everything). @default false */
  focusAll?: boolean;
}

/** Inspectors ask for full records of some actors here: `{ ids: string[], ttlMs?: number }` (`'*'`: all). */
export const focusSubject = (ns: string) => `handoff.${ns}.inspector.focus`;
/** Once a second while active: {@link InspectionStats}. */
export const statsSubject = (ns: string) => `handoff.${ns}.inspector.stats`;
/** Records of one actor (the subject of docs/architecture.md). */
export const inspectSubject = (ns: string, id: string) => `handoff.${ns}.inspect.${id.replace(/[.*> ]/g, '_')}`;
export const inspectAll = (ns: string) => `handoff.${ns}.inspect.>`;

interface Pending {
  type: InspectionRecord['type'];
  id: string;
  ref: ActorRefLike;
  at: number;
  event?: { type: string };
  sourceId?: string | null;
  snapshot?: { value: StateValue; status: string; context: unknown };
  transitions?: TakenTransition[];
  coalesced?: number;
  done?: boolean;
}

interface TransitionDef {
  eventType: string;
  source: { id: string; transitions: Map<string, unknown[]>; always?: unknown[] };
  target?: { id: string }[];
}

function edgeId(t: TransitionDef): string {
  const list = t.eventType === '' ? (t.source.always ?? []) : (t.source.transitions.get(t.eventType) ?? []);
  return `${t.source.id}:${t.eventType || 'always'}:${Math.max(0, list.indexOf(t))}`;
}

export function stateString(value: StateValue): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([k, v]) => (v === undefined ? k : `${k}.${stateString(v)}`))
    .join(',');
}

/**
 * The inspection stream of one node. Give {@link inspect} to the runtime (`RuntimeOptions.inspect`),
 * {@link attach} a transport, and records flow on `handoff.<ns>.inspect.<actorId>`.
 *
 * The hook itself only queues references (XState's snapshots are immutable); redaction, cloning and
 * publishing happen in batches off the runtime's path, within a budget of wall time
 * (`cpuShare`) and of records per second. Snapshots of one actor still waiting are folded into the
 * newest, so a burst of transitions costs one record and keeps every transition taken.
 */
export class InspectionStream {
  readonly namespace: string;
  readonly node: string;
  #redactor: Redactor;
  #now: () => number;
  #maxPerSecond: number;
  #cpuShare: number;
  #flushMs: number;
  #maxQueue: number;
  #focusAll: boolean;
  #transport: Transport | null = null;
  #sub: Subscription | null = null;
  #queue: Pending[] = [];
  /** The snapshot of each actor waiting in the queue, to fold newer ones into. */
  #waiting = new Map<string, Pending>();
  /** Transitions of the macrostep in progress, by actor id. */
  #micro = new Map<string, TakenTransition[]>();
  #focus = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #statsTimer: NodeJS.Timeout | null = null;
  #countTokens: number;
  #timeTokens: number;
  #lastRefill = performance.now();
  #n = 0;
  #enabled = true;
  readonly stats = { recorded: 0, published: 0, dropped: 0, workMs: 0 };

  constructor(opts: InspectionOptions) {
    this.namespace = opts.namespace ?? 'default';
    this.node = opts.node ?? 'local';
    this.#redactor = new Redactor(opts.models);
    this.#now = opts.now ?? Date.now;
    this.#maxPerSecond = opts.maxPerSecond ?? 2000;
    this.#cpuShare = opts.cpuShare ?? 0.04;
    this.#flushMs = opts.flushMs ?? 20;
    this.#maxQueue = opts.maxQueue ?? 20_000;
    this.#focusAll = opts.focusAll ?? false;
    this.#countTokens = this.#maxPerSecond / 10;
    this.#timeTokens = 20;
  }

  /** Starts publishing on a transport (and listening to focus requests). Records taken before are dropped. */
  attach(transport: Transport): this {
    this.#transport = transport;
    this.#sub = transport.subscribe(focusSubject(this.namespace), (m) => this.#onFocus(m.data));
    this.#statsTimer = setInterval(() => this.#publishStats(), 1000);
    this.#statsTimer.unref();
    return this;
  }

  /** Pauses (false) or resumes recording; paused, the hook returns at once. */
  set enabled(on: boolean) {
    this.#enabled = on;
    if (!on) {
      this.#queue = [];
      this.#waiting.clear();
      this.#micro.clear();
    }
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Full records for these actors for `ttlMs` (an inspector renews while it watches). */
  focus(ids: readonly string[], ttlMs = 30_000): void {
    const until = performance.now() + ttlMs;
    for (const id of ids) this.#focus.set(id, until);
  }

  #onFocus(data: unknown): void {
    const d = data as { ids?: unknown; ttlMs?: unknown };
    if (!Array.isArray(d?.ids)) return;
    const ids = d.ids.filter((x): x is string => typeof x === 'string' && x.length < 300).slice(0, 1000);
    this.focus(ids, typeof d.ttlMs === 'number' ? Math.min(Math.max(d.ttlMs, 1000), 300_000) : 30_000);
  }

  #focused(id: string): boolean {
    if (this.#focusAll) return true;
    const until = this.#focus.get(id) ?? this.#focus.get('*');
    if (until === undefined) return false;
    if (until < performance.now()) {
      this.#focus.delete(id);
      return false;
    }
    return true;
  }

  /** The runtime's hook: called by XState for every inspection event of the actor `actorId`. */
  readonly inspect = (e: InspectionEvent, actorId: string): void => {
    if (!this.#enabled || !this.#transport) return;
    switch (e.type) {
      case '@xstate.microstep': {
        const ts = (e as unknown as { _transitions?: TransitionDef[] })._transitions;
        if (!ts || ts.length === 0) return;
        let list = this.#micro.get(actorId);
        if (!list) this.#micro.set(actorId, (list = []));
        for (const t of ts)
          list.push({ edge: edgeId(t), source: t.source.id, targets: (t.target ?? []).map((x) => x.id) });
        return;
      }
      case '@xstate.event':
        // Starting (created or rehydrated): an actor record.
        if (e.event.type === 'xstate.init') {
          this.#push({ type: 'actor', id: actorId, ref: e.actorRef, at: this.#now() });
          return;
        }
        // Light records skip events: the snapshot that follows names its event.
        if (!this.#focused(actorId)) return;
        this.#push({
          type: 'event',
          id: actorId,
          ref: e.actorRef,
          at: this.#now(),
          event: e.event,
          sourceId: e.sourceRef && e.sourceRef !== e.actorRef ? ((e.sourceRef as { id?: string }).id ?? null) : null,
        });
        return;
      case '@xstate.snapshot': {
        const snap = e.snapshot as unknown as { value: StateValue; status: string; context: unknown };
        const transitions = this.#micro.get(actorId) ?? [];
        this.#micro.delete(actorId);
        const waiting = this.#waiting.get(actorId);
        if (waiting) {
          waiting.snapshot = snap;
          waiting.event = e.event;
          waiting.at = this.#now();
          waiting.transitions = [...(waiting.transitions ?? []), ...transitions];
          waiting.coalesced = (waiting.coalesced ?? 0) + 1;
          return;
        }
        const p: Pending = {
          type: 'snapshot',
          id: actorId,
          ref: e.actorRef,
          at: this.#now(),
          event: e.event,
          snapshot: snap,
          transitions,
        };
        if (this.#push(p)) this.#waiting.set(actorId, p);
        return;
      }
      default:
        return;
    }
  };

  #push(p: Pending): boolean {
    this.stats.recorded++;
    if (this.#queue.length >= this.#maxQueue) {
      this.stats.dropped++;
      return false;
    }
    this.#queue.push(p);
    if (!this.#timer) {
      this.#timer = setTimeout(() => this.#flush(), this.#flushMs);
      this.#timer.unref();
    }
    return true;
  }

  #refill(): void {
    const now = performance.now();
    const elapsed = now - this.#lastRefill;
    this.#lastRefill = now;
    this.#countTokens = Math.min(this.#maxPerSecond / 4, this.#countTokens + (elapsed * this.#maxPerSecond) / 1000);
    this.#timeTokens = Math.min(250 * this.#cpuShare, this.#timeTokens + elapsed * this.#cpuShare);
  }

  #flush(): void {
    this.#timer = null;
    const batch = this.#queue;
    this.#queue = [];
    this.#waiting.clear();
    const transport = this.#transport;
    if (!transport || !this.#enabled) return;
    this.#refill();
    const t0 = performance.now();
    let spent = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const focused = this.#focused(p.id);
      // Focused actors are never sampled away; everyone else shares what the budget leaves.
      if (!focused && (this.#countTokens < 1 || this.#timeTokens - spent <= 0)) {
        this.stats.dropped++;
        continue;
      }
      this.#countTokens--;
      const rec = this.#record(p, focused);
      if (rec) {
        transport.publish(inspectSubject(this.namespace, p.id), rec);
        this.stats.published++;
      }
      if ((i & 15) === 15) spent = performance.now() - t0;
    }
    const work = performance.now() - t0;
    this.#timeTokens -= work;
    this.stats.workMs += work;
  }

  #record(p: Pending, full: boolean): InspectionRecord | null {
    const snap =
      p.snapshot ?? (p.ref.getSnapshot() as { value: StateValue; status: string; context: unknown } | undefined);
    const ctx = snap?.context as { model?: unknown } | undefined;
    const model = typeof ctx?.model === 'string' ? ctx.model : '';
    const logicId = (p.ref as unknown as { logic?: { id?: string } }).logic?.id;
    const kind: InspectedKind = logicId === 'reviewCase' ? 'case' : 'agent';
    const base = { v: 1 as const, type: p.type, id: p.id, kind, model, node: this.node, n: this.#n++, at: p.at, full };
    const event = p.event ? (full ? this.#redactor.redact(model, p.event) : { type: p.event.type }) : undefined;
    if (p.type === 'event') return { ...base, event: event!, sourceId: p.sourceId ?? null };
    if (!snap) return null;
    return {
      ...base,
      ...(event ? { event } : {}),
      value: snap.value,
      state: stateString(snap.value),
      status: snap.status,
      ...(full ? { context: this.#redactor.redact(model, snap.context) } : {}),
      ...(p.type === 'snapshot'
        ? { transitions: p.transitions ?? [], ...(p.coalesced ? { coalesced: p.coalesced } : {}) }
        : {}),
    };
  }

  #publishStats(): void {
    if (!this.#transport || (this.stats.recorded === 0 && this.#focus.size === 0)) return;
    const now = performance.now();
    for (const [id, until] of this.#focus) if (until < now) this.#focus.delete(id);
    const s: InspectionStats = {
      v: 1,
      node: this.node,
      at: this.#now(),
      ...this.stats,
      workMs: Math.round(this.stats.workMs),
      focused: this.#focus.size,
    };
    this.#transport.publish(statsSubject(this.namespace), s);
  }

  /** Publishes what is queued now (tests, shutdown). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#flush();
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#statsTimer) clearInterval(this.#statsTimer);
    this.#timer = null;
    this.#sub?.unsubscribe();
    this.#transport = null;
    this.#queue = [];
    this.#waiting.clear();
  }
}
