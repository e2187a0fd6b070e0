/** The embedded runtime's command boundary (refunds model, real LevelStore): a refused command changes nothing. */
import { afterEach, describe, expect, it } from 'vitest';
import { ContractError, HandoffError } from '../../../src/contracts/errors.ts';
import {
  LEAD,
  LEAD2,
  MANAGER,
  caseCtx,
  cmd,
  collect,
  journalOf,
  openEnv,
  refunds,
  reviewSignals,
  settle,
  type Env,
  cleanup,
} from '../helpers.ts';
import { startToCase } from './checks.ts';

afterEach(cleanup);

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
