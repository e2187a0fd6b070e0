/**
 * Shared set-up of the gateway integration tests (test/integration/gateway/*.test.ts): one embedded console
 * per test file, seeded with refund episodes, and small HTTP helpers. Each file calls `useSeededConsole()`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { startConsole, type RunningConsole } from '../../../src/app/embedded-console.ts';
import type { QueueRow } from '../../../src/gateway/projection.ts';
import type { AuditEntry } from '../../../src/base/audit-log.ts';
import { Rng } from '../../../src/base/rng.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');

export interface Session {
  cookie: string;
  csrf: string;
}

export let running: RunningConsole;
export let base: string;
let data: string;

export async function login(id: string, password = `demo-${id.replace(/^r-/, '')}`, url = base): Promise<Session> {
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

export async function call(
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
export const cmd = (type: string, extra: Record<string, unknown> = {}) => ({
  type,
  schemaVersion: 1,
  commandId: `t-${++n}-${Date.now()}`,
  ...extra,
});

export async function caseSeq(id: string): Promise<{ seq: number; state: string }> {
  const v = await running.runtime.get(id);
  return { seq: v!.seq, state: v!.state };
}

export async function auditTail(since: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const e of running.store.audit(since + 1)) out.push(e);
  return out;
}

export async function lastAuditSeq(): Promise<number> {
  return (await running.store.lastAudit())?.seq ?? 0;
}

/** Open cases of the projection, by a predicate. */
export function openCases(pred: (r: QueueRow) => boolean): QueueRow[] {
  const anyone = {
    id: 'probe',
    name: 'probe',
    grants: { refunds: { roles: ['support-lead', 'refunds-manager', 'finance-controller'], seeSensitive: true } },
  };
  return running.gateway.projection.list(anyone, {}, 0, 100_000, Date.now()).rows.filter(pred);
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await running.runtime.whenIdle();
    await new Promise((r) => setTimeout(r, 400));
  }
}

/** Starts a console on a temp directory with 80 customer and 24 staff-filed refund episodes; closes it after. */
export function useSeededConsole(): void {
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
}

/** Open tier-1 cases a support lead may decide (no requester, unclaimed, with a refund). */
export const tier1 = (): QueueRow[] =>
  openCases((r) => r.tier === 1 && r.requestedBy === null && r.claimedBy === null && r.actions.includes('issueRefund'));
