/**
 * Encryption at rest on JetStream: real episodes on a JetStreamStore with data keys against a real
 * nats-server, then every stored message of the namespace's streams is read raw (and the server's
 * store directory scanned) for the customers' sensitive fields.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { JetStreamWorld } from '../../src/cluster/world.ts';
import type { AgentContext } from '../../src/machines/agent.ts';
import { verifyAudit } from '../../src/base/audit-log.ts';
import { SimulatedClock } from '../../src/base/clock.ts';
import { JetStreamStore } from '../../src/cluster/jetstream-store.ts';
import { Rng } from '../../src/base/rng.ts';
import { Runtime } from '../../src/runtime/runtime.ts';
import { Keyring } from '../../src/security/keyring.ts';
import { sealedKeyId } from '../../src/security/seal.ts';
import { drive, refunds, silent } from '../integration/helpers.ts';
import { freshNamespace, natsConnect, NodeProcess, startServer } from '../nats/helpers.ts';
import { runClusterDemo } from '../../src/app/cluster-demo.ts';
import { workSubject } from '../../src/cluster/work.ts';

const keyring = new Keyring([{ id: 'js1', key: randomBytes(32) }]);

describe('encryption at rest (JetStream)', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    server = await startServer();
    nc = await natsConnect(server.url);
  });
  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
  });

  /** Runs `count` episodes to their end on a JetStreamStore of namespace `ns`; returns the sensitive values, read back through the store. */
  async function episodes(ns: string, ring: Keyring | undefined, count: number): Promise<string[]> {
    const model = await refunds();
    const store = await JetStreamStore.open({ nc, namespace: ns, keyring: ring });
    const clock = new SimulatedClock(Date.UTC(2026, 0, 5, 9));
    const rt = await Runtime.open({
      store,
      world: new JetStreamWorld(store),
      models: [model],
      clock,
      seed: 'js-enc',
      logger: silent,
    });
    const rng = new Rng(5);
    for (let i = 0; i < count; i++)
      await rt.startEpisode('refunds', model.handlers.synthesize(rng, i), { episodeId: `ep-${i}` });
    await drive(rt, clock, () => false, { maxSteps: 20_000 });
    await rt.close();
    await store.flush();
    await store.auditSettled();
    const needles = new Set<string>();
    let finished = 0;
    for await (const rec of store.actors('agent')) {
      if (rec.status !== 'active') finished++;
      const ctx = (rec.snapshot as { context: AgentContext }).context;
      const signal = ctx.signal as { orderId: string; reason: string };
      needles.add(signal.orderId);
      needles.add(signal.reason);
      const customer = (
        ctx.observation?.fields as { customer?: { email: string; iban: string; name: string } } | undefined
      )?.customer;
      if (customer) for (const v of [customer.email, customer.iban, customer.name]) needles.add(v);
    }
    expect(finished).toBe(count);
    expect(await verifyAudit(store.audit())).toMatchObject({ ok: true });
    await store.close();
    return [...needles];
  }

  /** Every message of the namespace's four streams, as stored: payloads and headers. */
  async function rawMessages(store: {
    streams: Record<string, string>;
  }): Promise<{ stream: string; subject: string; data: Uint8Array; headers: string }[]> {
    const jsm = await jetstreamManager(nc);
    const out: { stream: string; subject: string; data: Uint8Array; headers: string }[] = [];
    for (const stream of Object.values(store.streams)) {
      const info = await jsm.streams.info(stream);
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
        if (!m) continue;
        const headers = m.header ? [...m.header.keys()].map((k) => `${k}: ${m.header.get(k)}`).join('\n') : '';
        out.push({ stream, subject: m.subject, data: m.data, headers });
      }
    }
    return out;
  }

  const found = (haystack: Buffer, needles: string[]) =>
    needles.filter((n) => haystack.includes(Buffer.from(n, 'utf8')));

  it('without keys the payloads hold the sensitive fields (the check can see them)', async () => {
    const ns = freshNamespace('plain');
    const needles = await episodes(ns, undefined, 8);
    const probe = await JetStreamStore.open({ nc, namespace: ns, trackAll: false, auditSequencer: false });
    const msgs = await rawMessages(probe);
    await probe.close();
    expect(found(Buffer.concat(msgs.map((m) => m.data)), needles).length).toBe(needles.length);
  });

  it('with keys no stored payload, header or stream file holds a sensitive field', async () => {
    const ns = freshNamespace('sealed');
    const needles = await episodes(ns, keyring, 20);
    expect(needles.some((n) => n.includes('@'))).toBe(true);

    const probe = await JetStreamStore.open({ nc, namespace: ns, trackAll: false, auditSequencer: false, keyring });
    const msgs = await rawMessages(probe);
    expect(new Set(msgs.map((m) => m.stream)).size).toBe(4);
    expect(msgs.length).toBeGreaterThan(200);
    for (const m of msgs) expect(sealedKeyId(m.data), `${m.stream} ${m.subject}`).toBe('js1');
    expect(found(Buffer.concat(msgs.map((m) => m.data)), needles)).toEqual([]);
    expect(found(Buffer.from(msgs.map((m) => m.headers).join('\n')), needles)).toEqual([]);
    // Read back through the store with the key: intact.
    let agents = 0;
    for await (const _ of probe.actors('agent')) agents++;
    expect(agents).toBe(20);
    await probe.close();

    // The server's stream files on disk.
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else if (d.includes(`HO_${ns.toUpperCase()}`)) files.push(join(d, e.name));
      }
    };
    await walk(server.storeDir);
    expect(files.length).toBeGreaterThan(0);
    const disk = Buffer.concat(await Promise.all(files.map((f) => readFile(f))));
    expect(found(disk, needles)).toEqual([]);

    // Without the key, reading fails with a clear error naming it.
    const keyless = await JetStreamStore.open({ nc, namespace: ns, trackAll: false, auditSequencer: false });
    try {
      await expect(keyless.load('ep-0')).rejects.toMatchObject({ code: 'keys.required', details: { keyId: 'js1' } });
    } finally {
      await keyless.close();
    }
  });

  it('a cluster node started with HANDOFF_DATA_KEYS seals what it stores; the driver seals the start requests', async () => {
    const ns = freshNamespace('node');
    const entry = `${keyring.active.id}:${keyring.active.key.toString('base64')}`;
    const node = new NodeProcess(server.url, 'n1', ns, ['--time-scale', '3600'], { HANDOFF_DATA_KEYS: entry });
    // What the driver publishes to the work stream (start requests carry the signal: case data).
    const starts: Uint8Array[] = [];
    const sub = nc.subscribe(workSubject(ns));
    void (async () => {
      for await (const m of sub) starts.push(m.data);
    })();
    try {
      await node.ready;
      const summary = await runClusterDemo({
        servers: server.url,
        namespace: ns,
        cases: 12,
        reviewers: 4,
        seed: 4,
        arrivalMs: 4000,
        timeScale: 3600,
        keyring,
      });
      expect(summary.unfinished).toBe(0);
      expect(summary.auditChain.ok).toBe(true);
    } finally {
      sub.unsubscribe();
      await node.stop();
    }
    expect(starts).toHaveLength(12);
    for (const d of starts) expect(sealedKeyId(d)).toBe('js1');
    const probe = await JetStreamStore.open({ nc, namespace: ns, trackAll: false, auditSequencer: false, keyring });
    const needles: string[] = [];
    for await (const rec of probe.actors('agent')) {
      const customer = (
        (rec.snapshot as { context: AgentContext }).context.observation?.fields as
          { customer?: { email: string } } | undefined
      )?.customer;
      if (customer) needles.push(customer.email);
    }
    const msgs = await rawMessages(probe);
    await probe.close();
    expect(needles.length).toBeGreaterThan(0);
    for (const m of msgs) expect(sealedKeyId(m.data), `${m.stream} ${m.subject}`).toBe('js1');
    expect(found(Buffer.concat(msgs.map((m) => m.data)), needles)).toEqual([]);
  });
});
