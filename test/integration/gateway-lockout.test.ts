import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import { TrustedProxies } from '../../src/gateway/throttle.ts';
import type { AuditEntry } from '../../src/base/audit-log.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * Sign-in throttling over a real HTTP server (issue 17, defect 5): failures lock the account, not
 * the address everyone shares; the lock grows with each further failure; X-Forwarded-For counts only
 * from a trusted proxy; and 401s, refused reads and refused WebSocket upgrades are audited.
 */
describe('gateway: per-account lock-out, trusted proxies, audited refusals', () => {
  const dirs: string[] = [];
  const consoles: RunningConsole[] = [];
  let direct: RunningConsole;
  let proxied: RunningConsole;

  async function open(opts: Partial<Parameters<typeof startConsole>[0]>): Promise<RunningConsole> {
    const data = await mkdtemp(join(tmpdir(), 'handoff-lockout-'));
    dirs.push(data);
    const c = await startConsole({ data, models: [join(ROOT, 'models/refunds')], port: 0, drift: false, ...opts });
    consoles.push(c);
    return c;
  }

  beforeAll(async () => {
    delete process.env.HANDOFF_TRUSTED_PROXIES;
    // Locks short enough to watch them grow; the flood threshold at its default (100).
    direct = await open({ signInThrottle: { accountLockMs: 1000 } });
    // Behind a proxy on this machine: the client is who X-Forwarded-For names.
    proxied = await open({ trustedProxies: ['127.0.0.1', '::1'], signInThrottle: { addressFailures: 8 } });
  }, 60_000);

  afterAll(async () => {
    for (const c of consoles) await c.close().catch(() => undefined);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function signIn(c: RunningConsole, id: string, password: string, headers: Record<string, string> = {}) {
    const res = await fetch(`${c.url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ id, password }),
    });
    const body = (await res.json()) as { error?: { code: string; details?: { retryAfterMs: number; scope: string } } };
    return {
      status: res.status,
      body,
      retryAfter: res.headers.get('retry-after'),
      cookie: res.headers.get('set-cookie')?.split(';')[0] ?? null,
    };
  }

  async function auditSince(c: RunningConsole, seq: number): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    for await (const e of c.store.audit(seq + 1)) out.push(e);
    return out;
  }
  const lastSeq = async (c: RunningConsole) => (await c.store.lastAudit())?.seq ?? 0;

  it('many failures for one account from one address do not lock another account out; the failing one is locked for longer each time', async () => {
    const before = await lastSeq(direct);
    // The address sprays wrong passwords over 30 ids, then account A fails repeatedly: 40 failures
    // from one address, which used to lock everyone behind it out (25 did).
    for (let i = 0; i < 30; i++) expect((await signIn(direct, `r-ghost-${i}`, 'guess')).status).toBe(401);
    const a: number[] = [];
    for (let i = 0; i < 10; i++) a.push((await signIn(direct, 'r-sofia', `guess-${i}`)).status);
    expect(a.slice(0, 6)).toEqual([401, 401, 401, 401, 401, 429]);

    // A is locked; even its right password waits, and the answer names the account, not the address.
    const locked = await signIn(direct, 'r-sofia', 'demo-sofia');
    expect(locked.status).toBe(429);
    expect(locked.body.error?.code).toBe('auth.throttled');
    expect(locked.body.error?.details?.scope).toBe('account');
    expect(Number(locked.retryAfter)).toBeGreaterThanOrEqual(1);

    // Account B, from the same address, signs in.
    const b = await signIn(direct, 'r-amelie', 'demo-amelie');
    expect(b.status).toBe(200);
    expect(b.cookie).toMatch(/^handoff_session=/);

    // Progressive: once a lock ends, one more failure locks the account again, for twice as long.
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await sleep(locked.body.error!.details!.retryAfterMs + 50);
    expect((await signIn(direct, 'r-sofia', 'nope-1')).status).toBe(401);
    const first = (await signIn(direct, 'r-sofia', 'nope-x')).body.error!.details!.retryAfterMs;
    await sleep(first + 50);
    expect((await signIn(direct, 'r-sofia', 'nope-2')).status).toBe(401);
    const second = (await signIn(direct, 'r-sofia', 'nope-y')).body.error!.details!.retryAfterMs;
    expect(second).toBeGreaterThan(first * 1.5);

    // A successful sign-in clears an account's failures.
    for (let i = 0; i < 4; i++) expect((await signIn(direct, 'r-ingrid', `nope-${i}`)).status).toBe(401);
    expect((await signIn(direct, 'r-ingrid', 'demo-ingrid')).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await signIn(direct, 'r-ingrid', `nope-${i}`)).status).toBe(401);

    // The audit has every failure with its count and the locks as they grew.
    const entries = await auditSince(direct, before);
    const failed = entries.filter((e) => e.kind === 'auth.login_failed' && e.actor === 'reviewer:r-sofia');
    const locks = failed.map((e) => e.data.accountLockMs).filter((x): x is number => typeof x === 'number');
    expect(locks.length).toBe(3);
    for (let i = 1; i < locks.length; i++) expect(locks[i]).toBeGreaterThan(locks[i - 1]!);
    expect(entries.some((e) => e.kind === 'auth.throttled' && e.data.scope === 'account')).toBe(true);
    expect(entries.some((e) => e.kind === 'auth.login' && e.actor === 'reviewer:r-amelie')).toBe(true);
  });

  it('ignores X-Forwarded-For from an untrusted peer; believes it from a trusted proxy, rightmost untrusted hop first', async () => {
    const before = await lastSeq(direct);
    expect((await signIn(direct, 'r-pieter', 'spoof', { 'X-Forwarded-For': '203.0.113.7' })).status).toBe(401);
    const spoofed = (await auditSince(direct, before)).find(
      (e) => e.kind === 'auth.login_failed' && e.actor === 'reviewer:r-pieter',
    )!;
    expect(spoofed.data.ip).toMatch(/^(127\.0\.0\.1|::1)$/);

    const beforeP = await lastSeq(proxied);
    expect(
      (await signIn(proxied, 'r-pieter', 'wrong', { 'X-Forwarded-For': '198.51.100.1, 203.0.113.7' })).status,
    ).toBe(401);
    const real = (await auditSince(proxied, beforeP)).find((e) => e.kind === 'auth.login_failed')!;
    expect(real.data.ip).toBe('203.0.113.7');

    // A flood from one client behind the proxy throttles that client, not the others behind it.
    for (let i = 0; i < 8; i++) await signIn(proxied, `r-spray-${i}`, 'x', { 'X-Forwarded-For': '203.0.113.66' });
    const flooded = await signIn(proxied, 'r-claire', 'demo-claire', { 'X-Forwarded-For': '203.0.113.66' });
    expect(flooded.status).toBe(429);
    expect(flooded.body.error?.details?.scope).toBe('address');
    expect((await signIn(proxied, 'r-claire', 'demo-claire', { 'X-Forwarded-For': '203.0.113.67' })).status).toBe(200);

    // The rule itself, hop by hop.
    const t = new TrustedProxies(['10.0.0.0/8', '::1']);
    const req = (peer: string, xff?: string) =>
      ({
        socket: { remoteAddress: peer },
        headers: xff ? { 'x-forwarded-for': xff } : {},
      }) as unknown as IncomingMessage;
    expect(t.clientOf(req('192.0.2.1', '203.0.113.7'))).toBe('192.0.2.1');
    expect(t.clientOf(req('::ffff:10.1.2.3', '203.0.113.7'))).toBe('203.0.113.7');
    expect(t.clientOf(req('10.1.2.3', '6.6.6.6, 203.0.113.7, 10.0.0.9'))).toBe('203.0.113.7');
    expect(t.clientOf(req('10.1.2.3', 'not-an-ip'))).toBe('10.1.2.3');
    expect(t.clientOf(req('10.1.2.3'))).toBe('10.1.2.3');
    expect(new TrustedProxies().clientOf(req('127.0.0.1', '203.0.113.7'))).toBe('127.0.0.1');
    expect(() => new TrustedProxies(['10.0.0.0/99'])).toThrow(/prefix/);
  });

  it('audits 401s, refused reads (403) and refused WebSocket upgrades', async () => {
    const before = await lastSeq(direct);
    const anon = await fetch(`${direct.url}/api/queue`);
    expect(anon.status).toBe(401);
    const amelie = await signIn(direct, 'r-amelie', 'demo-amelie');
    // A support lead is no engineer: the inspector's API is a refused read.
    const insp = await fetch(`${direct.url}/api/inspect/session`, { headers: { Cookie: amelie.cookie! } });
    expect(insp.status).toBe(403);
    const wsStatus = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`${direct.url.replace('http', 'ws')}/ws`, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('error', () => resolve(-1));
      });
    expect(await wsStatus({ Origin: direct.url })).toBe(401);
    expect(await wsStatus({ Origin: 'https://evil.example', Cookie: amelie.cookie! })).toBe(403);
    expect(await wsStatus({ Origin: direct.url, Cookie: amelie.cookie! })).toBe(101);

    await expect
      .poll(async () => (await auditSince(direct, before)).filter((e) => e.kind === 'ws.refused').length, {
        timeout: 10_000,
      })
      .toBe(2);
    const entries = await auditSince(direct, before);
    expect(entries.find((e) => e.kind === 'auth.refused')).toMatchObject({
      by: 'anonymous',
      data: { path: '/api/queue', status: 401, code: 'auth.required' },
    });
    expect(entries.find((e) => e.kind === 'read.refused')).toMatchObject({
      by: 'r-amelie',
      actor: 'reviewer:r-amelie',
      data: { path: '/api/inspect/session', status: 403, rule: 'engineer-role' },
    });
    const ws = entries.filter((e) => e.kind === 'ws.refused');
    expect(ws.map((e) => [e.data.status, e.data.reason, e.by])).toEqual([
      [401, 'no session', 'anonymous'],
      [403, 'cross-origin', 'anonymous'],
    ]);
    for (const e of [...ws, ...entries.filter((x) => x.kind.endsWith('.refused'))])
      expect(typeof e.data.ip).toBe('string');

    // A flood of anonymous requests is audited at a bounded rate, with the rest counted.
    const flood = await Promise.all(
      Array.from({ length: 40 }, () => fetch(`${direct.url}/api/session`).then((r) => r.status)),
    );
    expect(flood.every((s) => s === 401)).toBe(true);
    const refused = (await auditSince(direct, before)).filter((e) => e.kind === 'auth.refused');
    expect(refused.length).toBeLessThanOrEqual(20);
  });
});
