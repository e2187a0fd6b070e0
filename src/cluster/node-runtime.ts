import type { Logger } from 'pino';
import { systemClock, type Clock } from '../base/clock.ts';
import { assembleReasoning, type Reasoning } from '../runtime/reasoning.ts';
import { Runtime } from '../runtime/runtime.ts';
import type { NatsTransport } from './nats-transport.ts';
import { JetStreamStore, type OwnershipGuard } from './jetstream-store.ts';
import { groupOf } from './keys.ts';
import type { Leases } from './leases.ts';
import type { ClusterNodeOptions } from './node-options.ts';
import { clusterClock } from './placement.ts';
import { episodeTraceparent } from './trace.ts';
import { JetStreamWorld } from './world.ts';

/** What a node runs its actors with: the JetStream store under its leases, the world, clock, reasoning and runtime. */
export interface NodeRuntime {
  store: JetStreamStore;
  world: JetStreamWorld;
  clock: Clock;
  reasoning: Reasoning;
  runtime: Runtime;
}

/**
 * Opens a node's store (cluster mode: writes under the guard, journal-tail commits, no tracking until
 * a group is adopted, no audit sequencer until its lease is held), the shared world and clock, the
 * reasoning and the runtime, with effects fenced by the leases.
 */
export async function openNodeRuntime(init: {
  opts: ClusterNodeOptions;
  namespace: string;
  writer: string;
  transport: NatsTransport;
  leases: Leases;
  log: Logger;
  guard: OwnershipGuard;
  /** Throws `lease.lost` unless an effect issued under `token` may still touch the world. */
  checkFence: (actorId: string, token: number) => void;
}): Promise<NodeRuntime> {
  const { opts: o, namespace, transport, leases, guard } = init;
  const store = await JetStreamStore.open({
    nc: transport.nc,
    namespace,
    writer: init.writer,
    guard,
    trackAll: false,
    auditSequencer: false,
    logger: init.log,
    keyring: o.keyring,
    ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
  });
  const world = new JetStreamWorld(store);
  const clock = o.clock ?? (o.timeScale && o.timeScale !== 1 ? await clusterClock(store, o.timeScale) : systemClock);
  const reasoning = await assembleReasoning({ models: o.models, store, clock, drift: false });
  // Transition notices carry the episode's traceparent (one episode, one trace).
  transport.setHeadersFor((_subject, data) => {
    const id = (data as { id?: unknown })?.id;
    return typeof id === 'string' ? { traceparent: episodeTraceparent(namespace, groupOf(id)) } : undefined;
  });
  const runtime = await Runtime.open({
    store,
    world,
    models: o.models,
    clock,
    logger: init.log,
    transport,
    namespace,
    planners: reasoning.planners,
    gateFor: reasoning.gateFor,
    ...(o.seed ? { seed: o.seed } : {}),
    timerHorizonMs: 3_600_000,
    ...o.runtime,
    owns: (id) => guard.mayWrite(id),
    fencing: {
      token: (id) => (guard.mayWrite(id) ? leases.get(groupOf(id))?.revision : undefined),
      check: init.checkFence,
    },
  });
  reasoning.attach(runtime);
  return { store, world, clock, reasoning, runtime };
}
