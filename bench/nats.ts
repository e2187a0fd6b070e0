/**
 * Reviewer command latency over NATS, and raw NATS request/reply on the same server in the same run.
 *
 * The reviewer-command figure needs a NATS transport in `src/transport`; the raw figure needs the
 * `@nats-io/transport-node` client and a `nats-server` binary. The benchmark starts its own
 * nats-server on a free loopback port with JetStream in a temp folder, and stops it. Whatever is
 * missing is reported as skipped, with the reason.
 *
 *   node --import tsx bench/nats.ts [--quick] [--samples 5000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect as tcpConnect } from 'node:net';
import type { PrivateBatch } from '../src/runtime/level-format.ts';
import { QUICK, arg, log, main, pct, round, row, skipped, withTempDir, type BenchRow } from './lib/common.ts';

const SAMPLES = arg('samples', QUICK ? 2000 : 10_000);
/** Requests sent before measuring, by both figures alike (JIT, connections, caches). */
const WARMUP = 500;
/** Both figures' connections use the options of Handoff's own (NatsTransport.connect). */
const CONNECT_OPTIONS = { noAsyncTraces: true };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nats-server did not listen on 127.0.0.1:${port} within ${ms} ms`);
}

/** Starts `nats-server -a 127.0.0.1 -p PORT -js -sd DIR`; resolves once it accepts connections. */
export async function startNatsServer(
  dir: string,
): Promise<{ port: number; proc: ChildProcess; stop: () => Promise<void> }> {
  const port = await freePort();
  const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
  const failed = new Promise<never>((_, reject) => proc.once('error', reject));
  await Promise.race([waitForPort(port, 10_000), failed]);
  return {
    port,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

async function hasBinary(name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn(name, ['--version'], { stdio: 'ignore' });
    p.once('error', () => resolve(false));
    p.once('exit', (code) => resolve(code === 0));
  });
}

interface NatsClient {
  connect(opts: { servers: string; noAsyncTraces?: boolean }): Promise<{
    subscribe(
      subject: string,
      opts: { callback: (err: unknown, msg: { data: Uint8Array; respond(data: Uint8Array): boolean }) => void },
    ): unknown;
    request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<unknown>;
    flush(): Promise<void>;
    drain(): Promise<void>;
  }>;
}

/** A request's payload the size of a reviewer command's. */
const COMMAND_PAYLOAD = new TextEncoder().encode(
  JSON.stringify({
    type: 'handoff.case.claim',
    caseId: 'ep-000001.case-1',
    reviewer: { id: 'r-bench', roles: ['support-lead'] },
  }),
);

/**
 * Latency percentiles (µs), and the CPU time this process spent per request meanwhile (µs, every
 * thread: the event loop, LevelDB's, the garbage collector's; not nats-server's). CPU time moves far
 * less than the tail with what else runs on the machine, and a tail made of waits for a core grows
 * with it.
 */
interface Figures {
  p50: number;
  p99: number;
  cpu: number;
}

/** `samples` sequential requests after the warm-up, each timed from the call to its reply (µs). */
async function measure(samples: number, request: (i: number) => Promise<unknown>): Promise<Figures> {
  let i = 0;
  for (; i < WARMUP; i++) await request(i);
  const lat: number[] = [];
  const cpu = process.cpuUsage();
  for (; lat.length < samples; i++) {
    const t = performance.now();
    await request(i);
    lat.push((performance.now() - t) * 1000);
  }
  const used = process.cpuUsage(cpu);
  return { p50: pct(lat, 50), p99: pct(lat, 99), cpu: (used.user + used.system) / samples };
}

/**
 * Raw request/reply: one connection answers (echoes the request), another sends; the same topology
 * as the reviewer commands' (a server connection, a client connection, one process), without the
 * runtime in between.
 */
async function rawRequestReply(client: NatsClient, port: number, samples: number): Promise<Figures> {
  const servers = `127.0.0.1:${port}`;
  const responder = await client.connect({ servers, ...CONNECT_OPTIONS });
  const nc = await client.connect({ servers, ...CONNECT_OPTIONS });
  try {
    responder.subscribe('bench.echo', { callback: (_err, msg) => void msg.respond(msg.data) });
    await responder.flush(); // the server has the subscription before the first request
    return await measure(samples, () => nc.request('bench.echo', COMMAND_PAYLOAD, { timeout: 2000 }));
  } finally {
    await nc.drain();
    await responder.drain();
  }
}

/**
 * The floor of a durable reply: raw request/reply whose responder answers only once one LevelDB batch
 * is written, the way the embedded store writes (group commit: the batch starts in the next check
 * phase; the batch call the store uses; `sync` as the store's default). The batch holds what a
 * reviewer command writes here on average (8 puts, 3.2 KB: the case's record, journal entry, timers,
 * command id, audit entry; an approval's outbox message and dead letter), with none of the runtime's
 * work. The reviewer-command figure minus this one is the runtime's own cost; this one minus raw is
 * the store's round trip.
 */
async function durableRequestReply(client: NatsClient, port: number, samples: number): Promise<Figures> {
  const { Level } = await import('level');
  return withTempDir('nats-durable', async (dir) => {
    const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    await db.open();
    const servers = `127.0.0.1:${port}`;
    const responder = await client.connect({ servers, ...CONNECT_OPTIONS });
    const nc = await client.connect({ servers, ...CONNECT_OPTIONS });
    try {
      const value = 'x'.repeat(400);
      let n = 0;
      const batch = db as unknown as PrivateBatch;
      responder.subscribe('bench.durable', {
        callback: (_err, msg) =>
          setImmediate(() => {
            const k = (n++ % 5000).toString().padStart(6, '0');
            const ops = Array.from({ length: 8 }, (_, i) => ({
              type: 'put' as const,
              key: `f:${k}:${i}`,
              value,
              keyEncoding: 'utf8' as const,
              valueEncoding: 'utf8' as const,
            }));
            void batch._batch(ops, { sync: false }).then(() => msg.respond(msg.data));
          }),
      });
      await responder.flush();
      return await measure(samples, () => nc.request('bench.durable', COMMAND_PAYLOAD, { timeout: 2000 }));
    } finally {
      await nc.drain();
      await responder.drain();
      await db.close();
    }
  });
}

/**
 * Reviewer commands over NATS: a runtime serving commands on one NATS connection, a client sending
 * them on another; each sample is one command (claim, then approve, of an open case), from request
 * to the durable acknowledgement.
 */
async function reviewerCommands(port: number, samples: number): Promise<Figures> {
  const pino = (await import('pino')).default;
  const { NatsTransport } = await import('../src/cluster/nats-transport.ts');
  const { serveCommands } = await import('../src/runtime/command-server.ts');
  const { HandoffClient } = await import('../src/transport/client.ts');
  const { LevelStore } = await import('../src/runtime/level-store.ts');
  const { Runtime } = await import('../src/runtime/runtime.ts');
  const { LevelWorld } = await import('../src/runtime/world.ts');
  const { benchModel, reviewSignals, LEAD } = await import('./lib/workload.ts');
  const model = await benchModel();
  const signal = (await reviewSignals(model))[0]!;
  return withTempDir('nats-commands', async (dir) => {
    const url = `nats://127.0.0.1:${port}`;
    const serverSide = await NatsTransport.connect(url, { name: 'bench-node' });
    const clientSide = await NatsTransport.connect(url, { name: 'bench-reviewer' });
    const store = await LevelStore.open(dir);
    const rt = await Runtime.open({
      store,
      world: new LevelWorld(store),
      models: [model],
      logger: pino({ level: 'silent' }),
      transport: serverSide,
      seed: 'bench',
    });
    const served = serveCommands(rt);
    const client = new HandoffClient(clientSide, { namespace: rt.namespace });
    try {
      const cases = Math.ceil((samples + WARMUP) / 2) + 1;
      const now = Date.now();
      for (let i = 0; i < cases; i += 500)
        await Promise.all(
          Array.from({ length: Math.min(500, cases - i) }, (_, k) =>
            rt.openCase({
              caseId: `nb-${i + k}.case-1`,
              episodeId: `nb-${i + k}`,
              model: model.name,
              tier: 1,
              tiers: model.config.review.tiers,
              leaseMs: model.config.review.leaseMs,
              plan: signal.plan,
              decision: signal.decision,
              observation: signal.observation,
              openedAt: now,
            }),
          ),
        );
      await rt.whenIdle();
      // Claim, then approve, of case after case: command n is the claim (even n) or the approval
      // (odd n) of case n/2.
      return await measure(samples, (n) => {
        const type = n % 2 === 0 ? 'claim' : 'approve';
        const i = Math.floor(n / 2);
        return client.command({
          type: `handoff.case.${type}`,
          schemaVersion: 1,
          commandId: `nb-${type}-${i}`,
          caseId: `nb-${i}.case-1`,
          reviewer: LEAD,
        });
      });
    } finally {
      served.unsubscribe();
      await rt.whenIdle();
      await rt.close();
      await store.close();
      await clientSide.close();
      await serverSide.close();
    }
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main('nats', async (): Promise<BenchRow[]> => {
    const cmdName = 'reviewer command over NATS, request to durable ack, p99';
    const rawName = 'raw NATS request/reply p99 (same server)';
    const floorName = 'request/reply + one LevelDB batch, p99 (same server)';
    let client: NatsClient | undefined;
    try {
      client = (await import('@nats-io/transport-node' as string)) as NatsClient;
    } catch {
      client = undefined;
    }
    const binary = await hasBinary('nats-server');
    const why = [
      ...(client ? [] : ['@nats-io/transport-node is not installed']),
      ...(binary ? [] : ['no nats-server binary on PATH']),
    ];
    if (!client || !binary)
      return [
        skipped(cmdName, 'µs', why.join('; '), 'p99 ≤ 3 × raw p99'),
        skipped(floorName, 'µs', why.join('; ')),
        skipped(rawName, 'µs', why.join('; ')),
      ];
    return withTempDir('nats', async (dir) => {
      const server = await startNatsServer(dir);
      try {
        log(`nats: nats-server on 127.0.0.1:${server.port}`);
        const raw = await rawRequestReply(client, server.port, SAMPLES);
        log(`nats: raw request/reply p50 ${round(raw.p50)} µs, p99 ${round(raw.p99)} µs, CPU ${round(raw.cpu)} µs`);
        const rawRef = { name: 'raw NATS request/reply p99, same server', value: round(raw.p99) };
        const rows: BenchRow[] = [];
        const floor = await durableRequestReply(client, server.port, SAMPLES);
        log(
          `nats: request/reply + one LevelDB batch p50 ${round(floor.p50)} µs, p99 ${round(floor.p99)} µs, CPU ${round(floor.cpu)} µs`,
        );
        const cmd = await reviewerCommands(server.port, SAMPLES);
        log(`nats: reviewer commands p50 ${round(cmd.p50)} µs, p99 ${round(cmd.p99)} µs, CPU ${round(cmd.cpu)} µs`);
        rows.push(
          row(cmdName, 'µs', round(cmd.p99), rawRef, {
            better: 'lower',
            target: 'ratio ≤ 3 (issue 23)',
            note: `p50 ${round(cmd.p50)} µs (raw ${round(raw.p50)} µs); CPU ${round(cmd.cpu)} µs per command (raw ${round(raw.cpu)} µs per request); ${SAMPLES} commands`,
          }),
        );
        rows.push(
          row(floorName, 'µs', round(floor.p99), rawRef, {
            better: 'lower',
            note: `p50 ${round(floor.p50)} µs; CPU ${round(floor.cpu)} µs per request; the floor of a durable reply (8 puts, 3.2 KB); ${SAMPLES} samples`,
          }),
        );
        rows.push(
          row('raw NATS request/reply p50 (same server)', 'µs', round(raw.p50), null, {
            better: 'lower',
            note: `p99 ${round(raw.p99)} µs; ${SAMPLES} samples`,
          }),
        );
        return rows;
      } finally {
        await server.stop();
      }
    });
  });
}
