/**
 * The embedded runtime on a real LevelStore and a simulated clock, with the refunds pilot model: auto
 * episodes, and the review path driven by reviewer commands.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/contracts/plan.ts';
import {
  LEAD,
  LEAD2,
  agentCtx,
  autoSignals,
  caseCtx,
  cmd,
  collect,
  driveUntilDone,
  journalOf,
  ledgerOf,
  openEnv,
  outboxOf,
  reviewSignals,
  scanSignals,
  cleanup,
} from '../helpers.ts';
import { startToCase, expectLedgerMatchesPlan, expectJournalContiguous, expectAuditOk } from './checks.ts';

afterEach(cleanup);

describe('auto episode', () => {
  it('runs to done with outcome autoActed; journal 0..n from xstate.init; one ledger entry per action; audit verifies', async () => {
    const env = await openEnv();
    const [sig] = await autoSignals();
    expect(sig, 'no auto signal in the scan').toBeDefined();
    const id = 'ep-auto-1';

    const ack = await env.rt.startEpisode('refunds', sig!.signal, { episodeId: id });
    expect(ack).toEqual({ actorId: id, seq: 0, state: 'perceiving', status: 'active' });

    const view = await driveUntilDone(env, id);
    expect(view).toMatchObject({ kind: 'agent', model: 'refunds', state: 'done', status: 'done' });
    const ctx = agentCtx(view);
    expect(ctx.outcome).toBe('autoActed');
    expect(ctx.resolution).toBe('auto');
    expect(ctx.caseIds).toEqual([]);
    expect(ctx.decision?.outcome).toBe('auto');
    expect(ctx.effect).toBeNull();
    expect(ctx.timers).toEqual({});
    expect(ctx.step).toBe(ctx.plan!.actions.length);

    // Journal: seq 0..n, strictly increasing, creation first, the final state last.
    const journal = await journalOf(env.rt, id);
    expect(journal.map((j) => j.seq)).toEqual(journal.map((_, i) => i));
    expect(journal[0]!.event.type).toBe('xstate.init');
    expect(journal[0]!.state).toBe('perceiving');
    expect(journal.at(-1)!.state).toBe('done');
    expect(journal.at(-1)!.seq).toBe(view.seq);
    for (let i = 1; i < journal.length; i++) expect(journal[i]!.at).toBeGreaterThanOrEqual(journal[i - 1]!.at);
    expect(journal.filter((j) => j.event.type === 'action.done')).toHaveLength(ctx.plan!.actions.length);

    // Ledger: one application per action, under `<episodeId>/<step>`.
    await expectLedgerMatchesPlan(env, id, ctx.plan!);
    expect(await env.world.totals()).toEqual({ effects: ctx.plan!.actions.length, duplicates: 0 });

    // Audit: the hash chain holds and tells the story of the episode.
    await expectAuditOk(env);
    const audit = (await collect(env.store.audit())).filter((e) => e.actor === id);
    expect(audit.map((e) => e.kind)).toEqual([
      'gate.decision',
      ...ctx.plan!.actions.map(() => 'action.executed'),
      'episode.outcome',
    ]);
    expect(audit.at(-1)!.data).toMatchObject({ outcome: 'autoActed' });
    expect(await outboxOf(env.store)).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------
// 2. Review path
// ------------------------------------------------------------------------------------------------

describe('review path', () => {
  it('scan: a fixed seed yields tier-1 review signals', async () => {
    const scanned = await scanSignals();
    expect(scanned.length).toBeGreaterThan(200);
    expect((await reviewSignals()).length).toBeGreaterThanOrEqual(6);
  });

  it('claim → approve → the agent acts → outcome approved', async () => {
    const env = await openEnv();
    const [sig] = await reviewSignals();
    const id = 'ep-approve';
    const caseId = await startToCase(env, sig!, id);
    expect(caseId).toBe(`${id}.case-1`);

    const agent = await env.rt.get(id);
    expect(agent!.state).toBe('awaitingReview');
    const plan = agentCtx(agent).plan!;
    let c = await env.rt.get(caseId);
    expect(c).toMatchObject({ kind: 'case', state: 'queued', status: 'active', seq: 0 });
    const cc = caseCtx(c);
    expect(cc).toMatchObject({ caseId, episodeId: id, tier: 1, requestedBy: null, claim: null, resolution: null });
    expect(cc.plan).toEqual(plan);
    expect(cc.timers).toEqual({ ack: cc.openedAt + 900_000, resolve: cc.openedAt + 3_600_000 });
    expect(cc.history.map((h) => h.kind)).toEqual(['opened']);

    const claimed = await env.rt.command(cmd('claim', caseId, LEAD, { expectedVersion: 0 }));
    expect(claimed).toEqual({ actorId: caseId, seq: 1, state: 'claimed', status: 'active' });
    c = await env.rt.get(caseId);
    expect(c!.state).toBe('claimed');
    expect(caseCtx(c).claim).toEqual({ reviewer: LEAD.id, at: env.clock.now() });
    expect(caseCtx(c).timers).toEqual({ resolve: cc.openedAt + 3_600_000, lease: env.clock.now() + 600_000 });

    const approved = await env.rt.command(cmd('approve', caseId, LEAD, { expectedVersion: 1, comment: 'looks right' }));
    expect(approved).toEqual({ actorId: caseId, seq: 2, state: 'approved', status: 'done' });
    c = await env.rt.get(caseId);
    expect(c).toMatchObject({ state: 'approved', status: 'done' });
    expect(caseCtx(c).resolution).toMatchObject({ caseId, outcome: 'approved', decidedBy: [LEAD.id], tier: 1 });
    expect(caseCtx(c).history.map((h) => h.kind)).toEqual(['opened', 'claimed', 'approved']);

    const done = await driveUntilDone(env, id);
    expect(done.state).toBe('done');
    expect(agentCtx(done)).toMatchObject({
      outcome: 'approved',
      resolution: 'approved',
      approvedTier: 1,
      caseIds: [caseId],
    });
    await expectLedgerMatchesPlan(env, id, plan);
    await expectJournalContiguous(env.rt, id);
    await expectJournalContiguous(env.rt, caseId);
    expect(await outboxOf(env.store)).toEqual([]);
    await expectAuditOk(env);
    const kinds = (await collect(env.store.audit())).filter((e) => e.actor === caseId).map((e) => e.kind);
    expect(kinds).toEqual(['case.opened', 'case.claimed', 'case.approved']);
  });

  it('claim → modify with a valid edited plan → outcome modified; the edited plan is what runs', async () => {
    const env = await openEnv();
    const sigs = await reviewSignals();
    // Prefer a refund, whose amount a reviewer can lower.
    const sig = sigs.find((s) => s.plan.actions[0]!.type === 'issueRefund') ?? sigs[0]!;
    const id = 'ep-modify';
    const caseId = await startToCase(env, sig, id);
    await env.rt.command(cmd('claim', caseId, LEAD));
    expect((await env.rt.get(caseId))!.state).toBe('claimed');

    const original = caseCtx(await env.rt.get(caseId)).plan;
    const edited: Plan = structuredClone(original);
    const first = edited.actions[0]!;
    if (first.type === 'issueRefund')
      first.args.amount = Math.max(0.01, Math.round((first.args.amount as number) * 50) / 100);
    else first.args.reason = `${String(first.args.reason)} (edited by the reviewer)`;
    expect(env.model.validatePlan(edited)).toBeTruthy();

    const ack = await env.rt.command(
      cmd('modify', caseId, LEAD, {
        actions: edited.actions.map((a) => ({ type: a.type, args: a.args })),
        comment: 'halve it: partial goodwill refund',
      }),
    );
    // The edited action is described again from its new arguments; the rest is the planner's.
    first.description =
      first.type === 'issueRefund'
        ? `Refund €${(first.args.amount as number).toFixed(2)} to the IBAN on file`
        : `Record the refund as declined: ${String(first.args.reason)}`;
    expect(ack).toMatchObject({ state: 'modified', status: 'done' });
    const c = await env.rt.get(caseId);
    expect(c).toMatchObject({ state: 'modified', status: 'done' });
    expect(caseCtx(c).resolution).toMatchObject({
      outcome: 'modified',
      decidedBy: [LEAD.id],
      reason: 'halve it: partial goodwill refund',
    });
    expect(caseCtx(c).plan).toEqual(edited);
    expect(caseCtx(c).proposedPlan).toEqual(original);

    const done = await driveUntilDone(env, id);
    expect(done.state).toBe('done');
    expect(agentCtx(done)).toMatchObject({ outcome: 'modified', resolution: 'modified', caseIds: [caseId] });
    expect(agentCtx(done).plan).toEqual(edited);
    await expectLedgerMatchesPlan(env, id, edited);
    expect((await ledgerOf(env.world, id))[0]!.args).not.toEqual(original.actions[0]!.args);
    expect(await outboxOf(env.store)).toEqual([]);
    await expectAuditOk(env);
  });

  it('claim → reject → outcome rejected; nothing is executed; the closed case refuses further commands', async () => {
    const env = await openEnv();
    const [, sig] = await reviewSignals();
    const id = 'ep-reject';
    const caseId = await startToCase(env, sig!, id);
    await env.rt.command(cmd('claim', caseId, LEAD));
    const ack = await env.rt.command(cmd('reject', caseId, LEAD, { reason: 'the customer already got a voucher' }));
    expect(ack).toMatchObject({ state: 'rejected', status: 'done' });
    expect(caseCtx(await env.rt.get(caseId)).resolution).toMatchObject({
      outcome: 'rejected',
      decidedBy: [LEAD.id],
      reason: 'the customer already got a voucher',
    });

    const done = await driveUntilDone(env, id);
    expect(done.state).toBe('rejected');
    expect(agentCtx(done)).toMatchObject({ outcome: 'rejected', caseIds: [caseId] });
    expect(await ledgerOf(env.world, id)).toEqual([]);
    expect(await outboxOf(env.store)).toEqual([]);

    await expect(env.rt.command(cmd('claim', caseId, LEAD2))).rejects.toMatchObject({ code: 'event.rejected' });
    await expectAuditOk(env);
  });
});
