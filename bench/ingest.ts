/**
 * Ingestion: signals accepted per second over HTTP into the embedded runtime (`POST
 * /api/v1/models/refunds/signals`, one signal per request, a fresh idempotency key each, a service
 * account key, each 202 meaning the episode's start is durable in LevelDB), against the raw rate of
 * an empty route of the same HTTP framework (a POST that parses the same JSON body and answers 202)
 * measured in the same run, same client, same concurrency. Also the bare `node:http` empty route, for
 * scale. Client and server share this process (and the machine's cores).
 *
 *   node --import tsx bench/ingest.ts [--quick] [--seconds 8] [--concurrency 32]
 */
import { readFile } from 'node:fs/promises';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { QUICK, arg, closedLoop, log, main, pct, round, row, withTempDir, type BenchRow } from './lib/common.ts';

const SECONDS = arg('seconds', QUICK ? 3 : 8);
const CONCURRENCY = arg('concurrency', 32);
const ROOT = join(import.meta.dirname, '..');

const signal = (i: number) => ({
  signal: {
    ticketId: `T-${i}`,
    orderId: 'ORD-10000042',
    reason: 'arrived broken',
    channel: 'email',
    requestedAmount: 40 + (i % 500),
  },
});

/** Closed-loop POSTs of one JSON body each, over keep-alive connections; counts answers with `expect`. */
async function load(url: string, headers: (i: number) => Record<string, string>, expect: number, run: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const target = new URL(url);
  let bad = 0;
  const post = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify(signal(i));
      const req = request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers(i) },
        },
        (res) => {
          if (res.statusCode !== expect) bad++;
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const r = await closedLoop({ concurrency: CONCURRENCY, ms: SECONDS * 1000, warmupMs: 1000 }, (i) => post(i));
  agent.destroy();
  const p50 = round(pct(r.latencies, 50), 2);
  const p99 = round(pct(r.latencies, 99), 2);
  log(`${run}: ${round(r.perSecond)}/s · p50 ${p50} ms · p99 ${p99} ms · ${bad} unexpected answers`);
  if (bad > 0) throw new Error(`${run}: ${bad} answers were not ${expect}`);
  return r;
}

/** The same framework's empty route: Fastify if the gateway is built on it, else node:http. */
async function emptyRoute(kind: 'fastify' | 'node:http'): Promise<{ url: string; close(): Promise<void> }> {
  if (kind === 'fastify') {
    const { default: Fastify } = await import('fastify');
    const app = Fastify({ logger: false });
    app.post('/empty', async (_req, reply) => reply.code(202).send({}));
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { url: `${url}/empty`, close: () => app.close() };
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(202, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/empty`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function ingestion(): Promise<BenchRow[]> {
  const gatewaySource = await readFile(join(ROOT, 'src/gateway/server.ts'), 'utf8');
  const framework = /from 'fastify'/.test(gatewaySource) ? 'fastify' : 'node:http';
  const { startConsole } = await import('../src/app/embedded-console.ts');
  const { ServiceAccounts } = await import('../src/gateway/service-accounts.ts');
  return withTempDir('ingest', async (data) => {
    // The per-account rate limit (200/s by default) is a protection, not what is measured: it is
    // lifted here, else the benchmark would count fast 429s (the in-flight bound stays as it is).
    const running = await startConsole({
      data,
      models: [join(ROOT, 'models/refunds')],
      port: 0,
      apiLimits: { perAccountPerSecond: 1e9, perAccountBurst: 1e9 },
    });
    let ours;
    try {
      const { key } = await new ServiceAccounts(running.store).create('bench', { refunds: ['signals:submit'] });
      const run = Date.now().toString(36);
      ours = await load(
        `${running.url}/api/v1/models/refunds/signals`,
        (i) => ({ Authorization: `Bearer ${key}`, 'Idempotency-Key': `bench-${run}-${i}` }),
        202,
        'signals over HTTP',
      );
    } finally {
      await running.close();
    }
    const ref = await emptyRoute(framework);
    let raw;
    try {
      raw = await load(ref.url, () => ({}), 202, `${framework} empty route`);
    } finally {
      await ref.close();
    }
    // With --quick only the framework's own route (the reference) is measured.
    const bare =
      framework === 'node:http' || QUICK
        ? framework === 'node:http'
          ? raw
          : null
        : await (async () => {
            const b = await emptyRoute('node:http');
            try {
              return await load(b.url, () => ({}), 202, 'node:http empty route');
            } finally {
              await b.close();
            }
          })();
    const bareRate = bare ? `${round(bare.perSecond)}/s` : 'not measured (--quick)';
    return [
      row(
        `ingestion: signals accepted/s over HTTP into the embedded runtime (${CONCURRENCY} connections)`,
        'signals/s',
        round(ours.perSecond),
        { name: `${framework} empty POST route, same body and client`, value: round(raw.perSecond) },
        {
          note:
            'each 202 is a durable episode start (the episode then runs: perceive, plan, gate, review or act); ' +
            `p99 ${round(pct(ours.latencies, 99), 1)} ms; gateway on ${framework}; ` +
            `bare node:http empty route ${bareRate}; client in the same process`,
        },
      ),
    ];
  });
}

if (import.meta.url === `file://${process.argv[1]}`) await main('ingest', ingestion);
