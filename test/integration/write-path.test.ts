/**
 * The write path of a HITL cycle on the LevelDB store (docs/durability.md, "The write path"): the
 * review case is opened in the batch that makes the agent's request for it durable, and an approved
 * plan is not stored again by the agent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { verifyAudit } from '../../src/base/audit-log.ts';
import { StoreWriteError } from '../../src/runtime/level-store.ts';
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

describe('a failed batch holding the request to open a case and the case itself', () => {
  it('loses both; the episode started again opens its case once and ends; the audit chain verifies', async () => {
    const env = await openEnv();
    const level = env.store.db as unknown as { _batch: (ops: { key: string }[], o: unknown) => Promise<void> };
    const write = level._batch.bind(level);
    const [c] = await reviewSignals();
    const id = 'ep-lost';
    const caseId = `${id}.case-1`;
    let failed = 0;
    level._batch = (ops, o) => {
      if (failed === 0 && ops.some((op) => op.key === `j:${caseId}:${'0'.repeat(10)}`)) {
        failed++;
        return Promise.reject(new StoreWriteError('injected: batch with the case creation not written'));
      }
      return write(ops, o);
    };
    // The agent's creation rides in the same batch (perception and planning start at once), so the
    // start itself is refused and the client starts it again.
    const first = await env.rt.startEpisode('refunds', c!.signal, { episodeId: id }).catch((err: unknown) => err);
    await settle(env.rt);
    expect(failed).toBe(1);
    if (first instanceof Error) {
      expect((first as { code?: string }).code).toBe('store.write_failed');
      expect(await env.store.load(caseId)).toBeUndefined();
      await env.rt.startEpisode('refunds', c!.signal, { episodeId: id });
    }
    await drive(env.rt, env.clock, async () => (await env.rt.get(caseId))?.state === 'queued');
    await env.rt.command(cmd('claim', caseId, LEAD));
    await env.rt.command(cmd('approve', caseId, LEAD));
    const done = await driveUntilDone(env, id);
    expect(agentCtx(done).outcome).toBe('approved');
    expect(agentCtx(done).caseIds).toEqual([caseId]);
    const cases = (await collect(env.store.actors('case'))).map((r) => r.id);
    expect(cases).toEqual([caseId]);
    const journal = await journalOf(env.rt, id);
    expect(journal.map((j) => j.seq)).toEqual(journal.map((_, i) => i));
    expect(journal.filter((j) => j.event.type === 'case.opened')).toHaveLength(1);
    expect((await verifyAudit(env.store.audit())).ok).toBe(true);
    await closeEnv(env);
  });
});
