/**
 * Issue 23, item 3: the reviewer console on a cluster node sends each command straight to the node
 * that owns the case (the leases bucket says which), not to the public subject from which any node
 * may take it and forward it. Two in-process nodes on a real nats-server; review cases spread over
 * both; every case is claimed and approved through the console backend of *each* node in turn. No
 * node forwards a command (with the public subject, about half of them were forwarded), and every
 * reviewed episode ends `done`.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterApiRuntime, clusterGatewayBackend } from '../../src/app/cluster-console.ts';
import { groupOf } from '../../src/cluster/keys.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { loadModel } from '../../src/models/loader.ts';
import { freshNamespace, startServer, until } from './helpers.ts';

const silent = pino({ level: 'silent' });
const LEAD = { id: 'r-lead', roles: ['support-lead', 'refunds-manager'] };
const signal = (i: number) => ({
  ticketId: `T-${i}`,
  orderId: `ORD-${10_000_000 + i}`,
  reason: 'arrived broken',
  channel: 'email',
  requestedAmount: 900,
});

describe('console commands on a cluster go to the case owner (issue 23)', () => {
  let server: NatsServer;
  const nodes: ClusterNode[] = [];
  beforeAll(async () => {
    server = await startServer();
    const model = await loadModel('models/refunds');
    const ns = freshNamespace('cmds');
    for (const name of ['a', 'b'])
      nodes.push(
        await ClusterNode.start({
          servers: server.url,
          node: name,
          namespace: ns,
          models: [model],
          logger: silent,
        }),
      );
  }, 120_000);
  afterAll(async () => {
    for (const n of nodes) await n.stop().catch(() => undefined);
    await server?.dispose();
  });

  it('claims and approvals reach the owner in one hop, from either node', { timeout: 180_000 }, async () => {
    const api = clusterApiRuntime(nodes[0]!);
    const episodes = Array.from({ length: 12 }, (_, i) => `ep-cmd-${i}`);
    for (const [i, id] of episodes.entries()) await api.startEpisode('refunds', signal(i), { episodeId: id });
    // Episodes wait for review (900 EUR is above the auto limit; the odd one the planner settles
    // otherwise ends on its own): collect the open cases once every episode is at one or the other.
    const cases = new Map<string, string>();
    await until(
      'every episode at review or done',
      async () => {
        const settled = new Set<string>();
        for await (const ix of nodes[0]!.store.index()) {
          if (ix.kind === 'case' && ix.status === 'active') {
            cases.set(ix.id, ix.id.replace(/\.case-\d+$/, ''));
            settled.add(cases.get(ix.id)!);
          }
          if (ix.kind === 'agent' && ix.status !== 'active') settled.add(ix.id);
        }
        return episodes.every((id) => settled.has(id));
      },
      90_000,
    );
    expect(cases.size).toBeGreaterThanOrEqual(8);
    const owners = new Set<string>();
    for (const caseId of cases.keys()) owners.add(String(nodes[0]!.leases.get(groupOf(caseId))?.holder?.member));
    expect(owners.size, 'the cases are spread over both nodes').toBe(2);

    const backends = nodes.map((n) => clusterGatewayBackend(n));
    const forwardedBefore = nodes.map((n) => n.stats.forwarded);
    let k = 0;
    for (const caseId of cases.keys()) {
      const via = backends[k++ % 2]!;
      const base = { schemaVersion: 1, caseId, reviewer: LEAD };
      expect((await via.command({ type: 'handoff.case.claim', commandId: `c-${caseId}`, ...base })).state).toBe(
        'claimed',
      );
      expect((await via.command({ type: 'handoff.case.approve', commandId: `a-${caseId}`, ...base })).status).toBe(
        'done',
      );
    }
    expect(nodes.map((n, i) => n.stats.forwarded - forwardedBefore[i]!)).toEqual([0, 0]);
    await until(
      'every episode done',
      async () => {
        for (const id of cases.values()) if ((await nodes[0]!.runtime.get(id))?.state !== 'done') return false;
        return true;
      },
      90_000,
    );
  });
});
