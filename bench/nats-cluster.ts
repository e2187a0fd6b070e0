/**
 * The runtime distributed over NATS (JetStream store, leases), on loopback:
 *
 * 1. episodes/s with 1 node and with 3 nodes (node processes `handoff start --nats --no-console`, the cluster demo driver
 *    with simulated reviewers submitting episodes through the work stream);
 * 2. reviewer command latency, request to durable acknowledgement (claim / renew / approve through
 *    any node, routed to the case's owner, committed to JetStream), p50 / p99 on a quiet 3-node cluster
 *    running in real time, and under load (the commands of the 3-node throughput run);
 * 3. beside it, raw NATS request/reply latency (a responder in another process) on the same server in
 *    the same run, and the ratio.
 *
 *   node --import tsx bench/nats-cluster.ts [--episodes 3000] [--json]
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { RetryingClient, runClusterDemo } from '../src/app/cluster-demo.ts';
import { Leases } from '../src/cluster/leases.ts';
import { NatsServer, natsServerVersion } from '../src/cluster/nats-harness.ts';
import { ensureWorkStream, workSubject, type StartRequest } from '../src/cluster/work.ts';
import { SCHEMA_VERSION } from '../src/contracts/envelope.ts';
import { HandoffError } from '../src/contracts/errors.ts';
import { loadModel } from '../src/models/loader.ts';
import { Rng } from '../src/base/rng.ts';
import type { TransitionNotice } from '../src/runtime/runtime.ts';
import { NatsTransport } from '../src/cluster/nats-transport.ts';

const argv = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const EPISODES = arg('episodes', 3000);
const RAW_SAMPLES = arg('raw-samples', 5000);
const JSON_OUT = argv.includes('--json');
const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'handoff.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);

function pct(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const us = (ms: number) => Math.round(ms * 1000);

function startNode(
  url: string,
  name: string,
  ns: string,
  scale: number,
): { ready: Promise<void>; stop: () => Promise<void> } {
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'start',
      '--nats',
      url,
      '--node',
      name,
      '--namespace',
      ns,
      '--no-console',
      '--model',
      'models/refunds',
      '--time-scale',
      String(scale),
      '--max-episodes',
      '400',
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, HANDOFF_LOG_LEVEL: 'error' } },
  );
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('"ready"') && resolve());
    proc.on('exit', () => reject(new Error(`node ${name} exited`)));
  });
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    ready,
    stop: async () => {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Raw request/reply: a responder in another process, the requester here; sequential requests. */
async function rawRequestReply(url: string, samples: number): Promise<number[]> {
  const script = `import { connect } from '@nats-io/transport-node';
const nc = await connect({ servers: ${JSON.stringify(url)} });
nc.subscribe('bench.raw', { callback: (_e, m) => m.respond(m.data) });
await nc.flush(); process.stdout.write('ready\\n');`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) =>
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()),
  );
  const nc = await connect({ servers: url });
  const payload = new TextEncoder().encode(
    JSON.stringify({
      type: 'handoff.case.renew',
      commandId: 'x'.repeat(24),
      caseId: 'ep-000001.case-1',
      reviewer: { id: 'r-amelie', roles: ['support-lead'] },
    }),
  );
  for (let i = 0; i < 500; i++) await nc.request('bench.raw', payload, { timeout: 5000 });
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await nc.request('bench.raw', payload, { timeout: 5000 });
    out.push(performance.now() - t0);
  }
  await nc.close();
  proc.kill('SIGTERM');
  return out;
}

async function throughput(
  server: NatsServer,
  nodes: number,
  episodes = EPISODES,
): Promise<Awaited<ReturnType<typeof runClusterDemo>>> {
  const ns = `tp${nodes}x${Date.now().toString(36)}`;
  const started = Array.from({ length: nodes }, (_, i) => startNode(server.url, `n${i + 1}`, ns, 3600));
  await Promise.all(started.map((n) => n.ready));
  try {
    let last = 0;
    return await runClusterDemo({
      servers: server.url,
      namespace: ns,
      cases: episodes,
      reviewers: 24,
      seed: 3,
      arrivalMs: 1000,
      timeScale: 3600,
      window: 350 * nodes,
      timeoutMs: 900_000,
      onProgress: (p) => {
        if (p.finished - last >= episodes / 10) {
          last = p.finished;
          log(`  ${nodes} node(s): ${p.finished}/${p.total}`);
        }
      },
    });
  } finally {
    await Promise.all(started.map((n) => n.stop()));
  }
}

