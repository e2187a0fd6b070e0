/**
 * The runtime on NATS against the embedded runtime, on the same work in the same run: durable
 * auto-path episodes per second (the refunds model, bench/lib/workload.ts) with 1 and 2 node
 * processes (bench/cluster-node.ts) over one nats-server this benchmark starts (JetStream, file
 * storage, a temp folder), and the embedded runtime (LevelDB) with the same episodes in flight.
 *
 * The driver submits episode starts to the work stream with msg ids and counts the agents' final
 * transition notices (`handoff.<ns>.events.agent.*`), keeping `--inflight` episodes in flight.
 *
 *   node --import tsx bench/cluster.ts [--quick] [--nodes 1,2] [--seconds 15] [--inflight 200] [--repeat 1] [--screened]
 *
 * Both sides gate with the model's own gate, as bench/episodes.ts does; `--screened` puts the
 * prompt-injection screen in front of it on both (as `handoff start` and `handoff start --nats` run).
 * `--repeat n` measures every configuration n times, interleaved, and reports the medians.
 * HANDOFF_BENCH_PROF=<dir> starts the node processes with --cpu-prof into that folder.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsServer } from '../src/cluster/nats-harness.ts';
import { ensureWorkStream, workSubject, type StartRequest } from '../src/cluster/work.ts';
import { durableEpisodes } from './episodes.ts';
import type { Runtime } from '../src/runtime/runtime.ts';
import { screenedGate } from '../src/policy/injection-screen.ts';
import { QUICK, arg, log, main, round, row, type BenchRow } from './lib/common.ts';
import { autoSignals, benchModel } from './lib/workload.ts';

const ROOT = join(import.meta.dirname, '..');
const SECONDS = arg('seconds', QUICK ? 3 : 15);
const INFLIGHT = arg('inflight', 200);
const REPEAT = arg('repeat', 1);
/** Both sides screen every observation for prompt injection first (as `handoff start` does); off by default, as in bench/episodes.ts. */
const SCREENED = process.argv.includes('--screened');
const nodesAt = process.argv.indexOf('--nodes');
const NODES = nodesAt >= 0 ? process.argv[nodesAt + 1]!.split(',').map(Number) : [1, 2];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

interface NodeProc {
  ready: Promise<void>;
  status(): Promise<Record<string, unknown> | undefined>;
  stop(): Promise<void>;
}

