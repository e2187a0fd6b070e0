/**
 * Property: over random interleavings of episode starts (and resubmissions), reviewer commands (and
 * their replays under the same commandId), node crashes and restarts, on three in-process nodes:
 *
 * - one owner per actor: at no step do two live nodes both hold the right to write an episode;
 * - one outcome per episode: each started episode ends, with exactly one `episode.outcome`;
 * - no effect twice: every key in the world's ledger was applied once;
 * and each actor's journal is one line (versions 0..n, none twice), each command applied at most once.
 */
import { jetstream } from '@nats-io/jetstream';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetryingClient } from '../../src/app/cluster-demo.ts';
import type { NatsServer } from '../../src/cluster/nats-harness.ts';
import { ClusterNode } from '../../src/cluster/node.ts';
import { ensureWorkStream, workSubject, type StartRequest } from '../../src/cluster/work.ts';
import { JetStreamWorld } from '../../src/cluster/world.ts';
import { SCHEMA_VERSION } from '../../src/contracts/envelope.ts';
import { loadModel, type LoadedModel } from '../../src/models/loader.ts';
import { JetStreamStore } from '../../src/cluster/jetstream-store.ts';
import { Rng } from '../../src/base/rng.ts';
import { NatsTransport } from '../../src/cluster/nats-transport.ts';
import { freshNamespace, startServer } from './helpers.ts';
import { jetstreamManager } from '@nats-io/jetstream';

const RUNS = Number(process.env.HANDOFF_NATS_PROPERTY_RUNS ?? 4);
const EPISODES = 6;
const NODES = ['n0', 'n1', 'n2'] as const;
const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Op =
  | { t: 'start'; ep: number; resubmit: boolean }
  | { t: 'cmd'; ep: number; kind: 'claim' | 'approve' | 'reject' | 'release'; reviewer: number }
  | { t: 'replay' }
  | { t: 'crash'; node: number }
  | { t: 'restart'; node: number }
  | { t: 'wait'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ t: fc.constant('start' as const), ep: fc.nat(EPISODES - 1), resubmit: fc.boolean() }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('cmd' as const),
      ep: fc.nat(EPISODES - 1),
      kind: fc.constantFrom('claim' as const, 'approve' as const, 'reject' as const, 'release' as const),
      reviewer: fc.nat(2),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('replay' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('crash' as const), node: fc.nat(NODES.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('restart' as const), node: fc.nat(NODES.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.integer({ min: 20, max: 700 }) }) },
);

const REVIEWERS = [
  { id: 'r-amelie', roles: ['support-lead'] },
  { id: 'r-malik', roles: ['refunds-manager', 'support-lead'] },
  { id: 'r-tomasz', roles: ['finance-controller', 'refunds-manager'] },
];
const epId = (i: number) => `ep-${String(i + 1).padStart(6, '0')}`;

