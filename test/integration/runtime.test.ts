/**
 * Integration tests of the embedded runtime on a real LevelStore and a simulated clock, with the
 * `refunds` pilot model: auto episodes, the review path driven by reviewer commands, the command
 * boundary, durability across restarts (timers, pending effects, the outbox) and log redaction.
 */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ContractError, HandoffError } from '../../src/contracts/errors.ts';
import type { Plan } from '../../src/contracts/plan.ts';
import { verifyAudit } from '../../src/runtime/audit-log.ts';
import { createLogger } from '../../src/runtime/logger.ts';
import type { LoadedModel } from '../../src/models/loader.ts';
import type { Runtime, RuntimeOptions, TransitionNotice } from '../../src/runtime/runtime.ts';
import {
  LEAD,
  LEAD2,
  MANAGER,
  agentCtx,
  autoSignals,
  caseCtx,
  cleanup,
  closeEnv,
  cmd,
  collect,
  drive,
  driveUntilDone,
  journalOf,
  ledgerOf,
  openEnv,
  outboxOf,
  refunds,
  reviewSignals,
  scanSignals,
  settle,
  type Classified,
  type Env,
} from './helpers.ts';

afterEach(cleanup);

/** Starts an episode on a review signal and drives until its case `<id>.case-1` is open. */
async function startToCase(env: Env, c: Classified, episodeId: string): Promise<string> {
  await env.rt.startEpisode('refunds', c.signal, { episodeId });
  const caseId = `${episodeId}.case-1`;
  const opened = await drive(env.rt, env.clock, async () => {
    const ep = await env.rt.get(episodeId);
    return !!(await env.rt.get(caseId)) && !!ep && agentCtx(ep).caseIds.includes(caseId);
  });
  expect(opened, `case ${caseId} did not open`).toBe(true);
  return caseId;
}

/** Expects the ledger of an episode to hold exactly one application per planned action, keyed `<episodeId>/<step>`. */
async function expectLedgerMatchesPlan(env: Env, episodeId: string, plan: Plan): Promise<void> {
  const ledger = await ledgerOf(env.world, episodeId);
  expect(ledger.map((e) => e.key)).toEqual(plan.actions.map((_, i) => `${episodeId}/${i}`));
  for (const [i, e] of ledger.entries()) {
    expect(e.applications).toBe(1);
    expect(e.action).toBe(plan.actions[i]!.type);
    expect(e.args).toEqual(plan.actions[i]!.args);
  }
}

async function expectJournalContiguous(rt: Runtime, id: string): Promise<void> {
  const journal = await journalOf(rt, id);
  expect(journal.map((j) => j.seq)).toEqual(journal.map((_, i) => i));
  expect(journal[0]!.event.type).toBe('xstate.init');
  const view = await rt.get(id);
  expect(journal.at(-1)!.seq).toBe(view!.seq);
  expect(journal.at(-1)!.state).toBe(view!.state);
}

async function expectAuditOk(env: Env): Promise<void> {
  const v = await verifyAudit(env.store.audit());
  expect(v).toMatchObject({ ok: true });
  expect(v.entries).toBeGreaterThan(0);
}

// ------------------------------------------------------------------------------------------------
// 1. Auto episode
// ------------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------------
// 3. Command boundary
// ------------------------------------------------------------------------------------------------