function startNode(url: string, name: string, ns: string): NodeProc {
  const prof = process.env.HANDOFF_BENCH_PROF;
  const flags = prof ? ['--cpu-prof', '--cpu-prof-dir', join(prof, `${ns}-${name}`)] : [];
  const args = [
    ...flags,
    '--import',
    import.meta.resolve('tsx'),
    join(ROOT, 'bench', 'cluster-node.ts'),
    url,
    name,
    ns,
    ...(SCREENED ? ['screened'] : []),
  ];
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HANDOFF_LOG_LEVEL: 'silent' },
  });
  let out = '';
  const waiters: ((line: string) => void)[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    const lines = out.split('\n');
    out = lines.pop() ?? '';
    for (const l of lines) for (const w of waiters.splice(0)) w(l);
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const ready = new Promise<void>((resolve, reject) => {
    const wait = () => waiters.push((l) => (l === 'ready' ? resolve() : wait()));
    wait();
    void exited.then(() => reject(new Error(`node ${name} exited before it was ready`)));
  });
  return {
    ready,
    status: async () => {
      const line = new Promise<string>((r) => waiters.push(r));
      proc.kill('SIGUSR2');
      const l = await Promise.race([line, new Promise<string>((r) => setTimeout(() => r(''), 5000))]);
      return l.startsWith('{') ? (JSON.parse(l) as { status: Record<string, unknown> }).status : undefined;
    },
    stop: async () => {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Episodes/s with `n` node processes: closed loop of INFLIGHT episodes submitted to the work stream. */
async function clusterRun(
  server: NatsServer,
  n: number,
  run: number,
): Promise<{ perSecond: number; p50Ms: number; statuses: unknown[]; cpu: string }> {
  const ns = `bc${n}r${run}x${Date.now().toString(36)}`;
  const model = await benchModel();
  const signals = await autoSignals(model);
  const nc = await connect({ servers: server.url, name: 'bench-driver' });
  await ensureWorkStream(await jetstreamManager(nc), ns);
  const nodes = Array.from({ length: n }, (_, i) => startNode(server.url, `n${i + 1}`, ns));
  try {
    await Promise.all(nodes.map((x) => x.ready));
    const js = jetstream(nc);
    const dec = new TextDecoder();
    const done = new Map<string, () => void>();
    nc.subscribe(`handoff.${ns}.events.agent.*`, {
      callback: (_e, m) => {
        const notice = JSON.parse(dec.decode(m.data)) as { id: string; status: string };
        if (notice.status !== 'active') done.get(notice.id)?.();
      },
    });
    await nc.flush();
    let next = 0;
    let counted = 0;
    const latencies: number[] = [];
    const t0 = performance.now();
    const warmupMs = Math.min(4000, SECONDS * 300);
    const from = t0 + warmupMs;
    const until = from + SECONDS * 1000;
    // Counters when the measured window opens: the nodes' statuses, nats-server's CPU time, the driver's.
    const opened = new Promise<Snapshot>((resolve) =>
      setTimeout(() => void snapshot(server, nodes).then(resolve), warmupMs),
    );
    const worker = async () => {
      while (performance.now() < until) {
        const i = next++;
        const id = `ep-${i}`;
        const start = performance.now();
        const finished = new Promise<void>((r) => done.set(id, r));
        const req: StartRequest = { episodeId: id, model: model.name, signal: signals[i % signals.length]!.signal };
        await js.publish(workSubject(ns), JSON.stringify(req), { msgID: `start:${id}` });
        const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref());
        const r = await Promise.race([finished, timeout]);
        done.delete(id);
        if (r === 'timeout') throw new Error(`${id} did not finish within 60 s on ${n} node(s)`);
        const end = performance.now();
        if (end >= from && end <= until) {
          counted++;
          latencies.push(end - start);
        }
      }
    };
    await Promise.all(Array.from({ length: INFLIGHT }, () => worker()));
    const closed = await snapshot(server, nodes);
    latencies.sort((a, b) => a - b);
    return {
      perSecond: counted / SECONDS,
      p50Ms: latencies[Math.floor(latencies.length / 2)] ?? NaN,
      statuses: closed.nodes,
      cpu: cpuPerEpisode(await opened, closed),
    };
  } finally {
    await Promise.all(nodes.map((x) => x.stop()));
    await nc.close();
  }
}

type NodeStatus =
  | {
      started?: number;
      store?: Record<string, number>;
      nats?: Record<string, number>;
      cpu?: { user: number; system: number };
    }
  | undefined;

interface Snapshot {
  nodes: NodeStatus[];
  /** CPU time in µs of nats-server (undefined where /proc is not there) and of this driver. */
  server: number | undefined;
  driver: number;
}

/** CPU time of a process in µs, from /proc (Linux); undefined elsewhere. */
function procCpuMicros(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100; // utime + stime, in clock ticks of 1/100 s
  } catch {
    return undefined;
  }
}

async function snapshot(server: NatsServer, nodes: NodeProc[]): Promise<Snapshot> {
  const cpu = process.cpuUsage();
  return {
    nodes: (await Promise.all(nodes.map((x) => x.status()))) as NodeStatus[],
    server: procCpuMicros(server.pid),
    driver: cpu.user + cpu.system,
  };
}

/** CPU time per episode started in the window, in µs: the nodes (together), nats-server and the driver. */
function cpuPerEpisode(a: Snapshot, b: Snapshot): string {
  const sum = (s: Snapshot, f: (n: NonNullable<NodeStatus>) => number) =>
    s.nodes.reduce((t, n) => t + (n ? f(n) : 0), 0);
  const started = sum(b, (n) => n.started ?? 0) - sum(a, (n) => n.started ?? 0);
  if (started <= 0) return 'no episodes started in the window';
  const nodeCpu =
    sum(b, (n) => (n.cpu ? n.cpu.user + n.cpu.system : 0)) - sum(a, (n) => (n.cpu ? n.cpu.user + n.cpu.system : 0));
  const us = (v: number) => `${Math.round(v / started)} µs`;
  const server = a.server !== undefined && b.server !== undefined ? us(b.server - a.server) : 'n/a';
  return `CPU per episode: nodes ${us(nodeCpu)}, nats-server ${server}, driver ${us(b.driver - a.driver)}`;
}

/** Each node's writes and NATS messages per episode it started (the round trips a node makes per episode). */
function perEpisode(statuses: unknown[]): string {
  return (statuses as NodeStatus[])
    .map((s) => {
      const n = Math.max(1, s?.started ?? 0);
      const per = (v: number | undefined) => round((v ?? 0) / n, 2);
      const st = s?.store ?? {};
      return `commits ${per(st.commits)} (journal-only ${per(st.journalOnly)}), tails ${per(st.tails)}, msgs out ${per(s?.nats?.outMsgs)} in ${per(s?.nats?.inMsgs)}`;
    })
    .join(' | ');
}

/**
 * The embedded runtime's CPU time per finished episode (this process: runtime, LevelDB's threads),
 * from the warm-up's end (as durableEpisodes counts it) until the runtime is idle again.
 */
function embeddedCpu(rt: Runtime, report: (s: string) => void): () => void {
  let finished = 0;
  let from: { cpu: NodeJS.CpuUsage; finished: number } | undefined;
  const off = rt.onTransition((n) => {
    if (n.kind === 'agent' && n.status !== 'active') finished++;
  });
  const timer = setTimeout(() => (from = { cpu: process.cpuUsage(), finished }), Math.min(3000, SECONDS * 300));
  return () => {
    clearTimeout(timer);
    off();
    if (!from || finished === from.finished) return report('CPU per episode: n/a');
    const c = process.cpuUsage(from.cpu);
    report(`CPU per episode: ${Math.round((c.user + c.system) / (finished - from.finished))} µs`);
  };
}

await main('cluster', async (): Promise<BenchRow[]> => {
  const server = await NatsServer.start();
  const embedded: number[] = [];
  const byNodes = new Map<number, number[]>(NODES.map((n) => [n, []]));
  try {
    log(`cluster: ${INFLIGHT} episodes in flight, ${SECONDS} s per run, nodes ${NODES.join(',')}, ${REPEAT} round(s)`);
    for (let r = 0; r < REPEAT; r++) {
      let cpu = '';
      const e = await durableEpisodes({
        inflight: INFLIGHT,
        seconds: SECONDS,
        attach: (rt) => embeddedCpu(rt, (s) => (cpu = s)),
        ...(SCREENED ? { runtime: { gateFor: (m) => screenedGate(m, m.gate) } } : {}),
      });
      embedded.push(e.episodesPerSecond);
      log(`  round ${r + 1}: embedded ${round(e.episodesPerSecond)} episodes/s (${cpu})`);
      for (const n of NODES) {
        const c = await clusterRun(server, n, r);
        byNodes.get(n)!.push(c.perSecond);
        log(
          `  round ${r + 1}: ${n} node(s) ${round(c.perSecond)} episodes/s (p50 episode ${round(c.p50Ms, 1)} ms; ${c.cpu}; per episode started: ${perEpisode(c.statuses)})`,
        );
      }
    }
  } finally {
    await server.dispose();
  }
  const emb = median(embedded);
  const rows: BenchRow[] = [];
  const one = byNodes.has(1) ? median(byNodes.get(1)!) : undefined;
  for (const n of NODES) {
    const v = median(byNodes.get(n)!);
    const note = `${SCREENED ? 'both with the prompt-injection screen' : "both with the model's own gate"}; median of ${REPEAT}: ${byNodes
      .get(n)!
      .map((x) => round(x))
      .join(', ')}; embedded ${embedded.map((x) => round(x)).join(', ')}`;
    rows.push(
      row(
        `durable episodes/s, ${n} node process(es) over NATS (${INFLIGHT} in flight)`,
        'episodes/s',
        round(v),
        { name: 'embedded runtime (LevelDB), same work, same run', value: round(emb) },
        { ...(n === 1 ? { target: '≥ 0.5 × embedded' } : {}), note },
      ),
    );
    if (n > 1 && one !== undefined)
      rows.push(
        row(
          `${n} node processes against 1 (same run)`,
          'episodes/s',
          round(v),
          { name: '1 node process over the same nats-server', value: round(one) },
          n === 2 ? { target: '≥ 1.4 × one node' } : {},
        ),
      );
  }
  return rows;
});
