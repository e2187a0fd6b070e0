import { InvalidArgumentError, type Command } from 'commander';
import { hostname } from 'node:os';
import { loadModel } from '../models/loader.ts';
import { ClusterNode, type NodeEvent } from '../cluster/node.ts';
import { clusterApi, clusterGatewayBackend, clusterInspectorBackend } from '../app/cluster-console.ts';
import { runClusterDemo, type ClusterDemoSummary } from '../app/cluster-demo.ts';
import { Gateway, type GatewayOptions } from '../gateway/server.ts';
import { InspectionStream } from '../inspect/stream.ts';
import { loadGatewayConfig } from '../gateway/oidc.ts';
import { NatsSessionStore } from '../cluster/session-store.ts';
import { paint, printJson, progressBar, type ProgressMode } from './output.ts';
import { dataKeyring } from './keys-command.ts';
import type { ProcessTelemetry } from '../telemetry/process.ts';
import {
  addNatsSecurityOptions,
  natsSecurityFromOptions,
  redactServerUrl,
  type NatsSecurityCliOptions,
} from '../security/nats-auth.ts';

const num = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number ≥ ${min}`);
  return n;
};

/**
 * `--nats`: comma-separated server URLs, each `nats://`, `tls://`, `ws://` or `wss://` with a host,
 * or `host:port`. Anything else is refused at once (a bare word would otherwise be looked up as a
 * host name and retried for ever).
 */