/** Reviewer commands on a quiet 3-node cluster in real time: claim, renews, approve of open cases. */
async function commandLatency(server: NatsServer): Promise<{
  latencies: number[];
  routedRenewals: number[];
  direct: number[];
  byType: Record<string, number>;
  refused: Record<string, number>;
}> {
  const ns = `lat${Date.now().toString(36)}`;
  const nodes = ['l1', 'l2', 'l3'].map((n) => startNode(server.url, n, ns, 1));
  await Promise.all(nodes.map((n) => n.ready));
  const transport = await NatsTransport.connect(server.url);
  try {
    const model = await loadModel(join(ROOT, 'models', 'refunds'));
    const open = new Map<string, { roles: string[] }>();
    const sub = transport.subscribe(`handoff.${ns}.queue.*`, (m) => {
      const n = m.data as TransitionNotice;
      if (n.status === 'active' && n.queue && n.queue.claimedBy === null && n.seq === 0)
        open.set(n.id, { roles: n.queue.roles });
    });
    await ensureWorkStream(await jetstreamManager(transport.nc), ns);
    const js = jetstream(transport.nc);
    const rng = new Rng(42);
    for (let i = 0; i < 150; i++) {
      const id = `ep-${String(i + 1).padStart(6, '0')}`;
      const req: StartRequest = { episodeId: id, model: model.name, signal: model.handlers.synthesize(rng, i) };
      await js.publish(workSubject(ns), JSON.stringify(req), { msgID: `start:${id}` });
    }
    for (let i = 0; i < 100 && open.size < 40; i++) await sleep(100);
    await sleep(1000);
    sub.unsubscribe();
    const client = new RetryingClient(transport, { namespace: ns });
    // The same commands addressed to the case's node (the leases bucket says which), in the same run.
    const leases = await Leases.open(transport.nc, { namespace: ns });
    const direct = new RetryingClient(transport, { namespace: ns, owner: (g) => leases.ownerOf(g) });
    // Renewals through the public subject, apart from claims and approvals, to compare like with like.
    const routedRenewals = new RetryingClient(transport, { namespace: ns });
    const byType: Record<string, number> = {};
    const refused: Record<string, number> = {};
    let seq = 0;
    const send = async (
      type: string,
      caseId: string,
      reviewer: { id: string; roles: string[] },
      extra: Record<string, unknown> = {},
      via = client,
    ) => {
      const before = via.latencies.length;
      try {
        await via.command({
          type,
          schemaVersion: SCHEMA_VERSION,
          commandId: `lat-${++seq}`,
          caseId,
          reviewer,
          ...extra,
        });
        if (via.latencies.length > before) byType[type] = (byType[type] ?? 0) + 1;
        return true;
      } catch (err) {
        const code = err instanceof HandoffError ? err.code : 'internal';
        refused[code] = (refused[code] ?? 0) + 1;
        return false;
      }
    };
    for (const [caseId, c] of open) {
      const candidates = model.config.reviewers.filter((r) => r.roles.some((x) => c.roles.includes(x)));
      let reviewer: { id: string; roles: string[] } | undefined;
      for (const r of candidates) {
        if (await send('handoff.case.claim', caseId, { id: r.id, roles: r.roles })) {
          reviewer = { id: r.id, roles: r.roles };
          break;
        }
      }
      if (!reviewer) continue;
      // Renewals alternate between the routed and the direct client, on the same case.
      for (let k = 0; k < 20; k++)
        await send('handoff.case.renew', caseId, reviewer, {}, k % 2 ? direct : routedRenewals);
      await send('handoff.case.approve', caseId, reviewer, { comment: 'bench' });
    }
    leases.close();
    log(`  direct: ${direct.stats.direct} of ${direct.stats.commands} commands went straight to the case's node`);
    return {
      latencies: [...client.latencies, ...routedRenewals.latencies],
      routedRenewals: routedRenewals.latencies,
      direct: direct.latencies,
      byType,
      refused,
    };
  } finally {
    await transport.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

const server = await NatsServer.start();
try {
  log(`nats-server ${natsServerVersion()} on ${server.url} (JetStream in ${server.storeDir})`);
  log('raw NATS request/reply ...');
  const rawBefore = await rawRequestReply(server.url, RAW_SAMPLES);
  const skipThroughput = argv.includes('--latency-only');
  log(`throughput, ${EPISODES} episodes, 1 node ...`);
  const one = skipThroughput ? await throughput(server, 1, 50) : await throughput(server, 1);
  log(`throughput, ${EPISODES} episodes, 3 nodes ...`);
  const three = skipThroughput ? one : await throughput(server, 3);
  log('reviewer command latency on a quiet 3-node cluster ...');
  const lat = await commandLatency(server);
  const rawAfter = await rawRequestReply(server.url, RAW_SAMPLES);
  const raw = [...rawBefore, ...rawAfter];
  const machine = {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    node: process.version,
    natsServer: natsServerVersion(),
    date: new Date().toISOString().slice(0, 10),
  };
  const run = (s: typeof one) => ({
    episodes: s.episodes,
    runMs: s.runMs,
    episodesPerSecond: s.episodesPerSecond,
    unfinished: s.unfinished,
    duplicateEffects: s.duplicateEffects,
    outcomeAuditMismatch: s.outcomeAuditMismatch,
    auditChain: s.auditChain.ok,
    commandsUnderLoad: s.commandLatencyMs,
  });
  const result = {
    machine,
    throughput: {
      oneNode: run(one),
      threeNodes: run(three),
      scaling: Math.round((three.episodesPerSecond / one.episodesPerSecond) * 100) / 100,
    },
    reviewerCommand: {
      samples: lat.latencies.length,
      p50us: us(pct(lat.latencies, 50)),
      p99us: us(pct(lat.latencies, 99)),
      byType: lat.byType,
      refused: lat.refused,
    },
    renewalsRouted: {
      samples: lat.routedRenewals.length,
      p50us: us(pct(lat.routedRenewals, 50)),
      p99us: us(pct(lat.routedRenewals, 99)),
    },
    renewalsDirect: {
      samples: lat.direct.length,
      p50us: us(pct(lat.direct, 50)),
      p99us: us(pct(lat.direct, 99)),
    },
    rawRequestReply: { samples: raw.length, p50us: us(pct(raw, 50)), p99us: us(pct(raw, 99)) },
    ratio: { p50: 0, p99: 0 },
  };
  result.ratio = {
    p50: Math.round((result.reviewerCommand.p50us / result.rawRequestReply.p50us) * 10) / 10,
    p99: Math.round((result.reviewerCommand.p99us / result.rawRequestReply.p99us) * 10) / 10,
  };
  if (JSON_OUT) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(
      `NATS cluster · ${machine.date} · ${machine.cpu} × ${machine.cores} · node ${machine.node} · nats-server ${machine.natsServer}`,
    );
    console.log(
      `episodes/s   1 node: ${one.episodesPerSecond} (${EPISODES} in ${(one.runMs / 1000).toFixed(1)} s)   3 nodes: ${three.episodesPerSecond} (${(three.runMs / 1000).toFixed(1)} s)   scaling ×${result.throughput.scaling}`,
    );
    console.log(
      `reviewer command, request → durable ack (quiet, 3 nodes): p50 ${result.reviewerCommand.p50us} µs  p99 ${result.reviewerCommand.p99us} µs  (${lat.latencies.length} commands)`,
    );
    console.log(
      `  renewals through the public subject (forwarded to the owner): p50 ${result.renewalsRouted.p50us} µs  p99 ${result.renewalsRouted.p99us} µs  (${lat.routedRenewals.length})`,
    );
    console.log(
      `  renewals addressed to the case's node (same run, alternating): p50 ${result.renewalsDirect.p50us} µs  p99 ${result.renewalsDirect.p99us} µs  (${lat.direct.length} commands)`,
    );
    console.log(
      `raw NATS request/reply (same server, same run):          p50 ${result.rawRequestReply.p50us} µs  p99 ${result.rawRequestReply.p99us} µs  → ratio p50 ×${result.ratio.p50}, p99 ×${result.ratio.p99}`,
    );
    console.log(
      `under load (3-node throughput run): p50 ${three.commandLatencyMs.p50} ms  p99 ${three.commandLatencyMs.p99} ms  (${three.commandLatencyMs.n} commands)`,
    );
    console.log(
      `integrity: unfinished ${one.unfinished}/${three.unfinished}, duplicate effects ${one.duplicateEffects}/${three.duplicateEffects}, audit chains ${one.auditChain.ok && three.auditChain.ok ? 'intact' : 'BROKEN'}`,
    );
  }
} finally {
  await server.dispose();
}
