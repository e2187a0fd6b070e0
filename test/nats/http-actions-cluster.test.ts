/**
 * HTTP actions on a cluster (docs/api.md, "HTTP actions"): the example model on cluster nodes, its
 * actions calling the example refunds service (examples/refunds-service) for real. Node A (a child
 * process) is SIGKILLed while its episodes call the service; node B takes them over. At the service's
 * side every refund is applied exactly once under its episode's key, every bounced notification's
 * refund is reversed once by its own compensation, and every call carried a fencing token.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsSignalsClient, episodeIdFor } from '../../src/client.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { loadModel } from '../../src/models/loader.ts';
import {
  exactlyOnceProblems,
  startRefundsService,
  type RunningService,
} from '../../examples/refunds-service/service.ts';
import { refundRequest } from '../../examples/refunds-service/producer.ts';
import { NodeProcess, freshNamespace, natsConnect, startServer, until } from './helpers.ts';

const silent = pino({ level: 'silent' });
const N = 30;
const TOKEN = 'cluster-http-token';
const MODEL_DIR = resolve('examples/refunds-service/model');

describe('HTTP actions on a cluster: a node killed while its actions call the service', () => {
  let server: NatsServer;
  let service: RunningService;
  let dir: string;
  let a: NodeProcess | undefined;
  let b: ClusterNode | undefined;
  beforeAll(async () => {
    server = await startServer();
    dir = await mkdtemp(join(tmpdir(), 'handoff-http-cluster-'));
    service = await startRefundsService({ data: join(dir, 'service'), token: TOKEN, failRate: 0.05, dropRate: 0.1 });
    process.env.REFUNDS_SERVICE_URL = service.url;
    process.env.REFUNDS_SERVICE_TOKEN = TOKEN;
  });
  afterAll(async () => {
    await a?.kill();
    await b?.stop().catch(() => undefined);
    await service?.close();
    await server?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'applies every refund once and reverses exactly the bounced ones, across the takeover',
    { timeout: 180_000 },
    async () => {
      const ns = freshNamespace('httpcluster');
      a = new NodeProcess(server.url, 'a', ns, ['--model', MODEL_DIR, '--time-scale', '3600'], {
        REFUNDS_SERVICE_URL: service.url,
        REFUNDS_SERVICE_TOKEN: TOKEN,
      });
      await a.ready;
      const nc = await natsConnect(server.url);
      try {
        const client = new NatsSignalsClient(nc, { namespace: ns });
        const requests = Array.from({ length: N }, (_, i) => refundRequest('cl', i, { bounceEvery: 6 }));
        await Promise.all(requests.map((r) => client.submit('shop-refunds', { ...r }, { idempotencyKey: r.ticketId })));
        // Killed while its episodes call the service: some refunds applied, not all.
        await until('A applied some refunds', async () => (await service.ledger()).events.length >= 5, 60_000);
        await a.kill();
        const before = (await service.ledger()).events.length;
        b = await ClusterNode.start({
          servers: server.url,
          node: 'b',
          namespace: ns,
          models: [await loadModel(MODEL_DIR)],
          logger: silent,
          timeScale: 3600,
        });
        const ids = requests.map((r) => episodeIdFor('shop-refunds', r.ticketId));
        const bounced = requests
          .filter((r) => r.email.endsWith('.invalid'))
          .map((r) => episodeIdFor('shop-refunds', r.ticketId));
        await until(
          'every episode acted or compensated',
          async () => {
            const l = await service.ledger();
            return (
              l.events.filter((e) => e.type === 'notification.sent').length === N - bounced.length &&
              l.events.filter((e) => e.type === 'refund.reversed').length === bounced.length
            );
          },
          90_000,
        );
        const ledger = await service.ledger();
        expect(exactlyOnceProblems(ledger)).toEqual([]);
        const applied = ledger.events.filter((e) => e.type === 'refund.applied').map((e) => e.key);
        expect(applied.sort()).toEqual(ids.map((id) => `${id}/0`).sort());
        const reversed = ledger.events.filter((e) => e.type === 'refund.reversed').map((e) => e.key);
        expect(reversed.sort()).toEqual(bounced.map((id) => `${id}/0/compensate`).sort());
        // Every call came from a node holding the episode's lease, and said which revision.
        expect(ledger.events.every((e) => typeof e.fencingToken === 'number' && e.fencingToken > 0)).toBe(true);
        // The kill landed with work left: node B made the rest of the calls.
        expect(before).toBeLessThan(ledger.events.length);
        console.log(
          `[http-actions-cluster] service events before the kill ${before}, after ${ledger.events.length}; ` +
            `replays ${ledger.replays}; faults ${ledger.faults.failed + ledger.faults.dropped}; node B took over ` +
            `${b.stats.takeovers} groups`,
        );
      } finally {
        await nc.close();
      }
    },
  );
});
