/**
 * Issue 20, item 3 (NATS): signals over NATS on a real nats-server, two in-process cluster nodes.
 * `handoff.<ns>.signals.<model>` with `Nats-Msg-Id` as the idempotency key: 50 concurrent submissions
 * of one key start one episode (also after the stream's duplicate window would no longer catch it: the
 * derived episode id does); bad signals are dead-lettered and announced with a typed error naming the
 * field, the node keeps running, and what the schema strips never reaches the episode; a
 * `traceparent` header becomes the episode's trace.
 */
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, nanos } from '@nats-io/transport-node';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode, workStream, workSubject } from '../../src/cluster/node.ts';
import {
  episodeIdFor,
  signalRefusedSubject,
  signalSubject,
  signalsStreamName,
  type SignalRefusal,
} from '../../src/contracts/ingest.ts';
import type { AgentContext } from '../../src/machines/agent.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import type { DeadLetter } from '../../src/runtime/store.ts';
import { Keyring } from '../../src/security/keyring.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';
import { freshNamespace, startServer, until } from './helpers.ts';

const silent = pino({ level: 'silent' });

const signal = {
  ticketId: 'T-1',
  orderId: 'ORD-10000042',
  reason: 'arrived broken',
  channel: 'email',
  requestedAmount: 900,
};

