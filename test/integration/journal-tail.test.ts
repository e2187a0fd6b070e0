/**
 * Records written at rest points, the journal in between (docs/durability.md, "Records and the
 * journal tail"); the store's key filters (reads of absent keys answered from memory); a case's
 * resolution applied at once to a resident agent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KeyFilter } from '../../src/runtime/key-filter.ts';
import { LevelStore } from '../../src/runtime/level-store.ts';
import type { TransitionNotice } from '../../src/runtime/runtime.ts';
import {
  LEAD,
  agentCtx,
  autoSignals,
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
  tempDir,
  type Env,
} from './helpers.ts';

afterEach(cleanup);

/** Starts an auto-path episode and closes the runtime as soon as it is acting (an action in flight). */
async function stopWhileActing(id: string): Promise<Env> {
  const env = await openEnv();
  const [sig] = await autoSignals();
  let closing: Promise<void> | undefined;
  env.rt.onTransition((n: TransitionNotice) => {
    if (n.id === id && n.state === 'acting' && !closing) closing = env.rt.close();
  });
  await env.rt.startEpisode('refunds', sig!.signal, { episodeId: id });
  await drive(env.rt, env.clock, () => closing !== undefined);
  await closing;
  return env;
}

describe('agent records are rewritten at rest points; the journal carries the steps between', () => {
  it('an agent stopped with an action in flight has a record behind its journal, and resumes from record + journal', async () => {
    const id = 'ep-tail';
    const env = await stopWhileActing(id);

    const journal = await collect(env.store.journal(id));
    const rec = (await env.store.load(id))!;
    // Creation is a checkpoint; perceive.done and plan.done (an effect in flight after each) are not.
    expect(rec.seq).toBe(0);
    expect(rec.state).toBe('perceiving');
    expect(journal.map((j) => j.event.type)).toEqual(['xstate.init', 'perceive.done', 'plan.done']);
    expect(journal.at(-1)!.state).toBe('acting');
    // The journal from a given seq on, as recovery reads it.
    expect((await collect(env.store.journal(id, 1))).map((j) => j.seq)).toEqual([1, 2]);
    expect(await collect(env.store.liveIndex())).toEqual([{ id, kind: 'agent', model: 'refunds', hot: true }]);
    await env.store.close();

    const env2 = await openEnv({ dir: env.dir, start: env.clock.now() });
    // Recovery loaded it eagerly (hot), replaying the journal after its record: it is acting again.
    expect((await env2.rt.get(id))!.state).toMatch(/acting|done/);
    const done = await driveUntilDone(env2, id);
    expect(agentCtx(done).outcome).toBe('autoActed');
    expect(await env2.world.totals()).toEqual({ effects: agentCtx(done).plan!.actions.length, duplicates: 0 });
    const all = await journalOf(env2.rt, id);
    expect(all.map((j) => j.seq)).toEqual(all.map((_, i) => i));
    // The final state is a checkpoint: the record is the journal's last entry.
    const final = (await env2.store.load(id))!;
    expect(final.seq).toBe(all.at(-1)!.seq);
    expect(final.status).toBe('done');
  });

  it('an agent awaiting a reviewer is at rest: its record is current, and it can be passivated', async () => {
    const env = await openEnv();
    const [c] = await reviewSignals();
    const id = 'ep-rest';
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: id });
    await drive(env.rt, env.clock, async () => agentCtx(await env.rt.get(id)).caseIds.length > 0);
    await settle(env.rt);
    const journal = await journalOf(env.rt, id);
    const rec = (await env.store.load(id))!;
    expect(rec.state).toBe('awaitingReview');
    expect(rec.seq).toBe(journal.at(-1)!.seq);
    expect(await collect(env.store.liveIndex())).toContainEqual({ id, kind: 'agent', model: 'refunds', hot: false });
    await closeEnv(env);
  });

  it('a journal tail that does not replay to the states it recorded is handled as a crash, not trusted', async () => {
    const id = 'ep-bad-tail';
    const env = await stopWhileActing(id);
    const last = (await collect(env.store.journal(id))).at(-1)!;
    await env.store.db.put(`j:${id}:${String(last.seq).padStart(10, '0')}`, { ...last, state: 'denied' });
    await env.store.close();

    const env2 = await openEnv({
      dir: env.dir,
      start: env.clock.now(),
      runtime: { supervision: { agent: { strategy: 'escalate', maxRestarts: 0 } } },
    });
    expect(env2.rt.stats.crashes).toBeGreaterThan(0);
    expect(env2.rt.stats.restored).toBe(0);
    await settle(env2.rt);
  });
});

