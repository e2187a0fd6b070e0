/**
 * Review integrity through the console's HTTP API on the real runtime (LevelDB on disk): what a
 * reviewer approves is exactly what runs, attributed to who decided it.
 *
 * - Four eyes cannot be bypassed by a modification: an edit discards earlier approvals and the edited
 *   plan needs its own second approver; the effect that runs carries the edited arguments.
 * - A reviewer changes arguments only: the planner's rationale, confidence and risk stay; edited
 *   actions are described again from their arguments; an unknown argument is refused, not dropped;
 *   every later case shows the planner's plan, the edit as a diff and who made it; the audit records
 *   the diff.
 * - An edit that the gate sends to a higher tier says so and names the new case.
 * - Separation of duties covers escalation; blank reasons and unbounded ids are refused.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentContext } from '../../src/machines/agent.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import type { QueueRow } from '../../src/gateway/projection.ts';
import type { AuditEntry } from '../../src/base/audit-log.ts';
import { Rng } from '../../src/base/rng.ts';
import type { LedgerEntry } from '../../src/models/define.ts';
import type { LevelWorld } from '../../src/runtime/world.ts';

const ROOT = join(import.meta.dirname, '..', '..');

let running: RunningConsole;
let data: string;

interface Session {
  cookie: string;
  csrf: string;
}

async function login(id: string): Promise<Session> {
  const res = await fetch(`${running.url}/api/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id, password: `demo-${id.replace(/^r-/, '')}` }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return {
    cookie: res.headers.get('set-cookie')!.split(';')[0]!,
    csrf: ((await res.json()) as { csrfToken: string }).csrfToken,
  };
}

async function call(s: Session, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { Cookie: s.cookie };
  if (body !== undefined) Object.assign(headers, { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf });
  const res = await fetch(`${running.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    return { status: res.status, json: text };
  }
}

let n = 0;
const cmd = (type: string, extra: Record<string, unknown> = {}) => ({
  type,
  schemaVersion: 1,
  commandId: `ri-${++n}`,
  ...extra,
});
const commands = (id: string) => `/api/cases/${encodeURIComponent(id)}/commands`;

function openCases(pred: (r: QueueRow) => boolean): QueueRow[] {
  const anyone = {
    id: 'probe',
    name: 'probe',
    grants: { refunds: { roles: ['support-lead', 'refunds-manager', 'finance-controller'], seeSensitive: true } },
  };
  return running.gateway.projection.list(anyone, {}, 0, 100_000, Date.now()).rows.filter(pred);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, limitMs = 30_000): Promise<T> {
  const until = Date.now() + limitMs;
  for (;;) {
    await running.runtime.whenIdle();
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function agentOf(caseId: string): Promise<AgentContext> {
  const c = (await running.runtime.get(caseId))!.context as CaseContext;
  return (await running.runtime.get(c.episodeId))!.context as AgentContext;
}

async function auditOf(actor: string): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of running.store.audit()) if (e.actor === actor) out.push(e);
  return out;
}

/** A fresh tier-1 refund case nobody filed for themselves, claimed by no one. */
const used = new Set<string>();
function freshRefundCase(): QueueRow {
  const row = openCases(
    (r) =>
      r.tier === 1 &&
      r.requestedBy === null &&
      r.claimedBy === null &&
      r.actions[0] === 'issueRefund' &&
      !used.has(r.id),
  )[0];
  if (!row) throw new Error('no tier-1 refund case left in the fixture');
  used.add(row.id);
  return row;
}

const editedActions = (
  plan: { actions: { type: string; args: Record<string, unknown> }[] },
  args: Record<string, unknown>,
) => plan.actions.map((a, i) => ({ type: a.type, args: i === 0 ? { ...a.args, ...args } : a.args }));

