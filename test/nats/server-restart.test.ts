/**
 * Acceptance: the NATS server itself is killed and restarted mid-run (same port, same JetStream
 * directory). Nodes and driver reconnect on their own; writes in flight are retried under the same
 * message ids; every episode still ends exactly once with no effect applied twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClusterDemo } from '../../src/app/cluster-demo.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { NodeProcess, freshNamespace, startServer } from './helpers.ts';

const EPISODES = Number(process.env.HANDOFF_NATS_RESTART_EPISODES ?? 800);

describe('NATS server restarted mid-run', () => {
  let server: NatsServer;
  const nodes: NodeProcess[] = [];
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await server?.dispose();
  });

  it(
    `${EPISODES} episodes on 3 nodes survive a hard restart of nats-server: nothing lost, nothing duplicated`,
    { timeout: 900_000 },
    async () => {
      const ns = freshNamespace('rs');
      for (const name of ['a', 'b', 'c'])
        nodes.push(new NodeProcess(server.url, name, ns, ['--time-scale', '3600', '--max-episodes', '250']));
      await Promise.all(nodes.map((n) => n.ready));
      let restarted: Promise<void> | undefined;
      let downAt = 0;
      let upAt = 0;
      const summary = await runClusterDemo({
        servers: server.url,
        namespace: ns,
        cases: EPISODES,
        reviewers: 24,
        seed: 5,
        arrivalMs: 8000,
        timeScale: 3600,
        window: 500,
        timeoutMs: 840_000,
        onProgress: (p) => {
          if (!restarted && p.finished >= EPISODES * 0.4) {
            restarted = (async () => {
              downAt = Date.now();
              await server.restart({ hard: true, downMs: 1500 });
              upAt = Date.now();
            })();
          }
        },
      });
      await restarted;
      await Promise.all(nodes.map((n) => n.stop()));
      const reconnects = nodes.map(
        (n) =>
          (n.events.find((e) => e.event === 'stopped') as { transport?: { reconnects: number } } | undefined)?.transport
            ?.reconnects ?? -1,
      );
      process.stdout.write(
        `\n[server-restart] ${JSON.stringify({ episodes: summary.episodes, outcomes: summary.outcomes, unfinished: summary.unfinished, duplicateEffects: summary.duplicateEffects, outcomeAuditMismatch: summary.outcomeAuditMismatch, auditChain: summary.auditChain, serverDownMs: upAt - downAt, nodeReconnects: reconnects, client: summary.client })}\n`,
      );
      expect(downAt).toBeGreaterThan(0);
      expect(reconnects.every((r) => r >= 1)).toBe(true);
      expect(summary.episodes).toBe(EPISODES);
      expect(summary.unfinished).toBe(0);
      expect(summary.duplicateEffects).toBe(0);
      expect(summary.outcomeAuditMismatch).toBe(0);
      expect(summary.auditChain.ok).toBe(true);
      expect(Object.values(summary.invariantViolations).every((v) => v === 0)).toBe(true);
    },
  );
});
