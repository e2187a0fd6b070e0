/**
 * Leases on a real nats-server: created only when free (one winner), `fresh` only on a key never
 * written, released only at the revision held (compare-and-set), taken over only from the revision
 * seen, and every node's map follows the bucket.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { Leases } from '../../src/cluster/leases.ts';
import { freshNamespace, natsConnect, startServer } from './helpers.ts';

const holder = (member: string) => ({ member, node: member.split('.')[0]!, at: Date.now() });

describe('Leases', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const opened: Leases[] = [];
  beforeAll(async () => {
    server = await startServer();
    nc = await natsConnect(server.url);
  });
  afterAll(async () => {
    for (const l of opened) l.close();
    await nc?.close();
    await server?.dispose();
  });
  const open = async (namespace: string) => {
    const l = await Leases.open(nc, { namespace });
    opened.push(l);
    return l;
  };
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(ok()).toBe(true);
  };

  it('one winner per free lease; fresh only on a never-written key; release and takeover by revision', async () => {
    const ns = freshNamespace('ls');
    const a = await open(ns);
    const b = await open(ns);
    // Both race for a new group: one creates it (fresh), the other learns the holder.
    const [ga, gb] = await Promise.all([a.acquire('ep-1', holder('a.1')), b.acquire('ep-1', holder('b.1'))]);
    const won = (ga ?? gb)!;
    expect([ga, gb].filter(Boolean)).toHaveLength(1);
    expect(won.fresh).toBe(true);
    await until(() => a.get('ep-1')?.revision === won.revision && b.get('ep-1')?.revision === won.revision);
    const [mine, theirs] = ga ? [a, b] : [b, a];
    // A release at a revision not held any more changes nothing.
    expect(await theirs.release({ ...won, revision: won.revision - 1 })).toBe(false);
    expect(await mine.release(won)).toBe(true);
    expect(mine.get('ep-1')?.holder).toBeNull();
    await until(() => theirs.get('ep-1')?.holder === null);
    // Free again (a delete marker): created again, not fresh, at a later revision.
    const again = await theirs.acquire('ep-1', holder('x.1'), theirs.get('ep-1'));
    expect(again).toMatchObject({ holder: { member: 'x.1' } });
    expect(again!.fresh).toBeUndefined();
    expect(again!.revision).toBeGreaterThan(won.revision);
    // A takeover from the revision seen wins once; from a stale one it loses.
    await until(() => mine.get('ep-1')?.revision === again!.revision);
    const taken = await mine.acquire('ep-1', holder('y.1'), again);
    expect(taken).toMatchObject({ holder: { member: 'y.1' } });
    expect(await theirs.acquire('ep-1', holder('z.1'), again)).toBeUndefined();
    await until(() => theirs.get('ep-1')?.holder?.member === 'y.1');
  });
  it('forgets free leases the watch has gone past: a node does not keep one entry per episode ever run', async () => {
    const ns = freshNamespace('lp');
    const a = await open(ns);
    const b = await open(ns);
    const groups = Array.from({ length: 600 }, (_, i) => `ep-${i}`);
    for (const g of groups) {
      const l = await a.acquire(g, holder('a.1'));
      await a.release(l!);
    }
    const last = await a.acquire('ep-last', holder('a.1'));
    await until(() => b.get('ep-last')?.revision === last!.revision);
    // The released ones are forgotten on both (read as free: no holder); the held one is not.
    expect(groups.filter((g) => a.get(g) !== undefined).length).toBeLessThan(100);
    expect(groups.filter((g) => b.get(g) !== undefined).length).toBeLessThan(100);
    expect(groups.every((g) => !a.get(g)?.holder && !b.get(g)?.holder)).toBe(true);
    expect(b.get('ep-last')?.holder?.member).toBe('a.1');
    // A forgotten lease is free: taken again (its delete marker makes it not fresh).
    const again = await b.acquire('ep-0', holder('b.1'), b.get('ep-0'));
    expect(again).toMatchObject({ holder: { member: 'b.1' } });
    expect(again!.fresh).toBeUndefined();
  });
});
