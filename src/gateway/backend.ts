import type { AuditDraft, AuditEntry } from '../base/audit-log.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { Ack, ActorView, Runtime, TransitionNotice } from '../runtime/runtime.ts';
import type { ActorRecord, JournalEntry } from '../runtime/store.ts';
import type { LedgerEntry } from '../models/define.ts';
import { HandoffClient } from '../transport/client.ts';
import { subjects, type Subscription, type Transport } from '../transport/transport.ts';

/**
 * What the gateway needs from the runtime side. Commands travel over the transport (request/reply on
 * `handoff.<ns>.actor.<id>`), live changes arrive on its queue and event subjects, so the same gateway
 * runs against an embedded runtime or, with another implementation, a NATS cluster. Reads (a case,
 * the open cases at start, the audit log) go to the store.
 */
export interface GatewayBackend {
  readonly namespace: string;
  readonly models: readonly LoadedModel[];
  /** A reviewer command; resolves when durable, rejects with the runtime's typed error (its `code`). */
  command(cmd: unknown): Promise<Ack>;
  get(id: string): Promise<ActorView | undefined>;
  /** Every unfinished actor (for the queue projection at start). */
  liveActors(): AsyncIterable<ActorRecord>;
  /** Every actor, finished ones included (for the dashboards' history). */
  actors(kind?: 'agent' | 'case'): AsyncIterable<ActorRecord>;
  audit(from?: number): AsyncIterable<AuditEntry>;
  /** Appends entries to the hash-chained audit log (logins, refused commands). */
  appendAudit(drafts: AuditDraft[]): Promise<void>;
  /** Case notices (`handoff.<ns>.queue.*`). */
  onCase(listener: (n: TransitionNotice) => void): Subscription;
  /** Agent notices (`handoff.<ns>.events.agent.*`). */
  onAgent(listener: (n: TransitionNotice) => void): Subscription;
  /** Server time (the runtime's clock). */
  now(): number;
  /** An actor's journal, for the lineage view. Optional: without it, lineage shows records and the audit log. */
  journal?(id: string): AsyncIterable<JournalEntry>;
  /** The world's effects ledger entry of an idempotency key, for the lineage view. */
  effect?(key: string): Promise<LedgerEntry | undefined>;
  /** A store meta value (retention summaries and legal holds, for the lineage view). */
  getMeta?<T>(key: string): Promise<T | undefined>;
}

/** The backend of an embedded runtime: the transport for commands and notices, the store for reads. */
export function embeddedBackend(rt: Runtime, opts: { transport?: Transport; timeoutMs?: number } = {}): GatewayBackend {
  const transport = opts.transport ?? rt.transport;
  const client = new HandoffClient(transport, { namespace: rt.namespace, timeoutMs: opts.timeoutMs ?? 15_000 });
  const subj = subjects(rt.namespace);
  return {
    namespace: rt.namespace,
    models: [...rt.models.values()],
    command: (cmd) => client.command(cmd as { caseId: string }),
    get: (id) => rt.get(id),
    liveActors: () => rt.store.liveActors(),
    actors: (kind) => rt.store.actors(kind),
    audit: (from) => rt.store.audit(from),
    appendAudit: (drafts) => rt.audit(drafts),
    onCase: (listener) => transport.subscribe(subj.queueAll, (m) => listener(m.data as TransitionNotice)),
    onAgent: (listener) =>
      transport.subscribe(`handoff.${rt.namespace}.events.agent.*`, (m) => listener(m.data as TransitionNotice)),
    now: () => rt.clock.now(),
    journal: (id) => rt.store.journal(id),
    effect: (key) => rt.world.lookup(key),
    getMeta: <T>(key: string) => rt.store.getMeta<T>(key),
  };
}
