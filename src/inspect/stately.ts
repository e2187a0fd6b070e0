import { createInspector, createWebSocketInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { AnyStateMachine } from 'xstate';
import type { LoadedModel } from '../models/loader.ts';
import type { Subscription } from '../transport/transport.ts';
import type { InspectorBackend } from './backend.ts';
import { machineFor, type Replay } from './replay.ts';
import type { InspectionRecord } from './stream.ts';

export type { StatelyInspectionEvent };

/** Where Stately events go: any `@statelyai/inspect` adapter (`send`), e.g. a WebSocket's. */
export interface StatelyAdapter {
  send(event: StatelyInspectionEvent): void;
  start?(): void;
  stop?(): void;
}

type Inspector = ReturnType<typeof createInspector>;

const CASE_ID = /^(.+)\.(?:case|operator)-[^.]+$/;

/**
 * Stately compatibility: turns Handoff inspection records (or a replayed journal) into the events
 * of `@statelyai/inspect` (`@xstate.actor` with the machine definition, `@xstate.event`,
 * `@xstate.snapshot`), built by Stately's own `createInspector`, so Stately's tools read a Handoff
 * node as they read an XState app. Records are redacted before they leave the node, so what Stately
 * sees is redacted too. A review case is reported as a child of the episode that opened it.
 */
export class StatelyBridge {
  readonly inspector: Inspector;
  #models: Map<string, LoadedModel>;
  #known = new Set<string>();

  constructor(
    opts:
      | { models: readonly LoadedModel[]; adapter: StatelyAdapter }
      | { models: readonly LoadedModel[]; inspector: Inspector },
  ) {
    this.#models = new Map(opts.models.map((m) => [m.name, m]));
    this.inspector =
      'inspector' in opts
        ? opts.inspector
        : createInspector(opts.adapter, {
            // Stately's `actor()` does not take a parent for actors given by id: add it here.
            serialize: (e) => (e.type === '@xstate.actor' ? { ...e, parentId: CASE_ID.exec(e.sessionId)?.[1] } : e),
          });
  }

  /** A Stately WebSocket inspector (`createWebSocketInspector`) at `url`, e.g. Stately's inspector server. */
  static webSocket(models: readonly LoadedModel[], url: string): StatelyBridge {
    const inspector = createWebSocketInspector({
      url,
      serialize: (e) => (e.type === '@xstate.actor' ? { ...e, parentId: CASE_ID.exec(e.sessionId)?.[1] } : e),
    });
    return new StatelyBridge({ models, inspector });
  }

  #machine(model: string, kind: 'agent' | 'case'): AnyStateMachine | null {
    const m = this.#models.get(model);
    return m ? machineFor(m, kind) : null;
  }

  #actor(
    id: string,
    kind: 'agent' | 'case',
    model: string,
    snapshot: { status?: string; value?: unknown; context?: unknown },
  ): void {
    const machine = this.#machine(model, kind);
    // An actor-like object: Stately reads the definition from `logic.config`.
    const ref = {
      sessionId: id,
      id,
      logic: machine ? { config: machine.config } : undefined,
      send: () => undefined,
      getSnapshot: () => snapshot,
    };
    this.inspector.actor(ref as never, snapshot as never);
    this.#known.add(id);
  }

  /** One Handoff inspection record. */
  push(r: InspectionRecord): void {
    const snapshot = { status: r.status === 'done' ? 'done' : 'active', value: r.value, context: r.context };
    if (r.type === 'actor' || !this.#known.has(r.id)) this.#actor(r.id, r.kind, r.model, snapshot);
    if (r.type === 'event' && r.event) this.inspector.event(r.id, r.event, r.sourceId ? { source: r.sourceId } : {});
    if (r.type === 'snapshot') this.inspector.snapshot(r.id, snapshot as never, r.event ? { event: r.event } : {});
  }

  /** A replayed journal (time travel data), as if the actor ran again: its creation, then each event and snapshot. */
  pushReplay(replay: Replay): void {
    const first = replay.steps[0];
    if (!first) return;
    this.#actor(replay.id, replay.kind, replay.model, { status: 'active', value: first.value, context: first.context });
    replay.steps.forEach((s, i) => {
      const last = i === replay.steps.length - 1;
      const status =
        last &&
        ['done', 'approved', 'modified', 'rejected', 'expired', 'denied', 'compensated', 'failed'].includes(s.state)
          ? 'done'
          : 'active';
      if (i > 0) this.inspector.event(replay.id, s.event);
      this.inspector.snapshot(replay.id, { status, value: s.value ?? s.state, context: s.context } as never, {
        event: s.event,
      });
    });
  }

  /** Feeds every record of a node (asking its streams for every actor in full) until unsubscribed. */
  connect(backend: InspectorBackend, opts: { ids?: readonly string[] } = {}): Subscription {
    const ids = opts.ids ?? ['*'];
    backend.focus(ids, 60_000);
    const renew = setInterval(() => backend.focus(ids, 60_000), 20_000);
    renew.unref();
    const sub = backend.onRecord((r) => {
      if (ids.includes('*') || ids.includes(r.id)) this.push(r);
    });
    return {
      unsubscribe: () => {
        clearInterval(renew);
        sub.unsubscribe();
      },
    };
  }

  stop(): void {
    this.inspector.stop();
  }
}

/** The Stately events of a replayed journal (for `handoff inspect --format stately` and tests). */
export function statelyEvents(models: readonly LoadedModel[], replay: Replay): StatelyInspectionEvent[] {
  const out: StatelyInspectionEvent[] = [];
  new StatelyBridge({ models, adapter: { send: (e) => out.push(e) } }).pushReplay(replay);
  return out;
}