describe('a case resolution reaches a resident agent in the same batch', () => {
  it('the agent consumes the approval together with the case commit; nothing is left in the outbox', async () => {
    const env = await openEnv();
    const [c] = await reviewSignals();
    const id = 'ep-early';
    await env.rt.startEpisode('refunds', c!.signal, { episodeId: id });
    await drive(env.rt, env.clock, async () => (await env.rt.get(`${id}.case-1`))?.state === 'queued');
    await env.rt.command(cmd('claim', `${id}.case-1`, LEAD));
    const batches = env.store.stats.batches;
    await env.rt.command(cmd('approve', `${id}.case-1`, LEAD));
    await settle(env.rt);
    const resolved = (await journalOf(env.rt, id)).find((j) => j.event.type === 'case.resolved');
    expect(resolved).toBeDefined();
    const done = await driveUntilDone(env, id);
    expect(agentCtx(done).outcome).toBe('approved');
    expect(await collect(env.store.outbox())).toEqual([]);
    // approve + case.resolved in one batch, then per action the ledger write and its result.
    expect(env.store.stats.batches - batches).toBeLessThanOrEqual(1 + 2 * agentCtx(done).plan!.actions.length);
    await closeEnv(env);
  });
});

describe('key filters of the LevelDB store', () => {
  it('never forgets a key, and rarely claims one it has not seen', () => {
    const f = new KeyFilter(1024);
    for (let i = 0; i < 50_000; i++) f.add(`c:command-${i}`);
    for (let i = 0; i < 50_000; i++) expect(f.mightContain(`c:command-${i}`)).toBe(true);
    let positives = 0;
    for (let i = 0; i < 50_000; i++) if (f.mightContain(`c:other-${i}`)) positives++;
    expect(positives / 50_000).toBeLessThan(0.03);
  });

  it('answers for keys written before a restart, written directly to LevelDB, and never written', async () => {
    const dir = await tempDir();
    let store = await LevelStore.open(dir);
    const actor = {
      id: 'x-1',
      kind: 'case' as const,
      model: 'refunds',
      seq: 0,
      status: 'active' as const,
      state: 'queued',
      snapshot: {},
      updatedAt: 1,
    };
    await store.commit({
      actor,
      journal: { seq: 0, at: 1, event: { type: 'xstate.init' }, state: 'queued' },
      commandId: 'cmd-old',
    });
    await store.close();

    store = await LevelStore.open(dir);
    // The first reads start the scans; until they end, reads go to LevelDB.
    expect(await store.hasCommand('cmd-old')).toBe(true);
    expect(await store.load('x-1')).toMatchObject({ id: 'x-1' });
    await new Promise((r) => setTimeout(r, 50));
    expect(await store.hasCommand('cmd-old')).toBe(true);
    expect(await store.hasCommand('cmd-new')).toBe(false);
    expect(await store.load('x-1')).toMatchObject({ id: 'x-1' });
    expect(await store.load('x-2')).toBeUndefined();
    // Written around the store: still found.
    await store.db.put('a:x-3', { ...actor, id: 'x-3' });
    expect(await store.load('x-3')).toMatchObject({ id: 'x-3' });
    // Queued, not yet written: the replay guard sees it at once.
    const pending = store.commit({
      actor: { ...actor, seq: 1 },
      journal: { seq: 1, at: 2, event: { type: 'claim' }, state: 'claimed' },
      commandId: 'cmd-queued',
    });
    expect(await store.hasCommand('cmd-queued')).toBe(true);
    await pending;
    expect(await store.getAux('w', 'nothing')).toBeUndefined();
    await store.putAux('w', 'k', { v: 1 });
    expect(await store.getAux('w', 'k')).toEqual({ v: 1 });
    await store.close();
  });
});
