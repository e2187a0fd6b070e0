/** Signing in: anonymous access and the login page's CSP, session rotation, credentials and audit, throttling. */
import { describe, expect, it } from 'vitest';
import { base, login, call, auditTail, lastAuditSeq, useSeededConsole } from './helpers.ts';

describe('gateway: authentication, authorisation and bad input', () => {
  useSeededConsole();

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
});
