/**
 * Issue 20, items 3, 4 and 6 on a cluster: `/api/v1` served by two in-process nodes' gateways on a real
 * nats-server, through the typed client (HTTP and NATS). The same key sent 50 times at once, spread over
 * both nodes, starts one episode (exactly one answer says `created: true`); the episode is readable on
 * the node that did not start it; a bad signal is a 400 naming the field; a revoked key is refused on
 * both nodes (the accounts live in the namespace's store); the NATS client's `watch` gets a refusal as a
 * typed error and an accepted signal's notices.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiClientError, NatsSignalsClient, episodeIdFor } from '../../src/client.ts';
import { clusterApi, clusterGatewayBackend } from '../../src/app/cluster-console.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { ServiceAccounts } from '../../src/gateway/service-accounts.ts';
import { loadModel } from '../../src/models/loader.ts';
import { CLI, freshNamespace, natsConnect, startServer } from './helpers.ts';

const silent = pino({ level: 'silent' });
const signal = {
  ticketId: 'T-9',
  orderId: 'ORD-10000042',
  reason: 'arrived broken',
  channel: 'email',
  requestedAmount: 900,
};

describe('/api/v1 and the typed client on a two-node cluster (issue 20)', () => {
  let server: NatsServer;
  const nodes: ClusterNode[] = [];
  const gateways: Gateway[] = [];
  let key: string;
  let accountId: string;
  let accounts: ServiceAccounts;
  let ns: string;
  beforeAll(async () => {
    server = await startServer();
    const model = await loadModel('models/refunds');
    ns = freshNamespace('apiv1');
    for (const name of ['a', 'b']) {
      const node = await ClusterNode.start({
        servers: server.url,
        node: name,
        namespace: ns,
        models: [model],
        logger: silent,
        timeScale: 3600,
      });
      nodes.push(node);
      const backend = clusterGatewayBackend(node);
      gateways.push(await Gateway.start({ backend, host: '127.0.0.1', port: 0, log: silent, api: clusterApi(node) }));
    }
    accounts = new ServiceAccounts(nodes[0]!.store);
    const created = await accounts.create('crm', { refunds: ['signals:submit', 'episodes:read'] });
    key = created.key;
    accountId = created.account.id;
  }, 120_000);
  afterAll(async () => {
    for (const g of gateways) await g.close().catch(() => undefined);
    for (const n of nodes) await n.stop().catch(() => undefined);
    await server?.dispose();
  });

  const client = (i: number, k = key) => new ApiClient({ baseUrl: gateways[i]!.url, key: k });

  it('50 concurrent submissions of one key over both nodes start one episode', { timeout: 120_000 }, async () => {
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => client(i % 2).submit('refunds', signal, { idempotencyKey: 'order-77' })),
    );
    const id = episodeIdFor('refunds', 'order-77');
    expect(new Set(answers.map((a) => a.episodeId))).toEqual(new Set([id]));
    expect(answers.filter((a) => a.created)).toHaveLength(1);
    // Readable at once on either node, whichever started it.
    for (const i of [0, 1]) expect((await client(i).episode(id)).model).toBe('refunds');
    let agents = 0;
    for await (const e of nodes[0]!.store.index()) if (e.kind === 'agent' && e.id === id) agents++;
    expect(agents).toBe(1);
    expect(nodes[0]!.stats.started + nodes[1]!.stats.started).toBe(1);
    // It goes to review (confidence below the threshold for this amount): a case in a queue.
    const e = await client(1).waitForOutcome(id, { until: (x) => x.cases.length > 0, timeoutMs: 60_000 });
    expect(e.decision?.outcome).toBe('review');
  });

  it(
    'a traceparent header over HTTP on the cluster becomes the episode trace, read on the other node',
    { timeout: 60_000 },
    async () => {
      const traceId = '0af7651916cd43dd8448eb211c80319c';
      const traceparent = `00-${traceId}-b7ad6b7169203331-01`;
      const a = await client(1).submit('refunds', signal, { idempotencyKey: 'traced-http', traceparent });
      expect((await client(0).episode(a.episodeId)).traceId).toBe(traceId);
    },
  );

  it(
    'the outcome stream and the episode list on the cluster, read on the other node',
    { timeout: 60_000 },
    async () => {
      const small = { ...signal, ticketId: 'T-small', requestedAmount: 20 };
      const accepted = await client(1).submit('refunds', small, { idempotencyKey: 'small-1' });
      const seen: string[] = [];
      for await (const e of client(0).events(accepted.episodeId)) seen.push(e.type);
      expect(seen.at(-1)).toBe('outcome');
      expect((await client(0).waitForOutcome(accepted.episodeId)).outcome).toBe('autoActed');
      const ids: string[] = [];
      for await (const e of client(1).allEpisodes({ model: 'refunds', limit: 2 })) ids.push(e.id);
      expect(ids).toEqual([...ids].sort());
      expect(ids).toEqual(expect.arrayContaining([accepted.episodeId, episodeIdFor('refunds', 'order-77')]));
      expect((await client(0).episodes({ outcome: 'autoActed' })).episodes.map((e) => e.id)).toContain(
        accepted.episodeId,
      );
    },
  );

  it('a bad signal is a 400 naming the field; nothing starts', { timeout: 60_000 }, async () => {
    const err = await client(1)
      .submit('refunds', { ...signal, channel: 'pigeon' }, { idempotencyKey: 'bad-1' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiClientError);
    expect(err).toMatchObject({ status: 400, code: 'contract.invalid', details: { path: 'signal.channel' } });
    const missing = await client(0)
      .episode(episodeIdFor('refunds', 'bad-1'))
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404, code: 'episode.not_found' });
  });

  it(
    'over NATS: watch gets a refusal as a typed error, and an accepted signal its notices',
    { timeout: 60_000 },
    async () => {
      const nc = await natsConnect(server.url);
      try {
        const nats = new NatsSignalsClient(nc, { namespace: ns });
        const refused = nats.watch('refunds', 'nats-bad');
        await refused.ready;
        await nats.submit('refunds', { ...signal, orderId: 7 }, { idempotencyKey: 'nats-bad' });
        await expect(refused).rejects.toMatchObject({
          status: 400,
          code: 'contract.invalid',
          details: { path: 'signal.orderId' },
        });
        const started = nats.watch('refunds', 'nats-good', { until: () => true });
        await started.ready;
        const sent = await nats.submit('refunds', signal, { idempotencyKey: 'nats-good' });
        expect(sent).toMatchObject({ episodeId: episodeIdFor('refunds', 'nats-good'), duplicate: false });
        expect((await started).id).toBe(sent.episodeId);
        expect((await nats.submit('refunds', signal, { idempotencyKey: 'nats-good' })).duplicate).toBe(true);
        // No node loads 'incidents': its subject has no stream, and the client says so.
        const none = await nats.submit('incidents', signal, { idempotencyKey: 'x-1' }).catch((e: unknown) => e);
        expect(none).toMatchObject({ status: 404, code: 'model.not_found' });
        // The HTTP API reads what came in over NATS.
        expect((await client(0).episode(sent.episodeId)).id).toBe(sent.episodeId);
      } finally {
        await nc.close();
      }
    },
  );

  it(
    'handoff accounts --nats: a key created beside the running nodes works on both; revoked, on neither',
    { timeout: 90_000 },
    async () => {
      const run = async (...args: string[]) => {
        const { stdout } = await promisify(execFile)(
          process.execPath,
          [CLI, 'accounts', ...args, '--nats', server.url, '--namespace', ns, '--json'],
          {
            env: { ...process.env, NO_COLOR: '1', HANDOFF_LOG_LEVEL: 'error' },
          },
        );
        return JSON.parse(stdout) as { id: string; key: string; accounts?: { id: string }[] };
      };
      const created = await run('create', '--name', 'erp', '--scope', 'refunds:*');
      for (const i of [0, 1]) {
        const a = await client(i, created.key).submit('refunds', signal, { idempotencyKey: `cli-${i}` });
        expect(a.created).toBe(true);
      }
      expect((await run('list')).accounts?.map((a) => a.id)).toContain(created.id);
      await run('revoke', created.id);
      for (const i of [0, 1]) {
        const err = await client(i, created.key)
          .submit('refunds', signal, { idempotencyKey: 'cli-after' })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ status: 401, code: 'auth.key_revoked' });
      }
    },
  );

  it('a revoked key is refused on both nodes', { timeout: 60_000 }, async () => {
    await accounts.revoke(accountId);
    for (const i of [0, 1]) {
      const err = await client(i)
        .submit('refunds', signal, { idempotencyKey: 'after-revoke' })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 401, code: 'auth.key_revoked' });
    }
    expect(await nodes[1]!.runtime.get(episodeIdFor('refunds', 'after-revoke'))).toBeUndefined();
  });
});
