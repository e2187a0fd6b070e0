import { jetstream } from '@nats-io/jetstream';
import type { Ack } from '../contracts/ack.ts';
import { ActorExistsError } from '../contracts/errors.ts';
import { RetryingClient } from './cluster-demo.ts';
import { ApiV1, type ApiV1Runtime } from '../gateway/api-v1.ts';
import { embeddedBackend, type GatewayBackend } from '../gateway/backend.ts';
import { ServiceAccounts } from '../gateway/service-accounts.ts';
import type { ActorView, TransitionNotice } from '../runtime/runtime.ts';
import type { Keyring } from '../security/keyring.ts';
import type { NatsSecurityOptions } from '../security/nats-auth.ts';
import { NatsTransport } from '../cluster/nats-transport.ts';
import { JetStreamStore } from '../cluster/jetstream-store.ts';
import { embeddedInspectorBackend, type InspectorBackend } from '../inspect/backend.ts';
import type { ActorRecord } from '../runtime/store.ts';
import { publishStart } from '../cluster/ingest.ts';
import { workSubject, type ClusterNode } from '../cluster/node.ts';

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
 * The reviewer console's backend on a cluster node: commands go over NATS straight to the node that
 * owns the case (this node watches the leases bucket, so it knows), or to the case's public subject
 * when no owner is known or the owner no longer has it (any node answers and routes to the owner);
 * one hop instead of two. Live changes arrive from every node on the queue and event subjects, reads
 * go to the JetStream store that all nodes share.
 */
export function clusterGatewayBackend(node: ClusterNode): GatewayBackend {
  const client = new RetryingClient(node.transport, {
    namespace: node.namespace,
    // The console answers its reviewer with the typed refusal at once; the reviewer retries.
    attempts: 1,
    timeoutMs: 15_000,
    owner: (group) => node.leases.ownerOf(group),
  });
  return {
    ...embeddedBackend(node.runtime, { transport: node.transport }),
    command: async (cmd) => (await client.command(cmd as { caseId: string })) as Ack,
    liveActors: () => clusterLiveActors(node),
  };
}

/** The live inspector's backend on a cluster node: inspection records of every node, over NATS. */
export function clusterInspectorBackend(node: ClusterNode): InspectorBackend {
  return {
    ...embeddedInspectorBackend(node.runtime, { transport: node.transport, node: node.name }),
    liveActors: () => clusterLiveActors(node),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * What `/api/v1` needs, from a cluster node (docs/api.md). A submitted signal becomes a start on the
 * work stream (the same path as a signal over NATS), so whichever node has room starts it and a node
 * killed after the 202 loses nothing: the start is in JetStream before the answer. The same key on
 * two nodes names one episode: an existing record, or the work stream's `Nats-Msg-Id` window, answers
 * `created: false`, and past both the start finds the actor existing. Reads go to the shared store.
 */
export function clusterApiRuntime(
  node: ClusterNode,
  opts: { keyring?: Keyring | undefined; startWaitMs?: number } = {},
): ApiV1Runtime {
  const js = jetstream(node.transport.nc);
  const ns = node.namespace;
  const work = { namespace: ns, workSubject: workSubject(ns), keyring: opts.keyring };
  const waitMs = opts.startWaitMs ?? 10_000;
  return {
    models: node.runtime.models,
    clock: { now: () => node.clock.now() },
    async startEpisode(model, signal, { episodeId, traceparent }) {
      if (await node.store.load(episodeId)) throw new ActorExistsError(episodeId);
      const stored = await publishStart(js, work, {
        episodeId,
        model,
        signal,
        ...(traceparent ? { traceparent } : {}),
      });
      if (stored.duplicate) throw new ActorExistsError(episodeId);
      // Durable from here. Wait (bounded) for a node to start it, so its status URL answers at once.
      const deadline = performance.now() + waitMs;
      for (let pause = 5; performance.now() < deadline; pause = Math.min(200, pause * 2)) {
        const rec = await node.store.load(episodeId);
        if (rec) return { actorId: episodeId, seq: rec.seq, state: rec.state, status: rec.status };
        await sleep(pause);
      }
      return { actorId: episodeId, seq: 0, state: 'queued', status: 'active' };
    },
    get: (id) => node.runtime.get(id),
    audit: (drafts) => node.runtime.audit(drafts),
    async *episodes(after?: string): AsyncIterable<ActorView> {
      const ids: string[] = [];
      for await (const ix of node.store.index())
        if (ix.kind === 'agent' && (after === undefined || ix.id > after)) ids.push(ix.id);
      ids.sort();
      for (const id of ids) {
        const view = await node.runtime.get(id);
        if (view) yield view;
      }
    },
    onAgent(listener: (n: TransitionNotice) => void): () => void {
      const sub = node.transport.subscribe(`handoff.${ns}.events.agent.*`, (m) => listener(m.data as TransitionNotice));
      return () => sub.unsubscribe();
    },
  };
}

/** `/api/v1` on a cluster node: service accounts live in the namespace's store, shared by every node. */
export function clusterApi(node: ClusterNode, opts: { keyring?: Keyring | undefined } = {}): ApiV1 {
  return new ApiV1({
    runtime: clusterApiRuntime(node, opts),
    accounts: new ServiceAccounts(node.store),
    log: node.runtime.log,
  });
}

/**
 * The service accounts of a cluster's namespace, for `handoff accounts --nats`: a store opened as a
 * reader (it writes only its meta records), so it runs beside the nodes.
 */
export async function openClusterAccounts(
  servers: string[],
  opts: { namespace: string; security?: NatsSecurityOptions; keyring?: Keyring | undefined },
): Promise<{ accounts: ServiceAccounts; close(): Promise<void> }> {
  const transport = await NatsTransport.connect(servers, {
    name: 'handoff-accounts',
    ...(opts.security ? { security: opts.security } : {}),
  });
  try {
    const store = await JetStreamStore.open({
      nc: transport.nc,
      namespace: opts.namespace,
      guard: { mayWrite: () => false, fencingToken: () => undefined },
      trackAll: false,
      auditSequencer: false,
      keyring: opts.keyring,
    });
    return {
      accounts: new ServiceAccounts(store),
      close: async () => {
        // Every write of the accounts is awaited, so a flush is all a close needs (the store's own
        // close also races its flush against a 15 s timer that keeps a CLI process alive).
        await store.flush();
        await transport.close();
      },
    };
  } catch (err) {
    await transport.close();
    throw err;
  }
}
