/** The embedded runtime across restarts (refunds model, real LevelStore): durable timers and pending effects. */
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadedModel } from '../../../src/models/loader.ts';
import type { RuntimeOptions, TransitionNotice } from '../../../src/runtime/runtime.ts';
import {
  LEAD,
  MANAGER,
  agentCtx,
  autoSignals,
  caseCtx,
  closeEnv,
  cmd,
  collect,
  drive,
  driveUntilDone,
  journalOf,
  ledgerOf,
  openEnv,
  refunds,
  reviewSignals,
  settle,
  cleanup,
} from '../helpers.ts';
import { startToCase, expectLedgerMatchesPlan, expectJournalContiguous, expectAuditOk } from './checks.ts';

afterEach(cleanup);

describe('restart', () => {
  /**
   * Two cases of two episodes; the first claimed (lease armed, ack cleared), the second queued.
   * Returns what the tests compare after the restart.
   */
  async function claimedCaseThenStop(runtime: Partial<RuntimeOptions> = {}) {
    const env = await openEnv({ runtime });
    const [s1, s2] = await reviewSignals();
    const caseA = await startToCase(env, s1!, 'ep-r1');
    const caseB = await startToCase(env, s2!, 'ep-r2');
    const claim = cmd('claim', caseA, LEAD);
    await env.rt.command(claim);
    await settle(env.rt);
    const beforeA = (await env.rt.get(caseA))!;
    const beforeB = (await env.rt.get(caseB))!;
    expect(beforeA.state).toBe('claimed');
    expect(caseCtx(beforeA).timers.lease).toBe(env.clock.now() + 600_000);
    expect(caseCtx(beforeA).timers.ack).toBeUndefined();
    const stoppedAt = env.clock.now();
    await closeEnv(env);
    return { dir: env.dir, caseA, caseB, claim, beforeA, beforeB, stoppedAt };
  }

  // The full scenario. `timerHorizonMs` is raised to a day on both runs to step around the bug
  // below (deadlines more than 2 × horizon after a restart are never armed); with the default
  // horizon of 60 s this test fails at "past the lease deadline".
  it('a claimed case keeps its claim and timers across a restart; the lease expires, then the resolve deadline escalates it', async () => {
    const horizon = { timerHorizonMs: 24 * 3_600_000 };
    const { dir, caseA, caseB, claim, beforeA, beforeB, stoppedAt } = await claimedCaseThenStop(horizon);
    const lease = caseCtx(beforeA).timers.lease!;
    const resolve = caseCtx(beforeA).timers.resolve!;
    const env2 = await openEnv({ dir, start: stoppedAt, runtime: horizon });

    // Same claim, same deadlines, same version.
    const afterA = await env2.rt.get(caseA);
    expect(afterA).toMatchObject({ state: 'claimed', status: 'active', seq: beforeA.seq });
    expect(caseCtx(afterA).claim).toEqual(caseCtx(beforeA).claim);
    expect(caseCtx(afterA).timers).toEqual(caseCtx(beforeA).timers);
    expect(caseCtx(await env2.rt.get(caseB)).timers).toEqual(caseCtx(beforeB).timers);
    // Command ids are durable: the claim cannot be replayed after the restart.
    await expect(env2.rt.command(claim)).rejects.toMatchObject({ code: 'command.replayed' });

    // Past the lease deadline: back to the queue.
    const queued = await drive(env2.rt, env2.clock, async () => (await env2.rt.get(caseA))!.state === 'queued', {
      notAfter: resolve - 1,
    });
    expect(queued).toBe(true);
    expect(env2.clock.now()).toBeGreaterThanOrEqual(lease);
    let a = caseCtx(await env2.rt.get(caseA));
    expect(a.claim).toBeNull();
    expect(a.tier).toBe(1);
    expect(a.history.at(-1)).toMatchObject({ kind: 'lease-expired', by: LEAD.id, at: lease });
    expect(a.timers).toEqual({ resolve });

    // Past the resolve deadline: escalated to tier 2 with fresh deadlines.
    const escalated = await drive(env2.rt, env2.clock, async () => caseCtx(await env2.rt.get(caseA)).tier === 2);
    expect(escalated).toBe(true);
    const viewA = await env2.rt.get(caseA);
    a = caseCtx(viewA);
    expect(viewA!.state).toBe('queued');
    expect(a.history.at(-1)).toMatchObject({
      kind: 'escalated',
      tier: 1,
      note: 'resolve deadline missed',
      at: resolve,
    });
    expect(a.timers).toEqual({ ack: resolve + 1_800_000, resolve: resolve + 14_400_000 });
    expect(a.escalations).toBe(1);

    // The unclaimed case escalated at its acknowledge deadline, armed before the restart (+15 min),
    // and again at tier 2's (+30 min after that), before the first case's resolve deadline (+60 min).
    const b = caseCtx(await env2.rt.get(caseB));
    const ackB = caseCtx(beforeB).timers.ack!;
    const escalations = b.history.filter((h) => h.kind === 'escalated');
    expect(escalations[0]).toMatchObject({ tier: 1, note: 'acknowledge deadline missed', at: ackB });
    expect(escalations[1]).toMatchObject({ tier: 2, note: 'acknowledge deadline missed', at: ackB + 1_800_000 });
    expect(b.tier).toBe(3);

    await expectJournalContiguous(env2.rt, caseA);
    await expectAuditOk(env2);
    // Tier-2 cases now need a refunds manager.
    await expect(env2.rt.command(cmd('claim', caseA, LEAD))).rejects.toMatchObject({ code: 'auth.forbidden' });
    expect((await env2.rt.command(cmd('claim', caseA, MANAGER))).state).toBe('claimed');
  });

  // BUG (src/runtime/timer-service.ts, TimerService.#refill, lines 76-91): at start the runtime loads
  // the timer index only up to `now + 2 × timerHorizonMs` (`load(until + horizonMs)`), and arms a
  // later refill only for a deadline found between `now + horizon` and `now + 2 × horizon`. A
  // deadline further out is never seen: after a restart with the default horizon (60 s) nothing is
  // armed (`clock.nextDue()` is undefined), so the 10-minute lease and the 1-hour resolve deadline of
  // the claimed case never fire unless some other actor happens to schedule a timer. Steps: open a
  // case, claim it, close runtime + store, reopen at the same time, drive the clock.
  // Expected: the case returns to `queued` at the lease deadline. Got: nothing is due; it stays claimed.
  it('with the default timer horizon, durable deadlines fire after a restart', async () => {
    const { dir, caseA, beforeA, stoppedAt } = await claimedCaseThenStop();
    const env2 = await openEnv({ dir, start: stoppedAt });
    const lease = caseCtx(beforeA).timers.lease!;
    await drive(env2.rt, env2.clock, async () => (await env2.rt.get(caseA))!.state === 'queued', {
      notAfter: lease + 60_000,
    });
    expect((await env2.rt.get(caseA))!.state).toBe('queued');
    expect(caseCtx(await env2.rt.get(caseA)).history.at(-1)).toMatchObject({ kind: 'lease-expired', at: lease });
  });

  // BUG (src/runtime/timer-service.ts, TimerService.#armRefill lines 65-74 with #refill lines 76-91),
  // no restart needed: `#armRefill(at)` returns early when a refill is already armed for an earlier
  // time, relying on that refill to find the later deadline; but the refill only reads the index up
  // to `its time + 2 × horizon`. Steps: claim a case at t0 (lease t0+10m, refill armed at t0+10m),
  // advance to t0+5m, renew (lease t0+15m; the old t0+10m entry is cleared; the refill request for
  // t0+15m is dropped because one is armed at t0+10m). At t0+10m the refill finds nothing up to
  // t0+12m and arms nothing. Expected: the renewed lease expires at t0+15m. Got: `clock.nextDue()`
  // is undefined; the lease and the case's resolve deadline (t0+60m) never fire, the claim is held
  // for ever and the SLA escalation is lost.
  it('a renewed lease still expires (no restart)', async () => {
    const env = await openEnv();
    const [sig] = await reviewSignals();
    const caseId = await startToCase(env, sig!, 'ep-renew');
    await env.rt.command(cmd('claim', caseId, LEAD));
    env.clock.advanceTo(env.clock.now() + 5 * 60_000);
    await settle(env.rt);
    await env.rt.command(cmd('renew', caseId, LEAD));
    const lease = caseCtx(await env.rt.get(caseId)).timers.lease!;
    const expired = await drive(env.rt, env.clock, async () => (await env.rt.get(caseId))!.state === 'queued', {
      notAfter: lease + 60_000,
    });
    expect(expired).toBe(true);
    expect(caseCtx(await env.rt.get(caseId)).history.at(-1)).toMatchObject({ kind: 'lease-expired', at: lease });
  });

  it('an episode stopped while perceiving resumes after restart and completes with no duplicate effect', async () => {
    // Note: with the real perceiver, `startEpisode` resolves only after the init commit is durable,
    // and perception and planning (read-only) run while that commit is written, so by then the
    // episode is already `acting`. A perceiver that waits for the test keeps it in `perceiving`.
    const base = await refunds();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const slow: LoadedModel = {
      ...base,
      handlers: {
        ...base.handlers,
        perceive: async (signal, ctx) => {
          await held;
          return base.handlers.perceive(signal, ctx);
        },
      },
    };
    const env = await openEnv({ runtime: { models: [slow] } });
    const [sig] = await autoSignals();
    const id = 'ep-restart-perceive';
    await env.rt.startEpisode('refunds', sig!.signal, { episodeId: id });
    const view = await env.rt.get(id);
    expect(view!.state).toBe('perceiving');
    expect(agentCtx(view).effect).toMatchObject({ kind: 'perceive' });
    const stoppedAt = env.clock.now();
    const closing = env.rt.close();
    release(); // the perception finishes while the node stops: its result is refused, not journaled
    await closing;
    expect((await env.store.load(id))!.state).toBe('perceiving');
    expect(await collect(env.store.journal(id))).toHaveLength(1);
    expect(await collect(env.store.liveIndex())).toEqual([{ id, kind: 'agent', model: 'refunds', hot: true }]);
    await env.store.close();

    const env2 = await openEnv({ dir: env.dir, start: stoppedAt });
    expect(env2.rt.stats.restored).toBe(1);
    const done = await driveUntilDone(env2, id);
    expect(done.state).toBe('done');
    expect(agentCtx(done).outcome).toBe('autoActed');
    await expectLedgerMatchesPlan(env2, id, agentCtx(done).plan!);
    expect((await env2.world.totals()).duplicates).toBe(0);
    await expectJournalContiguous(env2.rt, id);
    await expectAuditOk(env2);
  });

  it('closed right after startEpisode resolves, the episode completes after restart with no duplicate effect', async () => {
    const env = await openEnv();
    const [sig] = await autoSignals();
    const id = 'ep-restart-early';
    await env.rt.startEpisode('refunds', sig!.signal, { episodeId: id });
    const state = (await env.rt.get(id))!.state;
    expect(['perceiving', 'planning', 'acting']).toContain(state);
    await closeEnv(env);

    const env2 = await openEnv({ dir: env.dir, start: env.clock.now() });
    const done = await driveUntilDone(env2, id);
    expect(agentCtx(done).outcome).toBe('autoActed');
    await expectLedgerMatchesPlan(env2, id, agentCtx(done).plan!);
    expect(await env2.world.totals()).toEqual({ effects: agentCtx(done).plan!.actions.length, duplicates: 0 });
    await expectJournalContiguous(env2.rt, id);
  });

  it('an episode stopped with an action in flight does not apply it twice after restart', async () => {
    const env = await openEnv();
    const [sig] = await autoSignals();
    const id = 'ep-restart-act';
    let closing: Promise<void> | undefined;
    // Stop the node the moment the first action is released: the effect runs, its result is refused.
    env.rt.onTransition((n: TransitionNotice) => {
      if (n.id === id && n.state === 'acting' && !closing) closing = env.rt.close();
    });
    await env.rt.startEpisode('refunds', sig!.signal, { episodeId: id });
    await drive(env.rt, env.clock, () => closing !== undefined);
    expect(closing).toBeDefined();
    await closing;

    // Before restarting: the effect took place, its result was never journaled. (The durable state is
    // the journal's last entry: between rest points an agent's record is not rewritten.)
    expect((await collect(env.store.journal(id))).at(-1)!.state).toBe('acting');
    expect((await env.store.load(id))!.seq).toBeLessThanOrEqual((await collect(env.store.journal(id))).at(-1)!.seq);
    expect((await ledgerOf(env.world, id)).map((e) => [e.key, e.applications])).toEqual([[`${id}/0`, 1]]);
    expect((await collect(env.store.journal(id))).some((j) => j.event.type === 'action.done')).toBe(false);
    // The result lives only in the world's ledger: the restart must find it there, not run it again.
    await env.store.close();

    const env2 = await openEnv({ dir: env.dir, start: env.clock.now() });
    const done = await driveUntilDone(env2, id);
    expect(agentCtx(done).outcome).toBe('autoActed');
    await expectLedgerMatchesPlan(env2, id, agentCtx(done).plan!);
    expect(await env2.world.totals()).toEqual({ effects: agentCtx(done).plan!.actions.length, duplicates: 0 });
    expect((await journalOf(env2.rt, id)).filter((j) => j.event.type === 'action.done')).toHaveLength(
      agentCtx(done).plan!.actions.length,
    );
    await expectJournalContiguous(env2.rt, id);
  });
});
