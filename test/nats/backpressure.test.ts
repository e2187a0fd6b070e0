/**
 * Backpressure on a real nats-server: a node whose runtime has more operations in flight than
 * `maxInFlight` refuses reviewer commands with `node.overloaded` and a `retryAfterMs` hint instead of
 * queueing without bound; the driver retries them, and nothing is lost or applied twice.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClusterDemo } from '../../src/app/cluster-demo.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { loadModel } from '../../src/models/loader.ts';
import { freshNamespace, startServer } from './helpers.ts';

describe('backpressure', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startServer();
  }, 60_000);
  afterAll(async () => {
    await server?.dispose();
  });

  it(
    'an overloaded node refuses reviewer commands with node.overloaded and retryAfterMs; retried, nothing is lost or doubled',
    { timeout: 240_000 },
    async () => {
      const ns = freshNamespace('bp');
      const model = await loadModel('models/refunds');
      // A tiny budget: most reviewer commands meet a runtime with more than 2 operations in flight.
      const node = await ClusterNode.start({
        servers: server.url,
        node: 'bp',
        namespace: ns,
        models: [model],
        logger: pino({ level: 'silent' }),
        timeScale: 3600,
        maxInFlight: 2,
      });
      try {
        const summary = await runClusterDemo({
          servers: server.url,
          namespace: ns,
          cases: 300,
          reviewers: 12,
          seed: 3,
          arrivalMs: 2000,
          timeScale: 3600,
          window: 300,
          timeoutMs: 220_000,
        });
        console.log(`[backpressure] overloaded ${node.stats.overloaded}, client ${JSON.stringify(summary.client)}`);
        expect(node.stats.overloaded, 'commands refused as overloaded').toBeGreaterThan(0);
        const client = summary.client as { retriedCodes: Record<string, number> };
        expect(
          client.retriedCodes['node.overloaded'] ?? 0,
          'the driver retried the overloaded refusals',
        ).toBeGreaterThan(0);
        expect(summary.episodes).toBe(300);
        expect(summary.unfinished).toBe(0);
        expect(summary.duplicateEffects).toBe(0);
        expect(summary.auditChain.ok).toBe(true);
      } finally {
        await node.stop();
      }
    },
  );
});
