import type { Logger } from 'pino';
import type { LoadedModel } from '../models/loader.ts';
import type { Clock } from '../base/clock.ts';
import type { RuntimeOptions } from '../runtime/runtime.ts';
import type { Keyring } from '../security/keyring.ts';
import type { NatsSecurityOptions } from '../security/nats-auth.ts';

/** How a cluster node is started ({@link ClusterNode.start}). */
export interface ClusterNodeOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** TLS and credentials for both of the node's NATS connections (docs/security.md). */
  security?: NatsSecurityOptions;
  /** This node's name (unique in the cluster). A restart under the same name is a new incarnation. */
  node: string;
  /** @default 'default' */
  namespace?: string;
  models: LoadedModel[];
  /** Overrides the clock (tests). */
  clock?: Clock;
  /**
   * Simulated ms per wall ms for the cluster's shared clock (demos: 3600 runs an SLA hour in a
   * second). The first node fixes the clock's origin in the store; all nodes and drivers share it.
   * @default 1 (real time)
   */
  timeScale?: number;
  /** @default 'handoff' */
  seed?: string;
  /**
   * Backpressure: runtime operations in flight above which reviewer commands are refused with
   * `node.overloaded` and no new work is pulled. @default 2000
   */
  maxInFlight?: number;
  /** Backpressure: episodes (placement groups) this node hosts at most; beyond it, it pulls no new ones. @default 2000 */
  maxEpisodes?: number;
  heartbeatMs?: number;
  deadAfterMs?: number;
  selfFenceMs?: number;
  /** Stream and bucket replicas (3 on a production cluster). @default 1 */
  replicas?: number;
  /** Data keys: seal the store's message payloads at rest (docs/encryption.md). @default undefined (plaintext) */
  keyring?: Keyring | undefined;
  logger?: Logger;
  /** Further runtime options (planners, faults, supervision, ...). */
  runtime?: Partial<RuntimeOptions>;
  /** Structured events (adoptions, lost leases, ...) for tests and the CLI's output. */
  onEvent?: (e: NodeEvent) => void;
}

export type NodeEvent =
  | { type: 'adopted'; group: string; from: string | null; active: number; ms: number; at: number }
  | { type: 'lost'; group: string; to: string | null; at: number }
  | { type: 'member'; member: string; alive: boolean; at: number }
  | { type: 'health'; healthy: boolean; at: number }
  | { type: 'sequencer'; running: boolean; at: number };