describe('signals over NATS (issue 20)', () => {
  let server: NatsServer;
  let model: LoadedModel;
  let ns: string;
  let a: ClusterNode;
  let b: ClusterNode;
  let driver: NatsTransport;
  beforeAll(async () => {
    server = await startServer();
    model = await loadModel('models/refunds');
    ns = freshNamespace('ingest');
    a = await ClusterNode.start({
      servers: server.url,
      node: 'a',
      namespace: ns,
      models: [model],
      logger: silent,
      timeScale: 3600,
    });
    b = await ClusterNode.start({
      servers: server.url,
      node: 'b',
      namespace: ns,
      models: [model],
      logger: silent,
      timeScale: 3600,
    });
    driver = await NatsTransport.connect(server.url);
  }, 120_000);
  afterAll(async () => {
    for (const n of [a, b]) await n?.stop().catch(() => undefined);
    await driver?.close();
    await server?.dispose();
  });

  const publish = async (key: string | null, body: unknown, extra: Record<string, string> = {}) => {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(extra)) h.set(k, v);
    const data = typeof body === 'string' ? body : JSON.stringify(body);
    return jetstream(driver.nc).publish(signalSubject(ns, 'refunds'), data, {
      headers: h,
      ...(key !== null ? { msgID: key } : {}),
    });
  };
  const agents = async (id: string) => {
    let n = 0;
    for await (const e of a.store.index()) if (e.kind === 'agent' && e.id === id) n++;
    return n;
  };

  it(
    '50 concurrent submissions of one key (and the same key again later) start one episode',
    { timeout: 120_000 },
    async () => {
      const id = episodeIdFor('refunds', 'crm-4711');
      const acks = await Promise.all(Array.from({ length: 50 }, () => publish('crm-4711', signal)));
      expect(acks.filter((x) => !x.duplicate)).toHaveLength(1);
      await until('the episode', async () => (await a.runtime.get(id)) !== undefined);
      // Past the streams' duplicate windows (shortened to 1 s here), the derived episode id still holds.
      const jsm = await jetstreamManager(driver.nc);
      for (const name of [signalsStreamName(ns, 'refunds'), workStream(ns)]) {
        const info = await jsm.streams.info(name);
        await jsm.streams.update(name, { ...info.config, duplicate_window: nanos(1000) });
      }
      await new Promise((r) => setTimeout(r, 1500));
      const again = await publish('crm-4711', signal);
      expect(again.duplicate).toBe(false);
      await until(
        'the resubmission handled',
        async () =>
          (await jsm.consumers.info(signalsStreamName(ns, 'refunds'), 'ingest')).num_pending === 0 &&
          a.ingest!.stats.accepted + b.ingest!.stats.accepted >= 2,
      );
      await new Promise((r) => setTimeout(r, 500));
      expect(await agents(id)).toBe(1);
      const view = await b.runtime.get(id);
      expect(view?.kind).toBe('agent');
      expect(view?.model).toBe('refunds');
      expect(a.stats.started + b.stats.started).toBe(1);
    },
  );

  it(
    'a bad signal is refused naming the field and dead-lettered; the node runs on; stripped fields never run',
    { timeout: 120_000 },
    async () => {
      const refusals: SignalRefusal[] = [];
      const sub = driver.subscribe(signalRefusedSubject(ns, 'refunds'), (m) => refusals.push(m.data as SignalRefusal));
      await driver.nc.flush();
      await publish('bad-1', { ...signal, orderId: 42 });
      await publish('bad-2', 'this is not json {');
      await publish(null, signal);
      await publish('bad key with spaces', signal);
      await until('four refusals', () => refusals.length >= 4);
      sub.unsubscribe();
      const byKey = new Map(refusals.map((r) => [r.idempotencyKey, r]));
      expect(byKey.get('bad-1')?.error).toMatchObject({
        code: 'contract.invalid',
        details: { path: 'signal.orderId' },
      });
      expect(byKey.get('bad-1')?.episodeId).toBe(episodeIdFor('refunds', 'bad-1'));
      expect(byKey.get('bad-2')?.error).toMatchObject({ code: 'request.malformed_json' });
      expect(byKey.get(null)?.error).toMatchObject({
        code: 'request.idempotency_key_required',
        details: { path: 'Nats-Msg-Id' },
      });
      expect(byKey.get('bad key with spaces')?.error).toMatchObject({
        code: 'contract.invalid',
        details: { path: 'Nats-Msg-Id' },
      });
      expect(await a.runtime.get(episodeIdFor('refunds', 'bad-1'))).toBeUndefined();
      const letters: DeadLetter[] = [];
      await until('the dead letters', async () => {
        letters.length = 0;
        for await (const d of a.store.deadLetters()) if (d.id.startsWith('signal-')) letters.push(d);
        return letters.length >= 4;
      });
      expect(letters.find((d) => d.event.idempotencyKey === 'bad-1')).toMatchObject({ code: 'contract.invalid' });

      // Both nodes still take signals; an unknown field is stripped by the contract and never reaches the episode.
      await publish('good-after-poison', { ...signal, ticketId: 'T-2', injected: 'rm -rf /' });
      const id = episodeIdFor('refunds', 'good-after-poison');
      await until('the good episode', async () => (await a.runtime.get(id)) !== undefined);
      const ctx = (await a.runtime.get(id))!.context as AgentContext;
      expect(ctx.signal).toMatchObject({ ticketId: 'T-2', orderId: 'ORD-10000042' });
      expect(ctx.signal).not.toHaveProperty('injected');
    },
  );

  it('a traceparent header becomes the episode trace', { timeout: 60_000 }, async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await publish('traced-1', { ...signal, ticketId: 'T-3' }, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    const id = episodeIdFor('refunds', 'traced-1');
    await until('the traced episode', async () => (await a.runtime.get(id)) !== undefined);
    expect(((await a.runtime.get(id))!.context as AgentContext).trace?.traceId).toBe(traceId);
  });

  it('with data keys the start on the work stream is sealed, and the episode starts', { timeout: 60_000 }, async () => {
    const sealedNs = freshNamespace('ingestkeys');
    const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
    const node = await ClusterNode.start({
      servers: server.url,
      node: 'k',
      namespace: sealedNs,
      models: [model],
      logger: silent,
      timeScale: 3600,
      keyring,
    });
    try {
      // A plain subscriber on the work subject sees what the node publishes there.
      const sealed: Uint8Array[] = [];
      const sub = driver.nc.subscribe(workSubject(sealedNs), {
        callback: (_e, m) => {
          sealed.push(m.data);
        },
      });
      await driver.nc.flush();
      await jetstream(driver.nc).publish(signalSubject(sealedNs, 'refunds'), JSON.stringify(signal), {
        msgID: 'sealed-1',
      });
      const id = episodeIdFor('refunds', 'sealed-1');
      await until('the sealed start', async () => (await node.runtime.get(id)) !== undefined);
      sub.unsubscribe();
      expect(sealed.length).toBeGreaterThan(0);
      expect(Buffer.from(sealed[0]!).toString('latin1')).not.toContain('ORD-10000042');
    } finally {
      await node.stop();
    }
  });
});