describe('command boundary: refused commands change nothing', () => {
  /** Runs a command that must be refused; checks state, seq, context and journal are unchanged. */
  async function refused(
    env: Env,
    caseId: string,
    command: Record<string, unknown>,
    opts: { commandRecorded?: boolean } = {},
  ): Promise<HandoffError> {
    const before = await env.rt.get(caseId);
    const journalBefore = await journalOf(env.rt, caseId);
    const auditBefore = (await collect(env.store.audit())).length;
    const err = await env.rt.command(command).then(
      (ack) => {
        throw new Error(`command was accepted: ${JSON.stringify(ack)}`);
      },
      (e: unknown) => e,
    );
    await settle(env.rt);
    expect(err).toBeInstanceOf(HandoffError);
    const after = await env.rt.get(caseId);
    expect(after?.state).toBe(before?.state);
    expect(after?.seq).toBe(before?.seq);
    expect(after?.context).toEqual(before?.context);
    expect(await journalOf(env.rt, caseId)).toEqual(journalBefore);
    expect((await collect(env.store.audit())).length).toBe(auditBefore);
    // Every command these tests refuse carries a commandId: whether it was recorded is always checked.
    expect(typeof command.commandId, 'a refused command without a commandId').toBe('string');
    expect(await env.store.hasCommand(command.commandId as string)).toBe(opts.commandRecorded ?? false);
    return err as HandoffError;
  }

  it('contract, lookup, authorisation, state, version, replay and plan-argument errors', async () => {
    const env = await openEnv();
    const [sig] = await reviewSignals();
    const caseId = await startToCase(env, sig!, 'ep-boundary');

    // Malformed: no reviewer.
    const { reviewer: _dropped, ...noReviewer } = cmd('claim', caseId, LEAD);
    let err = await refused(env, caseId, noReviewer);
    expect(err).toBeInstanceOf(ContractError);
    expect(err).toMatchObject({ code: 'contract.invalid', path: 'reviewer' });

    // Wrong schema version.
    err = await refused(env, caseId, cmd('claim', caseId, LEAD, { schemaVersion: 2 }));
    expect(err).toBeInstanceOf(ContractError);
    expect(err).toMatchObject({ code: 'contract.invalid', path: 'schemaVersion' });

    // Unknown case.
    await expect(env.rt.command(cmd('claim', 'ep-nope.case-1', LEAD))).rejects.toMatchObject({
      code: 'actor.not_found',
    });

    // A reviewer without the tier's role.
    err = await refused(env, caseId, cmd('claim', caseId, MANAGER));
    expect(err).toMatchObject({ code: 'auth.forbidden', details: { rule: 'tier-role' } });

    // Approve before claiming.
    err = await refused(env, caseId, cmd('approve', caseId, LEAD));
    expect(err).toMatchObject({ code: 'event.rejected', details: { rule: 'not-claimed', state: 'queued' } });

    // Stale expected version.
    err = await refused(env, caseId, cmd('claim', caseId, LEAD, { expectedVersion: 7 }));
    expect(err).toMatchObject({ code: 'actor.conflict', details: { expected: 7, actual: 0 } });

    // Now claim for real, then replay the same command id.
    const claim = cmd('claim', caseId, LEAD, { expectedVersion: 0 });
    await env.rt.command(claim);
    expect((await env.rt.get(caseId))!.state).toBe('claimed');
    err = await refused(env, caseId, claim, { commandRecorded: true });
    expect(err.code).toBe('command.replayed');
    // The same id on a different command is a replay too.
    err = await refused(
      env,
      caseId,
      { ...cmd('renew', caseId, LEAD), commandId: claim.commandId },
      { commandRecorded: true },
    );
    expect(err.code).toBe('command.replayed');

    // Someone else deciding a case they did not claim.
    err = await refused(env, caseId, cmd('approve', caseId, LEAD2));
    expect(err).toMatchObject({ code: 'event.rejected', details: { rule: 'not-claimant' } });

    // Modify with a plan whose action arguments break the action's schema.
    const plan = structuredClone(caseCtx(await env.rt.get(caseId)).plan);
    const badArgs =
      plan.actions[0]!.type === 'issueRefund'
        ? { ...plan.actions[0]!.args, amount: -5 }
        : { ...plan.actions[0]!.args, orderId: '' };
    plan.actions[0]!.args = badArgs;
    err = await refused(
      env,
      caseId,
      cmd('modify', caseId, LEAD, {
        actions: plan.actions.map((a) => ({ type: a.type, args: a.args })),
        comment: 'broken edit',
      }),
    );
    expect(err).toBeInstanceOf(ContractError);
    expect(err.code).toBe('contract.invalid');
    expect((err as ContractError).path.startsWith('actions.0.args')).toBe(true);

    // A refused command id is not burnt: the same id works once the command is valid.
    const approve = cmd('approve', caseId, LEAD2);
    await refused(env, caseId, approve);
    const ok = await env.rt.command({ ...approve, reviewer: LEAD });
    expect(ok.state).toBe('approved');
  });

  it('the requester of the action never reviews it (separation of duties)', async () => {
    const model = await refunds();
    const leads = new Set(model.config.reviewers.filter((r) => r.roles.includes('support-lead')).map((r) => r.id));
    const sig = (await reviewSignals({ requestedBy: 'any' })).find(
      (s) => typeof s.signal.requestedBy === 'string' && leads.has(s.signal.requestedBy),
    );
    // No such signal means the fixture no longer exercises separation of duties: that is a failure, not a skip.
    if (!sig)
      return expect.unreachable(
        `no synthesized refunds signal goes to review at tier 1 with a support lead (${[...leads].join(', ')}) as requester: fix the fixture scan in test/integration/helpers.ts`,
      );
    const requester = String(sig.signal.requestedBy);
    expect(sig.observation.requestedBy).toBe(requester);

    const env = await openEnv();
    const caseId = await startToCase(env, sig, 'ep-sod');
    expect(caseCtx(await env.rt.get(caseId)).requestedBy).toBe(requester);
    const err = await refused(env, caseId, cmd('claim', caseId, { id: requester, roles: ['support-lead'] }));
    expect(err).toMatchObject({ code: 'auth.forbidden', details: { rule: 'separation-of-duties' } });
    // Anyone else with the role may.
    const other = requester === LEAD.id ? LEAD2 : LEAD;
    expect((await env.rt.command(cmd('claim', caseId, other))).state).toBe('claimed');
  });

  // BUG (src/runtime/runtime.ts, Runtime.command, lines ~280-315): the replay check
  // (`#recentCommands.has(id) || await store.hasCommand(id)`) and the `#recentCommands.add(id)` are
  // separated by awaits, and `store.hasCommand` only reads what is already written to LevelDB. Two
  // submissions of the same commandId that arrive together (a client retrying after a timeout, a
  // double click through the gateway) both pass the check and are both applied: two journal entries
  // carry one commandId. Expected: exactly one is applied, the other is refused `command.replayed`.
  it('the same commandId submitted twice concurrently is applied once', async () => {
    const env = await openEnv();
    const [sig] = await reviewSignals();
    const caseId = await startToCase(env, sig!, 'ep-dup');
    await env.rt.command(cmd('claim', caseId, LEAD));
    const renew = cmd('renew', caseId, LEAD);
    const results = await Promise.allSettled([env.rt.command(renew), env.rt.command(renew)]);
    await settle(env.rt);
    const renewals = (await journalOf(env.rt, caseId)).filter((j) => j.event.type === 'renew');
    expect(renewals).toHaveLength(1);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'command.replayed' } });
  });
});

