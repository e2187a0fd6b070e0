/**
 * The write path of a HITL cycle on the LevelDB store (docs/durability.md, "The write path"): the
 * review case is opened in the batch that makes the agent's request for it durable, and an approved
 * plan is not stored again by the agent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  LEAD,
  agentCtx,
  cleanup,
  closeEnv,
  cmd,
  collect,
  drive,
  driveUntilDone,
  journalOf,
  openEnv,
  reviewSignals,
  settle,
} from './helpers.ts';

afterEach(cleanup);

/** Keys of each batch handed to LevelDB. */
function recordBatches(db: unknown): string[][] {
  const batches: string[][] = [];
  const level = db as { _batch: (ops: { key: string }[], o: unknown) => Promise<void> };
  const write = level._batch.bind(level);
  level._batch = (ops, o) => {
    batches.push(ops.map((op) => op.key));
    return write(ops, o);
  };
  return batches;
}

describe('a HITL cycle on the LevelDB store', () => {
  it('opens the case in the batch of the agent commit that requests it, and stores the approved plan once', async () => {
    const env = await openEnv();
    const batches = recordBatches(env.store.db);
    const [c] = await reviewSignals();
    const id = 'ep-path';
    const caseId = `${id}.case-1`;
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: id });
    await drive(env.rt, env.clock, async () => (await env.rt.get(caseId))?.state === 'queued');
    await settle(env.rt);
    // The agent's plan.done (its request to open the case) and the case's creation: one batch.
    const planned = (await journalOf(env.rt, id)).find((j) => j.event.type === 'plan.done')!;
    const key = (actor: string, seq: number) => `j:${actor}:${String(seq).padStart(10, '0')}`;
    const together = batches.find((b) => b.includes(key(id, planned.seq)));
    expect(together).toContain(key(caseId, 0));

    await env.rt.command(cmd('claim', caseId, LEAD));
    await env.rt.command(cmd('approve', caseId, LEAD));
    const done = await driveUntilDone(env, id);
    expect(agentCtx(done).outcome).toBe('approved');
    // The approval brought the plan the agent had stored: its record refers to the blob of plan.done.
    const journal = await journalOf(env.rt, id);
    const resolved = journal.find((j) => j.event.type === 'case.resolved')!;
    expect((resolved.event as unknown as { resolution: { plan: unknown } }).resolution.plan).toEqual(
      agentCtx(done).plan,
    );
    const stored = await collect(env.store.db.iterator({ gte: `a:${id}`, lte: `a:${id}\u0000\uffff` }));
    const planBlobs = stored
      .flatMap(([, v]) => Object.values(v as object))
      .filter((b) => (b as { id?: string })?.id === agentCtx(done).plan!.id);
    expect(planBlobs).toHaveLength(1);
    await closeEnv(env);
  });
});
