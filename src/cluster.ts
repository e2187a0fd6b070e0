/**
 * `@handoff-hitl/runtime/cluster`: Handoff on NATS (JetStream store, leases, membership, nodes, the
 * cluster demo driver). Needs the optional packages `@nats-io/transport-node`, `@nats-io/jetstream`
 * and `@nats-io/kv`. See docs/distribution.md.
 */
export { ClusterNode } from './cluster/node.ts';
export type { ClusterNodeOptions, NodeEvent } from './cluster/node-options.ts';
export { runClusterDemo, type ClusterDemoOptions, type ClusterDemoSummary } from './app/cluster-demo.ts';
export { clusterGatewayBackend, clusterInspectorBackend } from './app/cluster-console.ts';
export { ClusterReviewerClient, type ClusterReviewerClientOptions } from './app/cluster-client.ts';
export { JetStreamStore, type JetStreamStoreOptions } from './cluster/jetstream-store.ts';
export { NatsTransport, type NatsTransportOptions } from './cluster/nats-transport.ts';
export {
  natsConnectOptions,
  natsSecurityFromOptions,
  type NatsSecurityOptions,
  type NatsAuth,
  type NatsTlsSettings,
} from './security/nats-auth.ts';
export { NatsServer, findNatsServer, freePort, type NatsServerOptions } from './cluster/nats-harness.ts';