// ------------------------------------------------------------------------------------------------
// 4. Restart: durable timers
// ------------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------------
// 6. Outbox
// ------------------------------------------------------------------------------------------------

describe('outbox', () => {
  it('a resolution not yet consumed by the agent stays in the outbox across a restart and is delivered once', async () => {
    // One resident actor: the agent is passivated while its case is worked, so the resolution goes
    // through the outbox (a resident agent would take it at once, before the case's commit is durable).
    const env = await openEnv({ runtime: { maxResident: 1 } });
    const [sig] = await reviewSignals();
    const id = 'ep-outbox';
    const caseId = await startToCase(env, sig!, id);
    let closing: Promise<void> | undefined;
    // Stop the node as soon as the case's decision is durable, before the agent consumes it.
    env.rt.onTransition((n) => {
      if (n.id === caseId && n.status === 'done' && !closing) closing = env.rt.close();
    });
    await env.rt.command(cmd('claim', caseId, LEAD));
    await env.rt.command(cmd('approve', caseId, LEAD));
    expect(closing).toBeDefined();
    await closing;

    const pending = await outboxOf(env.store);
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({
      id: `${caseId}.resolution`,
      to: id,
      event: { type: 'case.resolved', resolution: { caseId, outcome: 'approved' } },
    });
    expect((await env.store.load(id))!.state).toBe('awaitingReview');
    await env.store.close();

    const env2 = await openEnv({ dir: env.dir, start: env.clock.now() });
    const done = await driveUntilDone(env2, id);
    expect(agentCtx(done)).toMatchObject({ outcome: 'approved', caseIds: [caseId] });
    expect(await outboxOf(env2.store)).toEqual([]);
    expect((await journalOf(env2.rt, id)).filter((j) => j.event.type === 'case.resolved')).toHaveLength(1);
    await expectLedgerMatchesPlan(env2, id, agentCtx(done).plan!);
    await expectAuditOk(env2);
  });
});