describe('review integrity: what a reviewer approves is exactly what runs', () => {
  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'handoff-integrity-'));
    running = await startConsole({ data, models: [join(ROOT, 'models/refunds')], port: 0 });
    const model = running.runtime.models.get('refunds')!;
    const rng = new Rng(777);
    for (let i = 0; i < 60; i++)
      void running.runtime
        .startEpisode('refunds', model.handlers.synthesize(rng, i), { episodeId: `ri-${i}` })
        .catch(() => undefined);
    for (let i = 0; i < 6; i++) {
      const signal = {
        ...(model.handlers.synthesize(rng, 100 + i) as Record<string, unknown>),
        channel: 'phone',
        requestedBy: 'r-jonas',
      };
      void running.runtime.startEpisode('refunds', signal, { episodeId: `ri-staff-${i}` }).catch(() => undefined);
    }
    await waitFor('tier-1 refund cases', async () =>
      openCases((r) => r.tier === 1 && r.actions[0] === 'issueRefund' && r.requestedBy === null).length >= 4
        ? true
        : undefined,
    );
  }, 60_000);

  afterAll(async () => {
    await running?.close();
    if (data) await rm(data, { recursive: true, force: true });
  });

  it('four eyes: a second reviewer’s edit discards the first approval; the edited plan needs another approver, and runs as edited', async () => {
    const row = freshRefundCase();
    const [amelie, ingrid, pieter, claire] = await Promise.all(
      ['r-amelie', 'r-ingrid', 'r-pieter', 'r-claire'].map(login),
    );
    expect(
      (await call(amelie!, commands(row.id), cmd('handoff.case.escalate', { reason: 'needs a manager' }))).status,
    ).toBe(200);
    expect(
      (await call(ingrid!, commands(row.id), cmd('handoff.case.escalate', { reason: 'needs finance' }))).status,
    ).toBe(200);
    expect((await call(pieter!, commands(row.id), cmd('handoff.case.claim'))).status).toBe(200);
    const first = await call(pieter!, commands(row.id), cmd('handoff.case.approve', { comment: 'amount checked' }));
    expect(first.json.case).toMatchObject({ state: 'queued', approvals: [{ id: 'r-pieter' }] });

    const claim = await call(claire!, commands(row.id), cmd('handoff.case.claim'));
    expect(claim.status).toBe(200);
    const before = claim.json.case.plan;
    const amount = 1_500;
    const edit = await call(
      claire!,
      commands(row.id),
      cmd('handoff.case.modify', {
        actions: editedActions(before, { amount }),
        comment: 'the customer also returned the second item',
      }),
    );
    expect(edit.status, JSON.stringify(edit.json)).toBe(200);
    // Not resolved on one person's word: back in the queue, Pieter's approval discarded.
    expect(edit.json.case.state).toBe('queued');
    expect(edit.json.case.resolution).toBeNull();
    expect(edit.json.case.approvals.map((a: { id: string }) => a.id)).toEqual(['r-claire']);
    expect(edit.json.case.edits).toHaveLength(1);
    expect(edit.json.case.edits[0]).toMatchObject({
      by: 'r-claire',
      tier: 3,
      discardedApprovals: [{ id: 'r-pieter' }],
      diff: [{ path: 'actions.0.args.amount', from: before.actions[0].args.amount, to: amount }],
    });
    expect((await agentOf(row.id)).step).toBe(0);
    // Claire cannot approve her own edit; Pieter may approve the new plan.
    const self = await call(claire!, commands(row.id), cmd('handoff.case.claim'));
    expect(self.status).toBe(403);
    expect(self.json.error.details.rule).toBe('four-eyes');
    expect((await call(pieter!, commands(row.id), cmd('handoff.case.claim'))).status).toBe(200);
    const second = await call(pieter!, commands(row.id), cmd('handoff.case.approve'));
    expect(second.json.case.state).toBe('modified');
    expect(second.json.case.resolution.decidedBy).toEqual(['r-claire', 'r-pieter']);

    // What runs is the edited amount, and nothing else.
    const agent = await waitFor('the episode to finish', async () => {
      const a = await agentOf(row.id);
      return a.outcome ? a : undefined;
    });
    expect(agent.outcome).toBe('modified');
    const effects: LedgerEntry[] = [];
    for await (const e of (running.runtime.world as LevelWorld).entries())
      if (e.key.startsWith(`${agent.episodeId}/`) && e.action === 'issueRefund') effects.push(e);
    expect(effects).toHaveLength(1);
    expect(effects[0]!.args.amount).toBe(amount);
  });

  it('a reviewer edits arguments only: planner fields stay, edited actions are described again, unknown arguments are refused', async () => {
    const row = freshRefundCase();
    const amelie = await login('r-amelie');
    const claim = await call(amelie, commands(row.id), cmd('handoff.case.claim'));
    const plan = claim.json.case.plan;
    // The planner's plan cannot be replaced...
    const whole = await call(
      amelie,
      commands(row.id),
      cmd('handoff.case.modify', { plan: { ...plan, rationale: 'Refund €15.00' }, comment: 'x' }),
    );
    expect(whole.status).toBe(400);
    expect(whole.json.error.details.path).toBe('plan');
    // ...nor an action's description...
    const described = editedActions(plan, { amount: 15 }).map((a, i) =>
      i === 0 ? { ...a, description: 'Refund €15.00' } : a,
    );
    const desc = await call(amelie, commands(row.id), cmd('handoff.case.modify', { actions: described, comment: 'x' }));
    expect(desc.status).toBe(400);
    expect(desc.json.error.details.path).toBe('actions.0');
    // ...and an argument the action does not have is refused by name, not silently dropped.
    const extra = await call(
      amelie,
      commands(row.id),
      cmd('handoff.case.modify', {
        actions: editedActions(plan, { amount: 15, payoutAccount: 'XX00 1234' }),
        comment: 'x',
      }),
    );
    expect(extra.status).toBe(400);
    expect(extra.json.error.details.path).toBe('actions.0.args.payoutAccount');
    // Another action type is refused.
    const swapped = await call(
      amelie,
      commands(row.id),
      cmd('handoff.case.modify', {
        actions: plan.actions.map((a: { args: unknown }) => ({ type: 'declineRefund', args: a.args })),
        comment: 'x',
      }),
    );
    expect(swapped.status).toBe(400);
    // A 2,000-level nesting is a clear 400, not a crash.
    let deep: unknown = 1;
    for (let i = 0; i < 2_000; i++) deep = { d: deep };
    const nested = await call(
      amelie,
      commands(row.id),
      cmd('handoff.case.modify', { actions: editedActions(plan, { amount: deep }), comment: 'x' }),
    );
    expect(nested.status).toBe(400);
    expect((await running.runtime.get(row.id))!.state).toBe('claimed');
  });

  it('an edit the gate sends to a higher tier: the case names the new case; the next tier sees the planner’s plan, the diff and its author', async () => {
    const row = freshRefundCase();
    const amelie = await login('r-amelie');
    const claim = await call(amelie, commands(row.id), cmd('handoff.case.claim'));
    const plan = claim.json.case.plan;
    const from = plan.actions[0].args.amount as number;
    // Above the review limit (1,000: tier 2), below the hard limit (2,000).
    const edit = await call(
      amelie,
      commands(row.id),
      cmd('handoff.case.modify', {
        actions: editedActions(plan, { amount: 1_500 }),
        comment: 'the customer sent the receipt for both',
      }),
    );
    expect(edit.status, JSON.stringify(edit.json)).toBe(200);
    expect(edit.json.case.state).toBe('modified');
    // The gate's view of the edited plan, computed from the new arguments.
    expect(edit.json.case.regate.outcome).toBe('review');
    expect(edit.json.case.regate.rules).toContainEqual(
      expect.objectContaining({ ruleId: 'limit:issueRefund.amount', result: 'review', tier: 2 }),
    );

    const agent = await waitFor('the edited plan to be gated again', async () => {
      const a = await agentOf(row.id);
      return a.caseIds.length === 2 && a.decision?.tier === 2 ? a : undefined;
    });
    const next = agent.caseIds[1]!;
    expect(agent.step).toBe(0);
    const page = await call(amelie, `/api/cases/${encodeURIComponent(row.id)}`);
    expect(page.json.case.regated).toEqual({ caseId: next, tier: 2 });

    const ingrid = await login('r-ingrid');
    const view = (await call(ingrid, `/api/cases/${encodeURIComponent(next)}`)).json.case;
    expect(view.tier.n).toBe(2);
    expect(view.modified).toBe(true);
    expect(view.plan.rationale).toBe(plan.rationale);
    expect(view.plan.confidence).toBe(plan.confidence);
    expect(view.plan.risk).toEqual(plan.risk);
    expect(view.plan.actions[0].description).toBe('Refund €1500.00 to the IBAN on file');
    expect(view.proposedPlan.actions[0].args.amount).toBe(from);
    expect(view.proposedPlan.actions[0].description).toBe(plan.actions[0].description);
    expect(view.edits).toEqual([
      expect.objectContaining({
        by: 'r-amelie',
        byName: 'Amélie Laurent',
        tier: 1,
        note: 'the customer sent the receipt for both',
        diff: [{ path: 'actions.0.args.amount', from, to: 1_500 }],
      }),
    ]);

    // The audit entry of the modification records the diff, not only the note.
    const modified = (await auditOf(row.id)).find((e) => e.kind === 'case.modified')!;
    expect(modified.by).toBe('r-amelie');
    expect(modified.data.diff).toEqual([{ path: 'actions.0.args.amount', from, to: 1_500 }]);
  });

  it('separation of duties covers escalation; blank reasons and unbounded or control-character ids are refused', async () => {
    const own = openCases((r) => r.tier === 1 && r.requestedBy === 'r-jonas' && r.claimedBy === null)[0];
    expect(own, 'a case Jonas filed').toBeDefined();
    const jonas = await login('r-jonas');
    const esc = await call(
      jonas,
      commands(own!.id),
      cmd('handoff.case.escalate', { reason: 'let someone else decide' }),
    );
    expect(esc.status).toBe(403);
    expect(esc.json.error.details.rule).toBe('separation-of-duties');
    expect((await running.runtime.get(own!.id))!.context).toMatchObject({ tier: 1, escalations: 0 });

    const row = freshRefundCase();
    const amelie = await login('r-amelie');
    expect((await call(amelie, commands(row.id), cmd('handoff.case.claim'))).status).toBe(200);
    for (const blank of [' ', '\n\t ', '\u00a0']) {
      const r = await call(amelie, commands(row.id), cmd('handoff.case.reject', { reason: blank }));
      expect(r.status).toBe(400);
      expect(r.json.error.details.path).toBe('reason');
    }
    const long = await call(amelie, commands(row.id), { ...cmd('handoff.case.renew'), commandId: 'x'.repeat(10_000) });
    expect(long.status).toBe(400);
    expect(long.json.error.details.path).toBe('commandId');
    const nul = await call(amelie, commands(row.id), { ...cmd('handoff.case.renew'), commandId: 'a\u0000b' });
    expect(nul.status).toBe(400);
    expect(nul.json.error.details.path).toBe('commandId');
    expect((await running.runtime.get(row.id))!.state).toBe('claimed');
  });
});