export function natsServers(v: string): string {
  const parts = v.split(',').map((p) => p.trim());
  for (const p of parts) {
    let ok = false;
    if (/^(nats|tls|ws|wss):\/\//i.test(p)) {
      try {
        const u = new URL(p);
        ok = u.hostname.length > 0 && (u.port === '' || (Number(u.port) > 0 && Number(u.port) < 65536));
      } catch {
        ok = false;
      }
    } else {
      const m = /^(\[[0-9a-f:]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(p);
      ok = m !== null && Number(m[2]) > 0 && Number(m[2]) < 65536;
    }
    if (!ok)
      throw new InvalidArgumentError(
        `'${p}' is not a NATS server URL: expected nats://host:port, tls://host:port or host:port (comma-separated for several)`,
      );
  }
  return parts.join(',');
}

/**
 * The NATS options of `handoff start` and `handoff demo`: with `--nats`, `start` runs one node of a
 * cluster and `demo` drives episodes against a running cluster (docs/distribution.md). Without it
 * both stay on the embedded runtime.
 */
export function addClusterOptions(cmd: Command, role: 'node' | 'driver'): Command {
  cmd
    .option(
      '--nats <url>',
      'run on a NATS cluster at these server URL(s), comma-separated, e.g. nats://127.0.0.1:4222 (default: the embedded runtime)',
      natsServers,
    )
    .option('--namespace <ns>', 'with --nats: namespace of subjects, streams and buckets', 'default');
  if (role === 'node') {
    cmd
      .option('--node <name>', "with --nats: this node's name, unique in the cluster", hostname())
      .option(
        '--max-in-flight <n>',
        'with --nats: operations in flight before commands are refused as overloaded',
        num('--max-in-flight', 1),
        2000,
      )
      .option('--max-episodes <n>', 'with --nats: episodes this node hosts at most', num('--max-episodes', 1), 2000)
      .option('--seed <s>', 'with --nats: seed of the stable draws handed to models')
      .option(
        '--events',
        'with --nats: print adoptions, lost leases and membership changes as JSON lines on stdout',
        false,
      )
      .option('--no-console', 'with --nats: run the node without the reviewer console');
  }
  cmd.option(
    '--time-scale <n>',
    role === 'node'
      ? 'simulated ms per wall ms of the runtime clock (3600 runs an hour of SLA time in a second); with --nats the first node fixes it, embedded the data folder keeps it'
      : 'with --nats: simulated ms per wall ms (must match the nodes)',
    num('--time-scale', 0.001),
    role === 'node' ? 1 : 3600,
  );
  addNatsSecurityOptions(cmd);
  return cmd;
}

export interface ClusterNodeCliOptions extends NatsSecurityCliOptions {
  nats: string;
  node: string;
  namespace: string;
  models: string[];
  timeScale: number;
  maxInFlight: number;
  maxEpisodes: number;
  seed?: string;
  events: boolean;
  console: boolean;
  json: boolean;
  /** A gateway config file (single sign-on, passwords on or off), when `console` is on. */
  gatewayConfig?: string;
  /** Traces and metrics of this process (`OTEL_*`, `--metrics`). */
  telemetry?: ProcessTelemetry;
  /** The console's gateway (host, port, sessions, TLS...), when `console` is on. */
  gateway: Omit<GatewayOptions, 'backend' | 'inspector' | 'log'>;
}

/** `handoff start --nats`: one node of a cluster, with the reviewer console unless `--no-console`. Runs until SIGINT/SIGTERM. */
export async function runClusterNode(o: ClusterNodeCliOptions): Promise<void> {
  const models = await Promise.all(o.models.map((m) => loadModel(m)));
  const gatewayConfig = o.console && o.gatewayConfig ? await loadGatewayConfig(o.gatewayConfig, models) : null;
  const onEvent = o.events
    ? (e: NodeEvent) => process.stdout.write(`${JSON.stringify({ event: e.type, node: o.node, ...e })}\n`)
    : undefined;
  const inspection = o.console ? new InspectionStream({ models }) : undefined;
  const node = await ClusterNode.start({
    servers: o.nats.split(','),
    keyring: dataKeyring(),
    security: natsSecurityFromOptions(o),
    node: o.node,
    namespace: o.namespace,
    models,
    timeScale: o.timeScale,
    maxInFlight: o.maxInFlight,
    maxEpisodes: o.maxEpisodes,
    ...(o.seed ? { seed: o.seed } : {}),
    ...(onEvent ? { onEvent } : {}),
    runtime: {
      ...(inspection ? { inspect: inspection.inspect } : {}),
      ...(o.telemetry?.hook ? { telemetry: o.telemetry.hook } : {}),
    },
  });
  await o.telemetry?.attach(node.runtime);
  o.telemetry?.metrics?.observeLeases({ member: node.memberId, held: () => node.leases.heldBy(node.memberId).length });
  const metricsUrl = await o.telemetry?.start();
  let gateway: Gateway | undefined;
  let sessionStore: NatsSessionStore | undefined;
  try {
    if (inspection) {
      inspection.attach(node.transport);
      // Sessions in the namespace's KV bucket: signed in on one node is signed in on all, signed out on one is signed out on all.
      sessionStore = await NatsSessionStore.open(node.transport.nc, {
        namespace: o.namespace,
        logger: node.runtime.log,
        keyring: dataKeyring(),
      });
      gateway = await Gateway.start({
        ...o.gateway,
        sessions: { ...o.gateway.sessions, store: sessionStore },
        ...(gatewayConfig?.oidc ? { oidc: gatewayConfig.oidc } : {}),
        ...(gatewayConfig ? { passwords: gatewayConfig.passwords } : {}),
        backend: clusterGatewayBackend(node),
        inspector: clusterInspectorBackend(node),
        log: node.runtime.log,
        api: clusterApi(node, { keyring: dataKeyring() }),
      });
    }
  } catch (err) {
    await sessionStore?.close();
    inspection?.close();
    await node.stop().catch(() => undefined);
    throw err;
  }
  const ready = {
    event: 'ready',
    node: o.node,
    member: node.memberId,
    namespace: o.namespace,
    nats: o.nats.split(',').map(redactServerUrl).join(','),
    models: models.map((m) => m.name),
    url: gateway?.url ?? null,
    metrics: metricsUrl ?? null,
    tracing: !!o.telemetry?.tracing,
    pid: process.pid,
  };
  if (o.json || o.events) process.stdout.write(`${JSON.stringify(ready)}\n`);
  else {
    process.stdout.write(
      `${paint.bold('Handoff node')} ${o.node} (${node.memberId}) on ${ready.nats} · namespace ${o.namespace} · models ${ready.models.join(', ')}\n`,
    );
    if (gateway) process.stdout.write(`${paint.bold('Handoff console')} ${gateway.url}\n`);
    if (metricsUrl) process.stdout.write(`${paint.dim(`metrics ${metricsUrl}`)}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void (async () => {
        await gateway?.close().catch(() => undefined);
        await sessionStore?.close();
        inspection?.close();
        await node.stop().catch(() => undefined);
        await o.telemetry?.shutdown();
      })().finally(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  if (o.json || o.events) process.stdout.write(`${JSON.stringify({ event: 'stopped', ...node.status() })}\n`);
}

export interface ClusterDemoCliOptions extends NatsSecurityCliOptions {
  nats: string;
  namespace: string;
  model: string;
  cases: number;
  reviewers: number;
  seed: number;
  arrivalMs: number;
  timeScale: number;
  progress: ProgressMode;
  json: boolean;
}

/** `handoff demo --nats`: episodes submitted to a running cluster, simulated reviewers over NATS, the summary. */
export async function runClusterDemoCli(o: ClusterDemoCliOptions): Promise<void> {
  const bar = progressBar(o.progress, 'episodes');
  const s = await runClusterDemo({
    servers: o.nats.split(','),
    keyring: dataKeyring(),
    security: natsSecurityFromOptions(o),
    namespace: o.namespace,
    model: o.model,
    cases: o.cases,
    reviewers: o.reviewers,
    seed: o.seed,
    arrivalMs: o.arrivalMs,
    timeScale: o.timeScale,
    timeoutMs: Math.max(600_000, o.cases * 200),
    onProgress: (p) => bar.update(p.finished, p.total, `· ${p.submitted} submitted`),
  });
  bar.done();
  if (o.json) printJson(s);
  else printSummary(s);
  const violations = Object.values(s.invariantViolations).reduce((a, b) => a + b, 0);
  if (s.unfinished > 0 || s.duplicateEffects > 0 || violations > 0 || s.outcomeAuditMismatch > 0 || !s.auditChain.ok)
    process.exitCode = 1;
}

function printSummary(s: ClusterDemoSummary): void {
  const out = process.stdout;
  out.write(
    `\n${paint.bold(`Handoff demo on NATS · namespace ${s.namespace} · model ${s.model} · ${s.episodes} episodes · ${s.reviewers} reviewers`)}\n`,
  );
  out.write(`outcomes ${JSON.stringify(s.outcomes)}\n`);
  out.write(
    `unfinished ${s.unfinished} · effects ${s.effects} · duplicate effects ${s.duplicateEffects} · outcome audit mismatches ${s.outcomeAuditMismatch}\n`,
  );
  out.write(
    `audit chain ${s.auditChain.ok ? paint.green('intact') : paint.red(`broken: ${s.auditChain.reason}`)} (${s.auditChain.entries} entries) · violations ${JSON.stringify(s.invariantViolations)}\n`,
  );
  out.write(
    `reviewer command p50 ${s.commandLatencyMs.p50} ms · p99 ${s.commandLatencyMs.p99} ms (${s.commandLatencyMs.n} commands)\n`,
  );
  out.write(
    `${paint.dim(`${s.episodesPerSecond} episodes/s · ${(s.wallMs / 1000).toFixed(1)} s wall · client ${JSON.stringify(s.client)}`)}\n`,
  );
}
