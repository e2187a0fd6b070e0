/** Case work: masking personal data, escalation and four eyes, a case's audit entries, dashboards. */
import { describe, expect, it } from 'vitest';
import type { CaseContext } from '../../../src/machines/review-case.ts';
import { MASK } from '../../../src/gateway/case-view.ts';
import { running, login, call, cmd, openCases, tier1, useSeededConsole } from './helpers.ts';

describe('gateway: authentication, authorisation and bad input', () => {
  useSeededConsole();

  it('masks personal data for roles that may not see it, and restores it when a masked plan is modified', async () => {
    const c = tier1()[0]!;
    const amelie = await login('r-amelie');
    const view = await call(amelie, `/api/cases/${encodeURIComponent(c.id)}`);
    expect(view.status).toBe(200);
    const obs = view.json.case.observation;
    expect(obs.fields.customer.iban).toBe(MASK);
    expect(obs.fields.customer.email).toBe(MASK);
    expect(obs.fields.customer.name).toBe(MASK);
    const refund = view.json.case.plan.actions[0];
    expect(refund.type).toBe('issueRefund');
    expect(refund.args.iban).toBe(MASK);
    expect(view.json.case.schemas.issueRefund.properties.amount.type).toBe('number');
    // A manager (sensitiveRoles) sees the values.
    const malik = await login('r-malik');
    const full = await call(malik, `/api/cases/${encodeURIComponent(c.id)}`);
    expect(full.json.case.observation.fields.customer.iban).toMatch(/^[A-Z]{2}\d{2}/);

    // Amélie claims and modifies the amount; the hidden IBAN goes back as the mask and is restored.
    const path = `/api/cases/${encodeURIComponent(c.id)}/commands`;
    const claim = await call(amelie, path, {
      method: 'POST',
      body: cmd('handoff.case.claim', { expectedVersion: view.json.case.seq }),
    });
    expect(claim.status).toBe(200);
    const p = claim.json.case.plan;
    const plan = { actions: p.actions.map((a: any) => ({ type: a.type, args: { ...a.args } })) };
    const original = ((await running.runtime.get(c.id))!.context as CaseContext).plan.actions[0]!.args;
    // Changing a hidden value is refused.
    const sneaky = structuredClone(plan);
    sneaky.actions[0].args.iban = 'DE00123456781234567890';
    const refused = await call(amelie, path, {
      method: 'POST',
      body: cmd('handoff.case.modify', { actions: sneaky.actions, comment: 'x', expectedVersion: claim.json.case.seq }),
    });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe('auth.sensitive_field');
    // An invalid amount is refused with the path of the field (server-side schema check).
    const invalid = structuredClone(plan);
    invalid.actions[0].args.amount = -5;
    const bad = await call(amelie, path, {
      method: 'POST',
      body: cmd('handoff.case.modify', {
        actions: invalid.actions,
        comment: 'x',
        expectedVersion: claim.json.case.seq,
      }),
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.details.path).toBe('actions.0.args.amount');
    const amount = Math.max(0.01, Math.round((original.amount as number) * 50) / 100);
    plan.actions[0].args.amount = amount;
    const mod = await call(amelie, path, {
      method: 'POST',
      body: cmd('handoff.case.modify', {
        actions: plan.actions,
        comment: 'half: partial damage only',
        expectedVersion: claim.json.case.seq,
      }),
    });
    expect(mod.status, JSON.stringify(mod.json)).toBe(200);
    expect(mod.json.case.state).toBe('modified');
    const after = (await running.runtime.get(c.id))!.context as CaseContext;
    expect(after.plan.actions[0]!.args.iban).toBe(original.iban);
    expect(after.plan.actions[0]!.args.amount).toBe(amount);
    // The case left the queue.
    expect(running.gateway.projection.get(c.id)).toBeUndefined();
  });

  it('escalation moves a case to the next tier’s queue; a four-eyes tier needs two distinct approvers', async () => {
    const c = tier1()[1]!;
    const path = `/api/cases/${encodeURIComponent(c.id)}/commands`;
    const amelie = await login('r-amelie');
    const noReason = await call(amelie, path, { method: 'POST', body: cmd('handoff.case.escalate', { reason: '' }) });
    expect(noReason.status).toBe(400);
    expect(noReason.json.error.details.path).toBe('reason');
    const e1 = await call(amelie, path, {
      method: 'POST',
      body: cmd('handoff.case.escalate', { reason: 'amount looks wrong', expectedVersion: c.seq }),
    });
    expect(e1.status, JSON.stringify(e1.json)).toBe(200);
    expect(e1.json.case.tier.n).toBe(2);
    // Amélie took part, so she can still read it, but no longer decide it.
    expect(e1.json.case.you).toMatchObject({ tierRole: false, mayClaim: false });
    expect((await call(amelie, `/api/queue?q=${encodeURIComponent(c.id)}`)).json.total).toBe(0);
    const ingrid = await login('r-ingrid');
    expect((await call(ingrid, `/api/queue?q=${encodeURIComponent(c.id)}`)).json.total).toBe(1);
    const e2 = await call(ingrid, path, {
      method: 'POST',
      body: cmd('handoff.case.escalate', { reason: 'needs finance', expectedVersion: e1.json.case.seq }),
    });
    expect(e2.status).toBe(200);
    expect(e2.json.case.tier).toMatchObject({ n: 3, fourEyes: true });

    const pieter = await login('r-pieter');
    const claim1 = await call(pieter, path, {
      method: 'POST',
      body: cmd('handoff.case.claim', { expectedVersion: e2.json.case.seq }),
    });
    expect(claim1.status).toBe(200);
    const first = await call(pieter, path, {
      method: 'POST',
      body: cmd('handoff.case.approve', { comment: 'checked the order', expectedVersion: claim1.json.case.seq }),
    });
    expect(first.status).toBe(200);
    expect(first.json.case).toMatchObject({ state: 'queued', approvals: [{ id: 'r-pieter' }] });
    const again = await call(pieter, path, {
      method: 'POST',
      body: cmd('handoff.case.claim', { expectedVersion: first.json.case.seq }),
    });
    expect(again.status).toBe(403);
    expect(again.json.error.details.rule).toBe('four-eyes');
    const claire = await login('r-claire');
    const claim2 = await call(claire, path, {
      method: 'POST',
      body: cmd('handoff.case.claim', { expectedVersion: first.json.case.seq }),
    });
    expect(claim2.status).toBe(200);
    const second = await call(claire, path, {
      method: 'POST',
      body: cmd('handoff.case.approve', { expectedVersion: claim2.json.case.seq }),
    });
    expect(second.status).toBe(200);
    expect(second.json.case.state).toBe('approved');
    expect(second.json.case.resolution.decidedBy).toEqual(['r-pieter', 'r-claire']);
  });

  it('shows a case its audit entries (gate decision, case events, refusals)', async () => {
    const c = openCases((r) => r.tier === 1)[0]!;
    const s = await login('r-amelie');
    const res = await call(s, `/api/cases/${encodeURIComponent(c.id)}/audit`);
    expect(res.status).toBe(200);
    const kinds = res.json.entries.map((e: { kind: string }) => e.kind);
    expect(kinds).toContain('gate.decision');
    expect(kinds).toContain('case.opened');
  });

  it('dashboards: series for the reviewer’s queues', async () => {
    const s = await login('r-malik');
    const d = await call(s, '/api/dashboard?range=1h');
    expect(d.status).toBe(200);
    expect(Object.keys(d.json.depth)).toEqual(['refunds', 'refunds-escalated']);
    expect(d.json.t.length).toBeGreaterThan(10);
    expect(d.json.totals.episodes).toBeGreaterThan(0);
    expect((await call(s, '/api/dashboard?range=forever')).status).toBe(400);
  });
});
