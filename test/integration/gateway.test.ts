import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { CaseContext } from '../../src/machines/review-case.ts';
import { embeddedBackend } from '../../src/gateway/backend.ts';
import { MASK } from '../../src/gateway/case-view.ts';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import { Gateway } from '../../src/gateway/server.ts';
import type { QueueRow } from '../../src/gateway/projection.ts';
import { verifyAudit, type AuditEntry } from '../../src/base/audit-log.ts';
import { Rng } from '../../src/base/rng.ts';

const ROOT = join(import.meta.dirname, '..', '..');

interface Session {
  cookie: string;
  csrf: string;
}

let running: RunningConsole;
let base: string;
let data: string;

async function login(id: string, password = `demo-${id.replace(/^r-/, '')}`, url = base): Promise<Session> {
  const res = await fetch(`${url}/api/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ id, password }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
  const body = (await res.json()) as { csrfToken: string };
  return { cookie, csrf: body.csrfToken };
}

async function call(
  s: Session | null,
  path: string,
  opts: {
    method?: string;
    body?: unknown;
    raw?: string;
    csrf?: string | null;
    headers?: Record<string, string>;
    url?: string;
  } = {},
) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (s) headers.Cookie = s.cookie;
  if (opts.method && opts.method !== 'GET') {
    headers['Content-Type'] ??= 'application/json';
    const csrf = opts.csrf === undefined ? s?.csrf : opts.csrf;
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  const res = await fetch(`${opts.url ?? base}${path}`, {
    method: opts.method ?? 'GET',
    headers,
    ...(opts.raw !== undefined
      ? { body: opts.raw }
      : opts.body !== undefined
        ? { body: JSON.stringify(opts.body) }
        : {}),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

let n = 0;
const cmd = (type: string, extra: Record<string, unknown> = {}) => ({
  type,
  schemaVersion: 1,
  commandId: `t-${++n}-${Date.now()}`,
  ...extra,
});

async function caseSeq(id: string): Promise<{ seq: number; state: string }> {
  const v = await running.runtime.get(id);
  return { seq: v!.seq, state: v!.state };
}

async function auditTail(since: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of running.store.audit(since + 1)) out.push(e);
  return out;
}

async function lastAuditSeq(): Promise<number> {
  return (await running.store.lastAudit())?.seq ?? 0;
}

/** Open cases of the projection, by a predicate. */
function openCases(pred: (r: QueueRow) => boolean): QueueRow[] {
  const anyone = {
    id: 'probe',
    name: 'probe',
    grants: { refunds: { roles: ['support-lead', 'refunds-manager', 'finance-controller'], seeSensitive: true } },
  };
  return running.gateway.projection.list(anyone, {}, 0, 100_000, Date.now()).rows.filter(pred);
}

async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await running.runtime.whenIdle();
    await new Promise((r) => setTimeout(r, 400));
  }
}

describe('gateway: authentication, authorisation and bad input', () => {
  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'handoff-gw-'));
    running = await startConsole({ data, models: [join(ROOT, 'models/refunds')], port: 0 });
    base = running.url;
    const model = running.runtime.models.get('refunds')!;
    const rng = new Rng(4242);
    for (let i = 0; i < 80; i++)
      void running.runtime
        .startEpisode('refunds', model.handlers.synthesize(rng, i), { episodeId: `gw-${i}` })
        .catch(() => undefined);
    // Tickets a support lead filed on a customer's behalf (separation of duties).
    for (let i = 0; i < 24; i++) {
      const signal = {
        ...(model.handlers.synthesize(rng, 100 + i) as Record<string, unknown>),
        channel: 'phone',
        requestedBy: 'r-jonas',
      };
      void running.runtime.startEpisode('refunds', signal, { episodeId: `gw-staff-${i}` }).catch(() => undefined);
    }
    await settle();
  }, 60_000);

  afterAll(async () => {
    await running?.close();
    if (data) await rm(data, { recursive: true, force: true });
  });

  const tier1 = () =>
    openCases(
      (r) => r.tier === 1 && r.requestedBy === null && r.claimedBy === null && r.actions.includes('issueRefund'),
    );

  it('refuses anonymous access: API 401, the app page redirects to the login page', async () => {
    const api = await call(null, '/api/queue');
    expect(api.status).toBe(401);
    expect(api.json.error.code).toBe('auth.required');
    const page = await fetch(`${base}/`, { redirect: 'manual' });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('/login');
    const login = await fetch(`${base}/login`);
    expect(login.status).toBe(200);
    const csp = login.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
  });

  it('a sign-in rotates the session: a new token, and the one the browser sent is ended', async () => {
    const first = await login('r-amelie');
    const res = await fetch(`${base}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: first.cookie },
      body: JSON.stringify({ id: 'r-amelie', password: 'demo-amelie' }),
    });
    expect(res.status).toBe(200);
    const second = res.headers.get('set-cookie')!.split(';')[0]!;
    expect(second).not.toBe(first.cookie);
    expect((await call({ cookie: second, csrf: '' }, '/api/session')).status).toBe(200);
    const old = await call(first, '/api/session');
    expect(old.status).toBe(401);
    expect(old.json.error.code).toBe('auth.session_expired');
  });

  it('logs in with scrypt-hashed credentials, sets a strict cookie, and audits logins and failures', async () => {
    const before = await lastAuditSeq();
    const bad = await call(null, '/api/login', { method: 'POST', body: { id: 'r-amelie', password: 'wrong' } });
    expect(bad.status).toBe(401);
    expect(bad.json.error.code).toBe('auth.invalid_credentials');
    const unknown = await call(null, '/api/login', { method: 'POST', body: { id: 'r-nobody', password: 'x' } });
    expect(unknown.status).toBe(401);
    const res = await fetch(`${base}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'r-amelie', password: 'demo-amelie' }),
    });
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Max-Age=\d+/);
    const body = (await res.json()) as { reviewer: { id: string; grants: Record<string, { roles: string[] }> } };
    expect(body.reviewer.grants.refunds!.roles).toEqual(['support-lead']);
    const kinds = (await auditTail(before)).map((e) => `${e.kind}:${e.actor}`);
    expect(kinds).toEqual([
      'auth.login_failed:reviewer:r-amelie',
      'auth.login_failed:reviewer:r-nobody',
      'auth.login:reviewer:r-amelie',
    ]);
  });

  it('throttles repeated failed logins (429)', async () => {
    let last = 0;
    for (let i = 0; i < 6; i++)
      last = (await call(null, '/api/login', { method: 'POST', body: { id: 'r-sofia', password: `guess-${i}` } }))
        .status;
    expect(last).toBe(429);
    // Even the right password waits out the lock-out.
    const right = await call(null, '/api/login', { method: 'POST', body: { id: 'r-sofia', password: 'demo-sofia' } });
    expect(right.status).toBe(429);
    expect(right.json.error.code).toBe('auth.throttled');
  });

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

  describe('bad input at the command endpoint changes nothing', () => {
    let s: Session;
    let target: QueueRow;
    let path: string;
    beforeAll(async () => {
      s = await login('r-amelie');
      target = tier1()[0]!;
      expect(target).toBeDefined();
      path = `/api/cases/${encodeURIComponent(target.id)}/commands`;
    });

    const unchanged = async () => expect(await caseSeq(target.id)).toEqual({ seq: target.seq, state: 'queued' });

    it('malformed JSON → 400 request.malformed_json', async () => {
      const r = await call(s, path, { method: 'POST', raw: '{"type": "handoff.case.claim", ' });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe('request.malformed_json');
      await unchanged();
    });

    it('wrong schemaVersion → 400 contract.invalid naming the field', async () => {
      const r = await call(s, path, { method: 'POST', body: { ...cmd('handoff.case.claim'), schemaVersion: 2 } });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe('contract.invalid');
      expect(r.json.error.details.path).toBe('schemaVersion');
      expect(r.json.error.message).toMatch(/unsupported schemaVersion/);
      await unchanged();
    });

    it('unknown command type → 400 contract.invalid', async () => {
      const r = await call(s, path, { method: 'POST', body: cmd('handoff.case.delete') });
      expect(r.status).toBe(400);
      expect(r.json.error.details.path).toBe('type');
      await unchanged();
    });

    it('oversized payload → 413 request.too_large', async () => {
      const r = await call(s, path, {
        method: 'POST',
        body: cmd('handoff.case.approve', { comment: 'x'.repeat(70 * 1024) }),
      });
      expect(r.status).toBe(413);
      expect(r.json.error.code).toBe('request.too_large');
      await unchanged();
    });

    it('wrong content type → 415', async () => {
      const r = await call(s, path, {
        method: 'POST',
        raw: JSON.stringify(cmd('handoff.case.claim')),
        headers: { 'Content-Type': 'text/plain' },
      });
      expect(r.status).toBe(415);
      await unchanged();
    });

    it('a reviewer in the payload is refused: identity comes from the session', async () => {
      const r = await call(s, path, {
        method: 'POST',
        body: cmd('handoff.case.claim', { reviewer: { id: 'r-malik', roles: ['refunds-manager'] } }),
      });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe('request.reviewer_in_payload');
      await unchanged();
    });

    it('missing or wrong CSRF token → 403 auth.csrf', async () => {
      const missing = await call(s, path, { method: 'POST', body: cmd('handoff.case.claim'), csrf: null });
      expect(missing.status).toBe(403);
      expect(missing.json.error.code).toBe('auth.csrf');
      const wrong = await call(s, path, { method: 'POST', body: cmd('handoff.case.claim'), csrf: 'x'.repeat(32) });
      expect(wrong.status).toBe(403);
      await unchanged();
    });

    it('cross-origin request → 403 auth.origin', async () => {
      const r = await call(s, path, {
        method: 'POST',
        body: cmd('handoff.case.claim'),
        headers: { Origin: 'https://evil.example' },
      });
      expect(r.status).toBe(403);
      expect(r.json.error.code).toBe('auth.origin');
      await unchanged();
    });

    it('unknown case → 404 actor.not_found', async () => {
      const r = await call(s, '/api/cases/nope.case-1/commands', { method: 'POST', body: cmd('handoff.case.claim') });
      expect(r.status).toBe(404);
      expect(r.json.error.code).toBe('actor.not_found');
      expect((await call(s, '/api/cases/nope.case-1')).status).toBe(404);
    });

    it('stale expectedVersion → 409 actor.conflict', async () => {
      const r = await call(s, path, {
        method: 'POST',
        body: cmd('handoff.case.claim', { expectedVersion: target.seq + 5 }),
      });
      expect(r.status).toBe(409);
      expect(r.json.error.code).toBe('actor.conflict');
      await unchanged();
    });

    it('replayed command id → 409 command.replayed, and the replay changes nothing', async () => {
      const body = cmd('handoff.case.claim', { expectedVersion: target.seq });
      const first = await call(s, path, { method: 'POST', body });
      expect(first.status, JSON.stringify(first.json)).toBe(200);
      expect(first.json.case.state).toBe('claimed');
      const after = await caseSeq(target.id);
      const replay = await call(s, path, {
        method: 'POST',
        body: { ...body, type: 'handoff.case.release', expectedVersion: after.seq },
      });
      expect(replay.status).toBe(409);
      expect(replay.json.error.code).toBe('command.replayed');
      expect(await caseSeq(target.id)).toEqual(after);
      // Release it again for the other tests.
      const rel = await call(s, path, {
        method: 'POST',
        body: cmd('handoff.case.release', { expectedVersion: after.seq }),
      });
      expect(rel.status).toBe(200);
      target = { ...target, seq: (await caseSeq(target.id)).seq };
    });

    it('every refusal above is in the audit log, and the chain verifies', async () => {
      const refused: AuditEntry[] = [];
      for await (const e of running.store.audit())
        if (e.kind === 'command.refused' && e.actor === target.id) refused.push(e);
      const codes = refused.map((e) => e.data.code);
      for (const code of [
        'request.malformed_json',
        'contract.invalid',
        'request.too_large',
        'request.reviewer_in_payload',
        'auth.csrf',
        'auth.origin',
        'actor.conflict',
        'command.replayed',
      ])
        expect(codes).toContain(code);
      const v = await verifyAudit(running.store.audit());
      expect(v.ok).toBe(true);
    });
  });

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

  it('WebSocket: needs a session and a same-origin Origin; pushes queue changes', async () => {
    const url = base.replace('http', 'ws') + '/ws';
    const status = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('error', () => undefined);
      });
    expect(await status({ Origin: base })).toBe(401);
    const s = await login('r-amelie');
    expect(await status({ Origin: 'https://evil.example', Cookie: s.cookie })).toBe(403);
    expect(await status({ Origin: base, Cookie: s.cookie })).toBe(101);

    const ws = new WebSocket(url, { headers: { Origin: base, Cookie: s.cookie } });
    const messages: any[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.on('open', r));
    const c = tier1()[0]!;
    const malik = await login('r-malik');
    const claim = await call(malik, `/api/cases/${encodeURIComponent(c.id)}/commands`, {
      method: 'POST',
      body: cmd('handoff.case.claim', { expectedVersion: c.seq }),
    });
    expect(claim.status).toBe(200);
    await expect
      .poll(() => messages.find((m) => m.type === 'queue' && m.row?.id === c.id && m.row.claimedBy === 'r-malik'), {
        timeout: 5000,
      })
      .toBeTruthy();
    await call(malik, `/api/cases/${encodeURIComponent(c.id)}/commands`, {
      method: 'POST',
      body: cmd('handoff.case.reject', { reason: 'duplicate ticket', expectedVersion: claim.json.case.seq }),
    });
    await expect
      .poll(() => messages.find((m) => m.type === 'queue' && m.op === 'remove' && m.id === c.id), { timeout: 5000 })
      .toBeTruthy();
    ws.close();
  });

  it('an expired session gets 401 auth.session_expired and its socket is closed', async () => {
    const gw = await Gateway.start({ backend: embeddedBackend(running.runtime), port: 0, sessions: { idleMs: 400 } });
    try {
      const s = await login('r-amelie', undefined, gw.url);
      expect((await call(s, '/api/session', { url: gw.url })).status).toBe(200);
      const ws = new WebSocket(gw.url.replace('http', 'ws') + '/ws', { headers: { Origin: gw.url, Cookie: s.cookie } });
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      await new Promise((r) => setTimeout(r, 700));
      const r = await call(s, '/api/queue', { url: gw.url });
      expect(r.status).toBe(401);
      expect(r.json.error.code).toBe('auth.session_expired');
      const c = tier1()[0]!;
      const before = await caseSeq(c.id);
      const cmdRes = await call(s, `/api/cases/${encodeURIComponent(c.id)}/commands`, {
        method: 'POST',
        body: cmd('handoff.case.claim'),
        url: gw.url,
      });
      expect(cmdRes.status).toBe(401);
      expect(await caseSeq(c.id)).toEqual(before);
      expect(await closed).toBe(4401);
    } finally {
      await gw.close();
    }
  });
});