// ------------------------------------------------------------------------------------------------
// 7. Log redaction
// ------------------------------------------------------------------------------------------------

describe('logging', () => {
  function memoryLogger(model: Awaited<ReturnType<typeof refunds>>) {
    const chunks: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    });
    return { logger: createLogger({ models: [model], level: 'debug', destination }), text: () => chunks.join('') };
  }

  it('sensitive observation fields never appear in log output', async () => {
    const model = await refunds();
    const { logger, text } = memoryLogger(model);
    const env = await openEnv({ runtime: { logger } });
    const [sig] = await reviewSignals();
    const id = 'ep-log';
    const caseId = await startToCase(env, sig!, id);
    const observation = agentCtx(await env.rt.get(id)).observation!;
    const customer = observation.fields.customer as { name: string; email: string; iban: string };
    expect(customer.email).toMatch(/@/);
    expect(customer.iban).toMatch(/^[A-Z]{2}\d{2}/);

    env.rt.log.info({ observation }, 'observation');
    env.rt.log.info({ case: { observation: caseCtx(await env.rt.get(caseId)).observation } }, 'nested observation');
    env.rt.log.debug({ fields: observation.fields }, 'fields');
    env.rt.log.info({ signal: sig!.signal }, 'signal');

    const out = text();
    expect(out.split('\n').filter(Boolean)).toHaveLength(4);
    for (const secret of [customer.email, customer.iban, customer.name]) expect(out).not.toContain(secret);
    expect(out).toContain('[REDACTED]');
    // Non-sensitive fields are still there.
    expect(out).toContain(String(observation.fields.orderId));
    expect(out).toContain(String((customer as unknown as { customerId: string }).customerId));
  });

  // GAP (src/runtime/logger.ts, createLogger, lines 9-15): redaction paths are built from
  // `model.sensitiveFields` (observation fields) only. Action argument schemas marked `sensitive()`
  // (refunds: issueRefund.iban, notifyCustomer.email) are not redacted, so logging a plan (or a case
  // context's `plan` / a `case.resolved` event) writes the customer's IBAN and e-mail in clear.
  // `sensitive()` is documented (src/contracts/classification.ts) as "redacted in logs". The runtime
  // itself does not log plans today, so this is latent.
  it('sensitive action arguments in a plan are redacted in log output', async () => {
    const model = await refunds();
    const { logger, text } = memoryLogger(model);
    const [sig] = (await reviewSignals()).filter((s) => s.plan.actions[0]!.type === 'issueRefund');
    const iban = sig!.plan.actions[0]!.args.iban as string;
    const email = sig!.plan.actions[1]!.args.email as string;
    logger.info({ plan: sig!.plan }, 'plan');
    expect(text()).toContain(String(sig!.plan.actions[0]!.args.orderId));
    expect(text()).not.toContain(iban);
    expect(text()).not.toContain(email);
  });
});
