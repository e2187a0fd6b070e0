import { embeddedBackend, type GatewayBackend } from '../gateway/backend.ts';
import { embeddedInspectorBackend, type InspectorBackend } from '../inspect/backend.ts';
import type { ActorRecord } from '../runtime/store.ts';
import type { ClusterNode } from './node.ts';

/**
 * Every unfinished actor of the namespace, whichever node owns it. A node's own store tracks only
 * the episodes it holds, so the console reads the ACT stream's index (headers only) and loads the
 * records of the active ones.
 */
async function* clusterLiveActors(node: ClusterNode): AsyncIterable<ActorRecord> {
  const ids: string[] = [];
  for await (const ix of node.store.index()) if (ix.status === 'active') ids.push(ix.id);
  for (const id of ids) {
    const rec = await node.store.load(id);
    if (rec?.status === 'active') yield rec;
  }
}

/**
 * The reviewer console's backend on a cluster node: commands go over NATS to the case's subject
 * (any node answers and routes to the owner), live changes arrive from every node on the queue and
 * event subjects, reads go to the JetStream store that all nodes share.
 */
export function clusterGatewayBackend(node: ClusterNode): GatewayBackend {
  return { ...embeddedBackend(node.runtime, { transport: node.transport }), liveActors: () => clusterLiveActors(node) };
}

/** The live inspector's backend on a cluster node: inspection records of every node, over NATS. */
export function clusterInspectorBackend(node: ClusterNode): InspectorBackend {
  return { ...embeddedInspectorBackend(node.runtime, { transport: node.transport, node: node.name }), liveActors: () => clusterLiveActors(node) };
}
