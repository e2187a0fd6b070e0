/** What the embedded runtime's integration tests (this folder) share: drive to an open case, and checks of the ledger, journal and audit. */
import { expect } from 'vitest';
import type { Plan } from '../../../src/contracts/plan.ts';
import { verifyAudit } from '../../../src/base/audit-log.ts';
import type { Runtime } from '../../../src/runtime/runtime.ts';
import { agentCtx, drive, journalOf, ledgerOf, type Classified, type Env } from '../helpers.ts';

/** Starts an episode on a review signal and drives until its case `<id>.case-1` is open. */
export async function startToCase(env: Env, c: Classified, episodeId: string): Promise<string> {
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
export async function expectLedgerMatchesPlan(env: Env, episodeId: string, plan: Plan): Promise<void> {
  const ledger = await ledgerOf(env.world, episodeId);
  expect(ledger.map((e) => e.key)).toEqual(plan.actions.map((_, i) => `${episodeId}/${i}`));
  for (const [i, e] of ledger.entries()) {
    expect(e.applications).toBe(1);
    expect(e.action).toBe(plan.actions[i]!.type);
    expect(e.args).toEqual(plan.actions[i]!.args);
  }
}

export async function expectJournalContiguous(rt: Runtime, id: string): Promise<void> {
  const journal = await journalOf(rt, id);
  expect(journal.map((j) => j.seq)).toEqual(journal.map((_, i) => i));
  expect(journal[0]!.event.type).toBe('xstate.init');
  const view = await rt.get(id);
  expect(journal.at(-1)!.seq).toBe(view!.seq);
  expect(journal.at(-1)!.state).toBe(view!.state);
}

export async function expectAuditOk(env: Env): Promise<void> {
  const v = await verifyAudit(env.store.audit());
  expect(v).toMatchObject({ ok: true });
  expect(v.entries).toBeGreaterThan(0);
}
