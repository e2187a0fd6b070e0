import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { workSubject, type StartRequest } from '../../src/cluster/work.ts';
import { groupOf } from '../../src/cluster/keys.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { loadModel } from '../../src/models/loader.ts';
import { JetStreamStore } from '../../src/cluster/jetstream-store.ts';
import { Rng } from '../../src/base/rng.ts';
import { NodeProcess, freshNamespace, leaseHolders, natsConnect, startServer as startNats } from '../nats/helpers.ts';
import { launch, shot, signIn, watchErrors } from './helpers.ts';

/**
 * The reviewer console on a NATS cluster (`handoff start --nats`): two nodes share the episodes, the
 * console runs on one of them, and a reviewer signed in there decides a case that runs on the other.
 */
describe('reviewer console on a NATS cluster, end to end', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let browser: Browser;
  const nodes: NodeProcess[] = [];
  const ns = freshNamespace('ui');

  beforeAll(async () => {
    server = await startNats();
    nc = await natsConnect(server.url);
    const a = new NodeProcess(server.url, 'a', ns, ['--port', '0']);
    const b = new NodeProcess(server.url, 'b', ns);
    nodes.push(a, b);
    await Promise.all([a.ready, b.ready]);
    browser = await launch();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await nc?.close();
    await server?.dispose();
  });

  it(
    'a reviewer on node a claims and approves a case that node b runs; the agent acts there',
    { timeout: 90_000 },
    async () => {
      const [a, b] = nodes as [NodeProcess, NodeProcess];
      expect(a.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(b.url).toBeNull();

      // Submit episodes to the cluster's work stream, as `handoff demo --nats` does.
      const model = await loadModel('models/refunds');
      const js = jetstream(nc);
      const rng = new Rng(5);
      for (let i = 0; i < 40; i++) {
        const req: StartRequest = { episodeId: `ep-${i}`, model: 'refunds', signal: model.handlers.synthesize(rng, i) };
        await js.publish(workSubject(ns), JSON.stringify(req), { msgID: `start:${ns}:ep-${i}` });
      }

      const ctx = await browser.newContext({
        viewport: { width: 1440, height: 900 },
        locale: 'en-GB',
        timezoneId: 'UTC',
      });
      const page = await ctx.newPage();
      const errors = watchErrors(page);
      await signIn(page, a.url!, 'r-amelie');
      await expect.poll(() => page.locator('tr.row').count(), { timeout: 20_000 }).toBeGreaterThan(2);
      await shot(page, 'cluster-queue');

      // A tier-1 case whose episode node b holds (a four-eyes tier would need a second reviewer).
      const holders = await leaseHolders(nc, ns);
      const ids = await page
        .locator('tr.row')
        .evaluateAll((rows) => rows.map((r) => (r as unknown as { dataset: { id: string } }).dataset.id));
      const onB = ids.find((id) => holders.get(groupOf(id)) === b.member);
      expect(onB, `a case held by node b among ${ids.join(', ')}`).toBeDefined();
      await page.click(`tr.row[data-id="${onB}"]`);
      await page.waitForSelector('.case-head h1');
      await page.keyboard.press('c');
      await page.waitForSelector('#case-banner:has-text("You hold this case")');
      await page.keyboard.press('a');
      await page.click('.modal button:has-text("Approve")');
      await page.waitForSelector('#episode-state:has-text("Done")', { timeout: 30_000 });
      await shot(page, 'cluster-case-decided', true);

      // The decision is in the shared store, written by node b (the owner), and the case left the queue.
      const store = await JetStreamStore.open({
        nc,
        namespace: ns,
        guard: { mayWrite: () => false, fencingToken: () => undefined },
        trackAll: false,
        auditSequencer: false,
      });
      try {
        const rec = await store.load(onB!);
        expect(rec?.state).toBe('approved');
        let writer = '';
        for await (const ix of store.index()) if (ix.id === onB) writer = ix.writer;
        expect(writer).toBe(b.member);
        const approvals = [];
        for await (const e of store.audit()) if (e.kind === 'case.approved' && e.actor === onB) approvals.push(e);
        expect(approvals).toHaveLength(1);
      } finally {
        await store.close();
      }
      expect(errors).toEqual([]);
      await ctx.close();
    },
  );
});
