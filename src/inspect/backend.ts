import type { LoadedModel } from '../models/loader.ts';
import type { ActorView, Runtime, TransitionNotice } from '../runtime/runtime.ts';
import type { ActorKind, ActorRecord, JournalEntry } from '../runtime/store.ts';
import type { Subscription, Transport } from '../transport/transport.ts';
import { focusSubject, inspectAll, statsSubject, type InspectionRecord, type InspectionStats } from './stream.ts';

/**
 * What the inspector needs from the runtime side. Live data comes over the transport (inspection
 * records on `handoff.<ns>.inspect.*`, durable transitions on `handoff.<ns>.events.>`, focus requests
 * back on `handoff.<ns>.inspector.focus`), so it works the same against a NATS cluster; history (the
 * journal, records of finished actors) is read from the store.
 */
export interface InspectorBackend {
  readonly namespace: string;
  readonly node: string;
  readonly models: readonly LoadedModel[];
  get(id: string): Promise<ActorView | undefined>;
  /** The persisted record (the last snapshot), finished actors included. */
  load(id: string): Promise<ActorRecord | undefined>;
  journal(id: string): AsyncIterable<JournalEntry>;
  liveActors(): AsyncIterable<ActorRecord>;
  actors(kind?: ActorKind): AsyncIterable<ActorRecord>;
  onRecord(listener: (r: InspectionRecord) => void): Subscription;
  onNotice(listener: (n: TransitionNotice) => void): Subscription;
  onStats(listener: (s: InspectionStats) => void): Subscription;
  /** Asks every node's stream for full records of these actors for `ttlMs`. */
  focus(ids: readonly string[], ttlMs: number): void;
  now(): number;
}

/** The backend of an embedded runtime: its transport for live data, its store for history. */
export function embeddedInspectorBackend(
  rt: Runtime,
  opts: { transport?: Transport; node?: string } = {},
): InspectorBackend {
  const transport = opts.transport ?? rt.transport;
  const ns = rt.namespace;
  return {
    namespace: ns,
    node: opts.node ?? 'local',
    models: [...rt.models.values()],
    get: (id) => rt.get(id),
    load: (id) => rt.store.load(id),
    journal: (id) => rt.journal(id),
    liveActors: () => rt.store.liveActors(),
    actors: (kind) => rt.store.actors(kind),
    onRecord: (listener) => transport.subscribe(inspectAll(ns), (m) => listener(m.data as InspectionRecord)),
    onNotice: (listener) => transport.subscribe(`handoff.${ns}.events.>`, (m) => listener(m.data as TransitionNotice)),
    onStats: (listener) => transport.subscribe(statsSubject(ns), (m) => listener(m.data as InspectionStats)),
    focus: (ids, ttlMs) => transport.publish(focusSubject(ns), { ids, ttlMs }),
    now: () => rt.clock.now(),
  };
}
