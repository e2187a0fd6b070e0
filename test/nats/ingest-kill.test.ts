/**
 * Issue 20, item 3: a node killed between accepting signals and starting their episodes loses none and
 * starts none twice. Node A (a child process, `handoff start --nats`) is alone when 40 signals arrive
 * over NATS and is SIGKILLed once some of its episodes have started; node B joins afterwards. The
 * signals A had pulled but not handed on come back to B (unacknowledged), starts A had handed on come
 * from the work stream, A's episodes are taken over. Every signal ends as exactly one episode whose
 * journal starts once; sending all 40 again starts nothing.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsSignalsClient, episodeIdFor } from '../../src/client.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { loadModel } from '../../src/models/loader.ts';
import type { TransitionNotice } from '../../src/runtime/runtime.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';
import { NodeProcess, freshNamespace, natsConnect, startServer, until } from './helpers.ts';

const silent = pino({ level: 'silent' });
const N = 40;

describe('a node killed between accepting signals and starting them (issue 20)', () => {
  let server: NatsServer;
  let a: NodeProcess | undefined;
  let b: ClusterNode | undefined;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await a?.kill();
    await b?.stop().catch(() => undefined);
    await server?.dispose();
  });

  it('loses no signal and starts no episode twice', { timeout: 180_000 }, async () => {
    const ns = freshNamespace('ingestkill');
    a = new NodeProcess(server.url, 'a', ns, ['--time-scale', '3600']);
    await a.ready;
    const watcher = await NatsTransport.connect(server.url);
    const nc = await natsConnect(server.url);
    const seen = new Set<string>();
    const sub = watcher.subscribe(`handoff.${ns}.events.agent.*`, (m) => seen.add((m.data as TransitionNotice).id));
    try {
      const client = new NatsSignalsClient(nc, { namespace: ns });
      const keys = Array.from({ length: N }, (_, i) => `kill-${i}`);
      const model = await loadModel('models/refunds');
      const body = (i: number) => ({
        ticketId: `T-${i}`,
        orderId: 'ORD-10000042',
        reason: 'arrived broken',
        channel: 'email',
        requestedAmount: 50 + i,
      });
      await Promise.all(keys.map((k, i) => client.submit('refunds', body(i), { idempotencyKey: k })));
      // Killed mid-flow: some episodes started, not all.
      await until('A started some episodes', () => seen.size >= 3, 60_000);
      await a.kill();
      const startedBeforeKill = seen.size;
      b = await ClusterNode.start({
        servers: server.url,
        node: 'b',
        namespace: ns,
        models: [model],
        logger: silent,
        timeScale: 3600,
      });
      const ids = keys.map((k) => episodeIdFor('refunds', k));
      await until(
        'every signal started',
        async () => {
          for (const id of ids) if (!(await b!.store.load(id))) return false;
          return true;
        },
        90_000,
      );
      // The same 40 again: JetStream's window or the derived ids answer, nothing new starts.
      const again = await Promise.all(keys.map((k, i) => client.submit('refunds', body(i), { idempotencyKey: k })));
      expect(again.every((x) => x.duplicate)).toBe(true);
      await new Promise((r) => setTimeout(r, 1000));
      let agents = 0;
      for await (const e of b.store.index()) if (e.kind === 'agent') agents++;
      expect(agents).toBe(N);
      // A start's journal entry is a derived write that follows its record; the entries A owed when it
      // died are written by B when it adopts A's groups. Wait for them (bounded), then count: exactly one.
      const startsOf = async (id: string) => {
        let starts = 0;
        for await (const j of b!.store.journal(id)) if (j.seq === 1) starts++;
        return starts;
      };
      await until(
        'every start in its journal',
        async () => {
          for (const id of ids) if ((await startsOf(id)) === 0) return false;
          return true;
        },
        90_000,
      );
      for (const id of ids) expect(await startsOf(id), id).toBe(1);
      expect(startedBeforeKill).toBeLessThanOrEqual(N);
      // What the kill left to B: signals A had not handed on, and starts A had handed on but not run.
      const ingest = b.ingest!.stats;
      console.log(
        `[ingest-kill] episodes seen before the kill ${startedBeforeKill}/${N}; node B: ` +
          `${ingest.accepted} signals handed on (${ingest.duplicates} already on the work stream), ` +
          `${b.stats.started} episodes started, ${b.stats.takeovers} groups taken over`,
      );
    } finally {
      sub.unsubscribe();
      await watcher.close();
      await nc.close();
    }
  });
});
