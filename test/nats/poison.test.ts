/**
 * Issue 18, items 2 and 5: one bad message must not take a node down, and a failed start must not
 * leak its lease.
 *
 * - Poison on the work stream (`null`, not JSON, wrong shape, wrong schemaVersion, an invalid
 *   signal): each is acknowledged as terminal and written to the dead letters with its cause; the
 *   nodes keep running and a valid start afterwards completes.
 * - Wrong-shaped requests on the request/reply subjects (public actor subject, a node's forwarded
 *   command and start subjects) are answered with `contract.invalid`, never `internal`.
 * - Direct starts that fail (unknown model, invalid signal) leave no lease held, and the node keeps
 *   taking new work.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tok } from '../../src/cluster/keys.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { ensureWorkStream, workSubject } from '../../src/cluster/work.ts';
import { HandoffError } from '../../src/contracts/errors.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { JetStreamStore } from '../../src/cluster/jetstream-store.ts';
import { Rng } from '../../src/base/rng.ts';
import type { DeadLetter } from '../../src/runtime/store.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';
import { freshNamespace, leaseHolders, startServer } from './helpers.ts';

const silent = pino({ level: 'silent' });

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('poison messages and failed starts (issue 18)', () => {
  let server: NatsServer;
  let model: LoadedModel;
  const nodes: ClusterNode[] = [];
  const transports: NatsTransport[] = [];
  beforeAll(async () => {
    server = await startServer();
    model = await loadModel('models/refunds');
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop().catch(() => undefined);
    for (const t of transports) await t.close();
    await server?.dispose();
  });

  it(
    'a poison message on the work stream is refused as terminal and dead-lettered; no node goes down',
    { timeout: 120_000 },
    async () => {
      const ns = freshNamespace('poison');
      const a = await ClusterNode.start({
        servers: server.url,
        node: 'a',
        namespace: ns,
        models: [model],
        logger: silent,
        timeScale: 3600,
      });
      const b = await ClusterNode.start({
        servers: server.url,
        node: 'b',
        namespace: ns,
        models: [model],
        logger: silent,
        timeScale: 3600,
      });
      nodes.push(a, b);
      const driver = await NatsTransport.connect(server.url);
      transports.push(driver);
      await ensureWorkStream(await jetstreamManager(driver.nc), ns);
      const js = jetstream(driver.nc);
      const signal = model.handlers.synthesize(new Rng(3), 0);
      const poison: [string, string | Uint8Array][] = [
        ['null', 'null'],
        ['not JSON', 'this is not json {'],
        ['empty object', '{}'],
        ['wrong type', JSON.stringify({ episodeId: 5, model: 'refunds', signal })],
        [
          'wrong schemaVersion',
          JSON.stringify({ schemaVersion: 99, episodeId: 'ep-bad-version', model: 'refunds', signal }),
        ],
        [
          'invalid signal',
          JSON.stringify({ episodeId: 'ep-bad-signal', model: 'refunds', signal: { nonsense: true } }),
        ],
        ['array', '[1,2,3]'],
      ];
      for (const [name, body] of poison) await js.publish(workSubject(ns), body, { msgID: `poison-${name}` });
      await js.publish(
        workSubject(ns),
        JSON.stringify({ schemaVersion: 1, episodeId: 'ep-good-1', model: 'refunds', signal }),
        { msgID: 'good-1' },
      );

      const store = await JetStreamStore.open({
        nc: driver.nc,
        namespace: ns,
        guard: { mayWrite: () => false, fencingToken: () => undefined },
        trackAll: false,
        auditSequencer: false,
      });
      const letters = async () => {
        const out: DeadLetter[] = [];
        for await (const d of store.deadLetters()) out.push(d);
        return out;
      };
      await until('every poison message dead-lettered', async () => (await letters()).length >= poison.length);
      await until('the valid start', async () => (await store.load('ep-good-1')) !== undefined);
      const dl = await letters();
      expect(dl).toHaveLength(poison.length);
      for (const d of dl) {
        expect(d.code).toBe('contract.invalid');
        expect(d.reason.length).toBeGreaterThan(0);
        expect(d.event.type).toBe('handoff.work.start');
      }
      expect(dl.find((d) => d.actorId === 'ep-bad-signal')?.reason).toMatch(/signal/);
      expect(dl.map((d) => d.reason).join('\n')).toMatch(/schemaVersion/);
      // Acknowledged as terminal: nothing is pending or waiting for redelivery.
      const ci = await (await jetstreamManager(driver.nc)).consumers.info(`HO_${ns.toUpperCase()}_WORK`, 'nodes');
      expect(ci.num_pending + ci.num_ack_pending).toBe(0);
      // Both nodes are still up and take work.
      await js.publish(workSubject(ns), JSON.stringify({ episodeId: 'ep-good-2', model: 'refunds', signal }), {
        msgID: 'good-2',
      });
      await until('a second valid start', async () => (await store.load('ep-good-2')) !== undefined);
      expect(a.status().healthy).toBe(true);
      expect(b.status().healthy).toBe(true);
      expect(a.stats.poison + b.stats.poison).toBe(poison.length);
    },
  );

  it(
    'wrong-shaped requests are answered contract.invalid (naming the field), never internal',
    { timeout: 60_000 },
    async () => {
      const ns = freshNamespace('badreq');
      const n = await ClusterNode.start({
        servers: server.url,
        node: 'r',
        namespace: ns,
        models: [model],
        logger: silent,
        timeScale: 3600,
      });
      nodes.push(n);
      const t = await NatsTransport.connect(server.url);
      transports.push(t);
      const direct = (what: string) => `handoff.${ns}.node.${tok(n.memberId)}.${what}`;
      const code = async (subject: string, data: unknown) => {
        const err = await t.request(subject, data, { timeoutMs: 5000 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(HandoffError);
        return err as HandoffError;
      };
      for (const bad of [null, 42, 'x', {}, { caseId: 7 }, { caseId: '' }]) {
        const e = await code(direct('cmd'), bad);
        expect(e.code).toBe('contract.invalid');
        expect((e.details.issues as { path: string }[])[0]!.path).toBe(bad && typeof bad === 'object' ? 'caseId' : '');
      }
      for (const bad of [
        null,
        {},
        { episodeId: 'ep-1' },
        { episodeId: 'ep-1', model: 'refunds', signal: {}, schemaVersion: 2 },
      ]) {
        expect((await code(direct('start'), bad)).code).toBe('contract.invalid');
      }
      expect((await code(`handoff.${ns}.actor.x`, null)).code).toBe('contract.invalid');
      expect((await code(`handoff.${ns}.actor.x`, { caseId: 'x', type: 'handoff.case.claim' })).code).toBe(
        'contract.invalid',
      );
      // Not JSON at all.
      const raw = await t.nc.request(direct('cmd'), new TextEncoder().encode('{nope'), { timeout: 5000 });
      const reply = JSON.parse(new TextDecoder().decode(raw.data)) as { ok: boolean; error: { code: string } };
      expect(reply).toMatchObject({ ok: false, error: { code: 'contract.invalid' } });
      expect(n.status().healthy).toBe(true);
    },
  );

  it(
    'failed direct starts release their lease: 200 unknown-model starts and 50 invalid signals leave none held',
    { timeout: 120_000 },
    async () => {
      const ns = freshNamespace('leak');
      const n = await ClusterNode.start({
        servers: server.url,
        node: 'l',
        namespace: ns,
        models: [model],
        logger: silent,
        timeScale: 3600,
        maxEpisodes: 100,
      });
      nodes.push(n);
      const t = await NatsTransport.connect(server.url);
      transports.push(t);
      const subject = `handoff.${ns}.node.${tok(n.memberId)}.start`;
      const signal = model.handlers.synthesize(new Rng(5), 0);
      const codes = new Map<string, number>();
      const count = (e: unknown) => {
        const c = e instanceof HandoffError ? e.code : 'ok';
        codes.set(c, (codes.get(c) ?? 0) + 1);
      };
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          t
            .request(subject, { episodeId: `ep-unknown-${i}`, model: 'no-such-model', signal }, { timeoutMs: 20_000 })
            .then(count, count),
        ),
      );
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          t
            .request(
              subject,
              { episodeId: `ep-badsig-${i}`, model: 'refunds', signal: { nonsense: i } },
              { timeoutMs: 20_000 },
            )
            .then(count, count),
        ),
      );
      expect(codes.get('model.unknown')).toBe(200);
      expect(codes.get('contract.invalid')).toBe(50);
      await until(
        'no lease held',
        async () => [...(await leaseHolders(t.nc, ns)).keys()].filter((g) => g !== '_audit').length === 0,
        10_000,
      );
      expect(n.episodes).toBe(0);
      // The node still takes new work: a valid start (direct) succeeds.
      await t.request(subject, { episodeId: 'ep-valid', model: 'refunds', signal }, { timeoutMs: 20_000 });
      expect(n.stats.started).toBe(1);
    },
  );
});
