/** Bad input at the command endpoint is refused with a typed error, audited, and changes nothing. */
import { beforeAll, describe, expect, it } from 'vitest';
import type { QueueRow } from '../../../src/gateway/projection.ts';
import { verifyAudit, type AuditEntry } from '../../../src/base/audit-log.ts';
import { running, login, call, cmd, caseSeq, tier1, type Session, useSeededConsole } from './helpers.ts';

describe('gateway: authentication, authorisation and bad input', () => {
  useSeededConsole();

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
});
