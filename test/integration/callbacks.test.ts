/**
 * Signed decision callbacks (`POST /api/callbacks/<source>`) against the embedded console: real
 * HTTP, real LevelDB, the refunds model's shipped `ticketing` source (service principal
 * `svc-ticketing`, role support-lead), its secret given through the environment.
 */
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import type { QueueRow } from '../../src/gateway/projection.ts';
import type { CaseContext } from '../../src/machines/review-case.ts';
import { verifyAudit, type AuditEntry } from '../../src/base/audit-log.ts';
import { Rng } from '../../src/base/rng.ts';
import { runCli } from './cli.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SECRET = 'ticketing-callback-secret-0123456789';
const OLD_SECRET = 'ticketing-previous-secret-9876543210';

let running: RunningConsole;
let data: string;

/** Signs a body as a ticketing system would (the recipe of docs/notifications.md). */
function sign(body: string, secret = SECRET, t = Math.floor(Date.now() / 1000)): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

async function post(body: unknown, opts: { signature?: string | null; source?: string; raw?: string } = {}) {
  const text = opts.raw ?? JSON.stringify(body);
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  const sig = opts.signature === undefined ? sign(text) : opts.signature;
  if (sig !== null) headers['Handoff-Signature'] = sig;
  const res = await fetch(`${running.url}/api/callbacks/${opts.source ?? 'ticketing'}`, {
    method: 'POST',
    headers,
    body: text,
  });
  const json = (await res.json()) as any;
  return { status: res.status, json, text };
}

let n = 0;
const decision = (type: 'approve' | 'reject' | 'escalate', caseId: string, extra: Record<string, unknown> = {}) => ({
  type: `handoff.case.${type}`,
  schemaVersion: 1,
  caseId,
  commandId: `TICKET-${++n}-${type}`,
  actor: 'jane.doe@helpdesk.example',
  ...extra,
});

async function auditSince(seq: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of running.store.audit(seq + 1)) out.push(e);
  return out;
}
const lastSeq = async () => (await running.store.lastAudit())?.seq ?? 0;

function openCases(pred: (r: QueueRow) => boolean): QueueRow[] {
  const anyone = {
    id: 'probe',
    name: 'probe',
    grants: { refunds: { roles: ['support-lead', 'refunds-manager', 'finance-controller'], seeSensitive: true } },
  };
  return running.gateway.projection.list(anyone, {}, 0, 100_000, Date.now()).rows.filter(pred);
}

const queuedAt = (tier: number) => openCases((r) => r.tier === tier && r.claimedBy === null && r.requestedBy === null);

