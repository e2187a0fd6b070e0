/**
 * Issue 18, item 4: a reconnecting server is unknown, never peers' death. Two members watch each
 * other; nats-server is killed and restarted. The probe answers "gone" at once (as "no responders"
 * does while peers have not resubscribed after the restart). Nobody may be declared dead: not while a
 * connection is down, and not within a full grace period after the reconnect. A member that really
 * stops heartbeating is still declared dead afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Membership, type MembershipEvent } from '../../src/cluster/membership.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';
import { freshNamespace, startServer, until } from './helpers.ts';

describe('liveness across a server restart', () => {
  let server: NatsServer;
  const transports: NatsTransport[] = [];
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const t of transports) await t.close();
    await server?.dispose();
  });

  it(
    'no member is declared dead because the server restarted ("no responders" right after a reconnect)',
    { timeout: 60_000 },
    async () => {
      const ns = freshNamespace('live');
      const events: { who: string; e: MembershipEvent; at: number }[] = [];
      let restarting = false;
      const join = async (node: string) => {
        // The two connections reconnect at different moments (as they do under load): the data
        // connection, on which probes travel, first.
        const control = await NatsTransport.connect(server.url, { reconnectWaitMs: 1500 });
        const data = await NatsTransport.connect(server.url, { reconnectWaitMs: 50 });
        transports.push(control, data);
        // Once the server is back, the probe says "gone" at once: what a request gets while the peer has
        // not resubscribed. Before it, the peer answers.
        const m = await Membership.join(control.nc, {
          namespace: ns,
          node,
          deadAfterMs: 3000,
          selfFenceMs: 2400,
          suspectAfterMs: 300,
          probe: async () => (restarting ? 'gone' : 'alive'),
        });
        // (Optional calls, so the test also runs against the code before issue 18 and shows its failure.)
        const mm = m as Partial<Pick<Membership, 'observe' | 'confirm'>>;
        mm.observe?.(data.nc);
        m.on((e) => {
          events.push({ who: node, e, at: performance.now() });
          // A node re-reads its leases after a lapse, then confirms; here there are no leases.
          if (e.type === 'lapsed') mm.confirm?.();
        });
        return m;
      };
      const a = await join('a');
      const b = await join('b');
      await until('both see each other', () => a.isAlive(b.id) && b.isAlive(a.id), 10_000);
      // Past the initial grace, so the members judge each other.
      await new Promise((r) => setTimeout(r, 3500));
      const before = events.filter((x) => x.e.type === 'dead').length;
      const restartedAt = performance.now();
      await server.restart({ hard: true, downMs: 1000 });
      // Back up: from now on a probe finds no responder (the peers' clients have not resubscribed yet).
      restarting = true;
      const upAt = performance.now();
      // ... for 2 s (a peer starved of CPU resubscribes late), then they answer again.
      setTimeout(() => (restarting = false), 2000);
      // A full grace period after the reconnect and then some: nobody dies.
      await new Promise((r) => setTimeout(r, 5000));
      const deaths = events.filter((x) => x.e.type === 'dead').slice(before);
      process.stdout.write(
        `[liveness] down ${Math.round(upAt - restartedAt)} ms; deaths: ${JSON.stringify(deaths.map((d) => ({ by: d.who, afterRestartMs: Math.round(d.at - restartedAt) })))}\n`,
      );
      expect(deaths).toEqual([]);
      expect(a.isAlive(b.id) && b.isAlive(a.id)).toBe(true);
      // A member that stops for real is still declared dead.
      b.halt();
      await until('b declared dead by a', () => !a.isAlive(b.id), 15_000);
      a.halt();
    },
  );
});
