/**
 * Issue 21, item 2: a cluster node's `/metrics` (`handoff start --nats --metrics`) reports the actor
 * groups it holds, by member, and the nodes' figures add up to the cluster's: the sum of
 * `handoff_cluster_leases_held` over the nodes is the number of leases with a holder in the bucket,
 * before and after a node leaves. The text passes `promtool check metrics`.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { NodeProcess, freshNamespace, leaseHolders, natsConnect, startServer, until } from './helpers.ts';

/** `handoff_cluster_leases_held{handoff_cluster_member="…"} N` → member → N. */
function leasesHeld(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^handoff_cluster_leases_held\{[^}]*handoff_cluster_member="([^"]+)"[^}]*\} (\d+)/gm))
    out.set(m[1]!, Number(m[2]));
  return out;
}

describe('cluster metrics', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const nodes: NodeProcess[] = [];
  beforeAll(async () => {
    server = await startServer();
    nc = await natsConnect(server.url);
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await nc?.close();
    await server?.dispose();
  });

  it(
    'each node reports the leases it holds; the sum over nodes is the bucket, before and after one leaves',
    { timeout: 120_000 },
    async () => {
      const ns = freshNamespace('metrics');
      for (const name of ['m1', 'm2']) nodes.push(new NodeProcess(server.url, name, ns, ['--metrics', '0']));
      await Promise.all(nodes.map((n) => n.ready));
      const url = (n: NodeProcess) => n.events.find((e) => e.event === 'ready')!.metrics as string;
      expect(nodes.every((n) => /^http:\/\/127\.0\.0\.1:\d+\/metrics$/.test(url(n)))).toBe(true);
      const scrape = async (n: NodeProcess) => (await fetch(url(n))).text();

      // Settled: every group has a holder and each node's gauge agrees with the bucket.
      const agree = async (alive: NodeProcess[]) => {
        const holders = await leaseHolders(nc, ns);
        const texts = await Promise.all(alive.map(scrape));
        const held = texts.map(leasesHeld);
        const byMember = new Map<string, number>();
        for (const m of holders.values()) byMember.set(m, (byMember.get(m) ?? 0) + 1);
        const ok =
          holders.size > 0 &&
          alive.every((n, i) => held[i]!.get(n.member!) === (byMember.get(n.member!) ?? 0)) &&
          [...byMember.keys()].every((m) => alive.some((n) => n.member === m));
        return ok ? { holders, held, texts } : undefined;
      };
      let both: Awaited<ReturnType<typeof agree>>;
      await until('both nodes to report the leases the bucket shows', async () => !!(both = await agree(nodes)));
      const total = both!.held.reduce((a, h) => a + [...h.values()].reduce((x, y) => x + y, 0), 0);
      expect(total).toBe(both!.holders.size);

      const lint = spawnSync('promtool', ['check', 'metrics'], { input: both!.texts[0], encoding: 'utf8' });
      expect(lint.error, 'promtool (Debian package prometheus; .ci/run installs it)').toBeUndefined();
      expect(lint.status, lint.stderr + lint.stdout).toBe(0);

      // m2 leaves: m1 takes its groups over and reports all of them.
      await nodes[1]!.stop();
      let one: Awaited<ReturnType<typeof agree>>;
      await until('the remaining node to hold and report every group', async () => !!(one = await agree([nodes[0]!])));
      expect(one!.held[0]!.get(nodes[0]!.member!)).toBe(one!.holders.size);
    },
  );
});