describe('signed decision callbacks', () => {
  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'handoff-cb-'));
    running = await startConsole({
      data,
      models: [join(ROOT, 'models/refunds')],
      port: 0,
      env: { HANDOFF_TICKETING_CALLBACK_SECRET: `${SECRET} ${OLD_SECRET}` },
    });
    const model = running.runtime.models.get('refunds')!;
    const rng = new Rng(777);
    for (let i = 0; i < 60; i++)
      void running.runtime
        .startEpisode('refunds', model.handlers.synthesize(rng, i), { episodeId: `cb-${i}` })
        .catch(() => undefined);
    for (let i = 0; i < 6; i++) {
      await running.runtime.whenIdle();
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(queuedAt(1).length).toBeGreaterThan(3);
    expect(queuedAt(2).length).toBeGreaterThan(0);
  }, 60_000);

  afterAll(async () => {
    await running?.close();
    if (data) await rm(data, { recursive: true, force: true });
  });

  it('a correctly signed approve decides the case as the service principal, audited with the source', async () => {
    const caseId = queuedAt(1)[0]!.id;
    const since = await lastSeq();
    const res = await post(decision('approve', caseId, { comment: 'approved in ticket HD-4411' }));
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({
      ok: true,
      source: 'ticketing',
      principal: 'svc-ticketing',
      case: { id: caseId, state: 'approved' },
    });
    const view = await running.runtime.get(caseId);
    expect(view?.state).toBe('approved');
    expect((view!.context as CaseContext).resolution).toMatchObject({
      outcome: 'approved',
      decidedBy: ['svc-ticketing'],
    });

    const entries = await auditSince(since);
    expect(entries.filter((e) => e.actor === caseId).map((e) => [e.kind, e.by])).toEqual([
      ['case.claimed', 'svc-ticketing'],
      ['case.approved', 'svc-ticketing'],
      ['callback.accepted', 'svc-ticketing'],
    ]);
    const accepted = entries.find((e) => e.kind === 'callback.accepted')!;
    expect(accepted.data).toMatchObject({
      source: 'ticketing',
      type: 'handoff.case.approve',
      commandId: expect.stringMatching(/^callback:ticketing:TICKET-/),
      sender: 'jane.doe@helpdesk.example',
      claimed: true,
      state: 'approved',
    });
  });

  it('accepts a body signed with the previous secret while it is being rotated', async () => {
    const caseId = queuedAt(1)[0]!.id;
    const body = JSON.stringify(decision('reject', caseId, { reason: 'duplicate of HD-4410' }));
    const res = await post(null, { raw: body, signature: sign(body, OLD_SECRET) });
    expect(res.status, res.text).toBe(200);
    expect((await running.runtime.get(caseId))?.state).toBe('rejected');
  });

  it('refuses a forged signature, a stale timestamp, a replay and a missing signature: 401 with a typed code, each audited, the case unchanged', async () => {
    const caseId = queuedAt(1)[0]!.id;
    const before = await running.runtime.get(caseId);
    const since = await lastSeq();

    const body = JSON.stringify(decision('approve', caseId));
    const forged = await post(null, { raw: body, signature: sign(body, 'an-attacker-guessed-secret-000') });
    expect([forged.status, forged.json.error.code]).toEqual([401, 'callback.bad_signature']);
    // Signed correctly, then one byte of the body changed in transit.
    const tampered = await post(null, { raw: body.replace('approve', 'reject'), signature: sign(body) });
    expect([tampered.status, tampered.json.error.code]).toEqual([401, 'callback.bad_signature']);

    const staleBody = JSON.stringify(decision('approve', caseId));
    const stale = await post(null, {
      raw: staleBody,
      signature: sign(staleBody, SECRET, Math.floor(Date.now() / 1000) - 301),
    });
    expect([stale.status, stale.json.error.code]).toEqual([401, 'callback.stale_timestamp']);

    const missing = await post(decision('approve', caseId), { signature: null });
    expect([missing.status, missing.json.error.code]).toEqual([401, 'callback.signature_missing']);
    const malformed = await post(decision('approve', caseId), { signature: 'sha256=deadbeef' });
    expect([malformed.status, malformed.json.error.code]).toEqual([401, 'callback.signature_malformed']);

    expect(await running.runtime.get(caseId)).toMatchObject({ state: before!.state, seq: before!.seq });
    const refused = (await auditSince(since)).filter((e) => e.kind === 'callback.refused');
    expect(refused.map((e) => [e.data.code, e.by, e.data.source])).toEqual([
      ['callback.bad_signature', 'callback:ticketing', 'ticketing'],
      ['callback.bad_signature', 'callback:ticketing', 'ticketing'],
      ['callback.stale_timestamp', 'callback:ticketing', 'ticketing'],
      ['callback.signature_missing', 'callback:ticketing', 'ticketing'],
      ['callback.signature_malformed', 'callback:ticketing', 'ticketing'],
    ]);

    // A captured, valid request sent again is refused, though its signature and timestamp are good.
    const escBody = JSON.stringify(decision('reject', caseId, { reason: 'the customer withdrew the request' }));
    // Timestamps fixed here, not read twice from the clock: a slow machine must not make them equal.
    const t0 = Math.floor(Date.now() / 1000);
    const sig = sign(escBody, SECRET, t0);
    const first = await post(null, { raw: escBody, signature: sig });
    expect(first.status, first.text).toBe(200);
    const again = await post(null, { raw: escBody, signature: sig });
    expect([again.status, again.json.error.code]).toEqual([401, 'callback.replayed']);
    // Re-signed (a new timestamp), the same decision id is still refused: command ids are durable.
    const resigned = await post(null, { raw: escBody, signature: sign(escBody, SECRET, t0 - 1) });
    expect([resigned.status, resigned.json.error.code]).toEqual([409, 'command.replayed']);
    const tail = (await auditSince(since)).filter((e) => e.kind === 'callback.refused').map((e) => e.data.code);
    expect(tail.slice(-2)).toEqual(['callback.replayed', 'command.replayed']);
  });

  it('refuses a case at a tier the principal has no role for: 403, audited with the rule, the case unchanged', async () => {
    const row = queuedAt(2)[0]!;
    const before = await running.runtime.get(row.id);
    const since = await lastSeq();
    const res = await post(decision('approve', row.id));
    expect(res.status).toBe(403);
    expect(res.json.error).toMatchObject({ code: 'auth.forbidden', details: { rule: 'tier-role' } });
    expect(await running.runtime.get(row.id)).toMatchObject({ state: before!.state, seq: before!.seq });
    const [entry] = (await auditSince(since)).filter((e) => e.kind === 'callback.refused');
    expect(entry).toMatchObject({
      actor: row.id,
      by: 'svc-ticketing',
      data: { source: 'ticketing', code: 'auth.forbidden', rule: 'tier-role', status: 403 },
    });
  });

  it('separation of duties: a callback never decides or escalates a case its own principal requested (403, audited, unchanged)', async () => {
    const model = running.runtime.models.get('refunds')!;
    const rng = new Rng(4711);
    for (let i = 0; i < 8; i++) {
      const signal = {
        ...(model.handlers.synthesize(rng, 300 + i) as Record<string, unknown>),
        channel: 'phone',
        requestedBy: 'svc-ticketing',
      };
      void running.runtime.startEpisode('refunds', signal, { episodeId: `cb-own-${i}` }).catch(() => undefined);
    }
    let own: QueueRow | undefined;
    for (let i = 0; i < 100 && !own; i++) {
      await running.runtime.whenIdle();
      own = openCases((r) => r.tier === 1 && r.requestedBy === 'svc-ticketing' && r.claimedBy === null)[0];
      if (!own) await new Promise((r) => setTimeout(r, 100));
    }
    expect(own, 'a tier-1 case the ticketing principal requested').toBeDefined();
    const before = await running.runtime.get(own!.id);
    const since = await lastSeq();
    for (const type of ['approve', 'reject', 'escalate'] as const) {
      const res = await post(decision(type, own!.id, type === 'approve' ? {} : { reason: 'decided in the ticket' }));
      expect(res.status, `${type}: ${res.text}`).toBe(403);
      expect(res.json.error).toMatchObject({ code: 'auth.forbidden', details: { rule: 'separation-of-duties' } });
    }
    expect(await running.runtime.get(own!.id)).toMatchObject({ state: before!.state, seq: before!.seq });
    const refused = (await auditSince(since)).filter((e) => e.kind === 'callback.refused' && e.actor === own!.id);
    expect(refused.map((e) => e.data.rule)).toEqual([
      'separation-of-duties',
      'separation-of-duties',
      'separation-of-duties',
    ]);
  });

  it('refuses bad input with typed errors naming the field, and unknown sources', async () => {
    const caseId = queuedAt(1)[0]!.id;
    const withReviewer = await post({
      ...decision('approve', caseId),
      reviewer: { id: 'r-malik', roles: ['refunds-manager'] },
    });
    expect([withReviewer.status, withReviewer.json.error.code]).toEqual([400, 'request.reviewer_in_payload']);
    const noReason = await post(decision('reject', caseId));
    expect(noReason.status).toBe(400);
    expect(noReason.json.error).toMatchObject({ code: 'contract.invalid', details: { path: 'reason' } });
    const unknown = await post(decision('approve', caseId), { source: 'jira' });
    expect([unknown.status, unknown.json.error.code]).toEqual([404, 'callback.unknown_source']);
    const ghost = await post(decision('approve', 'no-such-case.case-1'));
    expect([ghost.status, ghost.json.error.code]).toEqual([404, 'actor.not_found']);
    // The console's session routes are untouched: the callback path needs no cookie, the others still do.
    const queue = await fetch(`${running.url}/api/queue`);
    expect(queue.status).toBe(401);
  });

  it('`handoff notifications sign` makes a header the endpoint accepts (for trying an integration with curl)', async () => {
    const caseId = queuedAt(1)[0]!.id;
    const body = JSON.stringify(decision('escalate', caseId, { reason: 'needs the refunds manager' }));
    const out = await runCli(
      ['notifications', 'sign', '--source', 'ticketing', '--model', join(ROOT, 'models/refunds'), '--json'],
      { input: body, env: { HANDOFF_TICKETING_CALLBACK_SECRET: SECRET } },
    );
    expect(out.code, out.stderr).toBe(0);
    const signed = JSON.parse(out.stdout) as { header: string; value: string };
    expect(signed.header).toBe('Handoff-Signature');
    const res = await post(null, { raw: body, signature: signed.value });
    expect(res.status, res.text).toBe(200);
    const view = await running.runtime.get(caseId);
    expect([view?.state, (view!.context as CaseContext).tier]).toEqual(['queued', 2]);
    // Without the secret in its environment the command refuses, naming the variable.
    const off = await runCli(
      ['notifications', 'sign', '--source', 'ticketing', '--model', join(ROOT, 'models/refunds'), '--json'],
      { input: body, env: { HANDOFF_TICKETING_CALLBACK_SECRET: '' } },
    );
    expect(off.code).toBe(2);
    expect(JSON.parse(off.stdout)).toMatchObject({
      ok: false,
      error: { code: 'callback.disabled', details: { env: 'HANDOFF_TICKETING_CALLBACK_SECRET' } },
    });
  });

  it('the audit chain stays intact through accepted and refused callbacks', async () => {
    const result = await verifyAudit(running.store.audit());
    expect(result.ok).toBe(true);
  });
});