describe('cluster property: commands, crashes, restarts, redeliveries', () => {
  let server: NatsServer;
  let model: LoadedModel;
  beforeAll(async () => {
    server = await startServer();
    model = await loadModel('models/refunds');
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('one owner per actor, one outcome per episode, no effect twice', { timeout: 600_000 }, async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 8, maxLength: 22 }), async (ops) => {
        const ns = freshNamespace(`pp${++run}x`);
        const driver = await NatsTransport.connect(server.url);
        const store = await JetStreamStore.open({
          nc: driver.nc,
          namespace: ns,
          guard: { mayWrite: () => false, fencingToken: () => undefined },
          trackAll: false,
          auditSequencer: false,
        });
        const nodes = new Map<string, ClusterNode>();
        const crashed = new Set<string>();
        const boot = async (name: string) =>
          nodes.set(
            name,
            await ClusterNode.start({
              servers: server.url,
              node: name,
              namespace: ns,
              models: [model],
              timeScale: 3600,
              logger: silent,
              maxEpisodes: 50,
            }),
          );
        try {
          await Promise.all(NODES.map(boot));
          await ensureWorkStream(await jetstreamManager(driver.nc), ns);
          const js = jetstream(driver.nc);
          const client = new RetryingClient(driver, { namespace: ns, timeoutMs: 4000, attempts: 12 });
          const started = new Set<string>();
          let lastCmd: Record<string, unknown> | undefined;
          let cmdSeq = 0;
          const ownersOk = () => {
            for (const ep of started) {
              const writers = [...nodes.entries()].filter(([n, node]) => !crashed.has(n) && node.mayWrite(ep)).length;
              if (writers > 1) throw new Error(`${ep} is writable on ${writers} nodes at once`);
            }
          };
          for (const op of ops) {
            switch (op.t) {
              case 'start': {
                const id = epId(op.ep);
                const req: StartRequest = {
                  episodeId: id,
                  model: model.name,
                  signal: model.handlers.synthesize(new Rng(op.ep + 1), op.ep),
                };
                await js.publish(workSubject(ns), JSON.stringify(req), { msgID: `start:${id}` });
                // A resubmission past the dedupe window (another msg id): must start nothing twice.
                if (op.resubmit)
                  await js.publish(workSubject(ns), JSON.stringify(req), { msgID: `start:${id}:again:${cmdSeq++}` });
                started.add(id);
                break;
              }
              case 'cmd': {
                const extra = op.kind === 'reject' ? { reason: 'not supported by the evidence' } : {};
                lastCmd = {
                  type: `handoff.case.${op.kind}`,
                  schemaVersion: SCHEMA_VERSION,
                  commandId: `${ns}-c${++cmdSeq}`,
                  caseId: `${epId(op.ep)}.case-1`,
                  reviewer: REVIEWERS[op.reviewer],
                  ...extra,
                };
                await client.command(lastCmd as { caseId: string }).catch(() => undefined);
                break;
              }
              case 'replay':
                if (lastCmd) await client.command(lastCmd as { caseId: string }).catch(() => undefined);
                break;
              case 'crash': {
                const name = NODES[op.node]!;
                const alive = NODES.filter((n) => !crashed.has(n));
                if (crashed.has(name) || alive.length < 2) break;
                crashed.add(name);
                await nodes.get(name)!.crash();
                break;
              }
              case 'restart': {
                const name = NODES[op.node]!;
                if (!crashed.has(name)) break;
                await boot(name);
                crashed.delete(name);
                break;
              }
              case 'wait':
                await sleep(op.ms);
                break;
            }
            ownersOk();
          }
          // Everyone back, then every started episode must end (unclaimed cases expire by SLA).
          for (const name of [...crashed]) {
            await boot(name);
            crashed.delete(name);
          }
          const deadline = Date.now() + 90_000;
          for (;;) {
            ownersOk();
            const done = new Set<string>();
            for await (const e of store.index()) if (e.kind === 'agent' && e.status !== 'active') done.add(e.id);
            if ([...started].every((id) => done.has(id))) break;
            if (Date.now() > deadline)
              throw new Error(`unfinished: ${[...started].filter((id) => !done.has(id)).join(', ')}`);
            await sleep(250);
          }
          const leader = [...nodes.values()].find((n) => n.store.runsAuditSequencer) ?? [...nodes.values()][0]!;
          await leader.store.flush();
          await store.auditSettled(30_000);
          // One outcome per episode.
          const outcomes = new Map<string, number>();
          for await (const e of store.audit())
            if (e.kind === 'episode.outcome') outcomes.set(e.actor, (outcomes.get(e.actor) ?? 0) + 1);
          for (const id of started) expect(outcomes.get(id), `${id} outcomes`).toBe(1);
          expect([...outcomes.keys()].every((id) => started.has(id))).toBe(true);
          // No effect twice.
          for await (const l of new JetStreamWorld(store).entries()) expect(l.applications, l.key).toBe(1);
          // Each journal one line; each command at most once.
          const commandUses = new Map<string, number>();
          for await (const e of store.index()) {
            const seqs: number[] = [];
            for await (const j of store.journal(e.id)) {
              seqs.push(j.seq);
              const cid = (j.event as { commandId?: string }).commandId;
              if (cid) commandUses.set(cid, (commandUses.get(cid) ?? 0) + 1);
            }
            expect(seqs, e.id).toEqual(seqs.map((_, i) => i));
          }
          for (const [cid, n] of commandUses) expect(n, cid).toBe(1);
        } finally {
          await Promise.allSettled(
            [...nodes.entries()].map(([n, node]) => (crashed.has(n) ? Promise.resolve() : node.stop())),
          );
          await store.close();
          await driver.close();
        }
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
  });
});
