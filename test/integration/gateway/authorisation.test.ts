/** Who sees and decides what: queues and tiers by role, tier-2 refusals, separation of duties. */
import { describe, expect, it } from 'vitest';
import type { QueueRow } from '../../../src/gateway/projection.ts';
import { login, call, cmd, caseSeq, auditTail, lastAuditSeq, openCases, useSeededConsole } from './helpers.ts';

describe('gateway: authentication, authorisation and bad input', () => {
  useSeededConsole();

  it('shows a reviewer only the queues and tiers of their roles', async () => {
    const amelie = await login('r-amelie');
    const q = await call(amelie, '/api/queue?limit=200');
    expect(q.status).toBe(200);
    expect(q.json.total).toBeGreaterThan(0);
    expect(q.json.rows.every((r: QueueRow) => r.tier === 1 && r.roles.includes('support-lead'))).toBe(true);
    expect(q.json.depth.map((d: { queue: string }) => d.queue)).toEqual(['refunds']);
    const malik = await login('r-malik');
    const q2 = await call(malik, '/api/queue?limit=200');
    expect(q2.json.depth.map((d: { queue: string }) => d.queue)).toEqual(['refunds', 'refunds-escalated']);
    // Sorted by priority, then SLA time left.
    const rows = q2.json.rows as QueueRow[];
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!;
      const b = rows[i]!;
      expect(
        a.priority > b.priority || (a.priority === b.priority && (a.dueAt ?? Infinity) <= (b.dueAt ?? Infinity)),
      ).toBe(true);
    }
    // Filters and paging.
    const paged = await call(malik, '/api/queue?limit=2&offset=1&tier=1&risk=low');
    expect(paged.json.rows.length).toBeLessThanOrEqual(2);
    expect(paged.json.rows.every((r: QueueRow) => r.tier === 1 && r.riskScore < 0.35)).toBe(true);
    const badFilter = await call(malik, '/api/queue?risk=extreme');
    expect(badFilter.status).toBe(400);
    expect(badFilter.json.error.details.path).toBe('risk');
  });

  it('a reviewer without the role can neither see nor decide a tier-2 case (403, audited, nothing changes)', async () => {
    const t2 = openCases((r) => r.tier === 2)[0];
    expect(t2, 'the seed has a tier-2 case').toBeDefined();
    const jonas = await login('r-jonas');
    const view = await call(jonas, `/api/cases/${encodeURIComponent(t2!.id)}`);
    expect(view.status).toBe(403);
    expect(view.json.error.code).toBe('auth.forbidden');
    expect(view.json.error.message).toMatch(/refunds-manager/);
    const before = await caseSeq(t2!.id);
    const auditBefore = await lastAuditSeq();
    const claim = await call(jonas, `/api/cases/${encodeURIComponent(t2!.id)}/commands`, {
      method: 'POST',
      body: cmd('handoff.case.claim'),
    });
    expect(claim.status).toBe(403);
    expect(await caseSeq(t2!.id)).toEqual(before);
    const refused = (await auditTail(auditBefore)).filter((e) => e.kind === 'command.refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      actor: t2!.id,
      by: 'r-jonas',
      data: { type: 'handoff.case.claim', code: 'auth.forbidden' },
    });
    // Someone with the role sees it.
    const ingrid = await login('r-ingrid');
    expect((await call(ingrid, `/api/cases/${encodeURIComponent(t2!.id)}`)).status).toBe(200);
  });

  it('separation of duties: the requester cannot claim their own request', async () => {
    const mine = openCases((r) => r.tier === 1 && r.requestedBy === 'r-jonas')[0];
    expect(mine, 'the seed has a tier-1 case filed by r-jonas').toBeDefined();
    const s = await login(mine!.requestedBy!);
    const before = await caseSeq(mine!.id);
    const res = await call(s, `/api/cases/${encodeURIComponent(mine!.id)}/commands`, {
      method: 'POST',
      body: cmd('handoff.case.claim', { expectedVersion: mine!.seq }),
    });
    expect(res.status).toBe(403);
    expect(res.json.error.details.rule).toBe('separation-of-duties');
    expect(res.json.error.message).toMatch(/requester/);
    expect(await caseSeq(mine!.id)).toEqual(before);
    // The case page says so before anyone tries.
    const view = await call(s, `/api/cases/${encodeURIComponent(mine!.id)}`);
    expect(view.json.case.you).toMatchObject({ mayClaim: false, isRequester: true });
  });
});
