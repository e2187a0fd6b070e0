/** The live feed: WebSocket authentication and pushes, and expired sessions. */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { embeddedBackend } from '../../../src/gateway/backend.ts';
import { Gateway } from '../../../src/gateway/server.ts';
import { running, base, login, call, cmd, caseSeq, tier1, useSeededConsole } from './helpers.ts';

describe('gateway: authentication, authorisation and bad input', () => {
  useSeededConsole();

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
