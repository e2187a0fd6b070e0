/**
 * Telemetry switched on by configuration alone: `handoff start` as a child process with the standard
 * `OTEL_*` variables pointing at an OTLP/HTTP receiver this test runs, and `--metrics`. A reviewer
 * approves a case through the console's API; the receiver must get one trace per episode with the
 * review and the actions in it, the service name from `OTEL_SERVICE_NAME`, ERROR on a denied
 * episode, and `/metrics` must put the approved case's time to resolve in a finite bucket.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

import { otlpReceiver as receiver, type OtlpSpan } from './otlp-receiver.ts';

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue ?? v?.boolValue;
};

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  limitMs = 60_000,
): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let child: ChildProcess | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  child?.kill('SIGKILL');
  for (const c of cleanups) await c();
});

describe('telemetry from the CLI', () => {
  it('handoff start exports one trace per episode over OTLP (service name, review, actions, ERROR when denied) and serves /metrics', async () => {
    const otlp = await receiver();
    cleanups.push(() => new Promise((r) => otlp.server.close(r)));
    const data = await mkdtemp(join(tmpdir(), 'handoff-otel-'));
    cleanups.push(() => rm(data, { recursive: true, force: true }));
    const env = {
      ...process.env,
      NO_COLOR: '1',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_SERVICE_NAME: 'handoff-under-test',
      OTEL_BSP_SCHEDULE_DELAY: '200',
      HANDOFF_LOG_LEVEL: 'info',
    };
    child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/handoff.js'),
        'start',
        '--data',
        data,
        '--model',
        'models/refunds',
        '--port',
        '0',
        '--metrics',
        '127.0.0.1:0',
        '--demo-load',
        '60',
        '--demo-burst',
        '150',
        '--demo-seed',
        '5',
        '--json',
      ],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const ready = await until('the console to listen', () => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      return line ? (JSON.parse(line) as { url: string; metrics: string | null; tracing: boolean }) : undefined;
    });
    expect(ready.tracing, err).toBe(true);
    expect(ready.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    // A failed sign-in is logged (and audited), without the password.
    const bad = await fetch(`${ready.url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'r-amelie', password: 'not-her-password' }),
    });
    expect(bad.status).toBe(401);
    // A reviewer approves a tier-1 case through the API.
    const login = await fetch(`${ready.url}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id: 'r-amelie', password: 'demo-amelie' }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const csrf = ((await login.json()) as { csrfToken: string }).csrfToken;
    const headers = { Cookie: cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' };
    const row = await until('a tier-1 case', async () => {
      const q = (await (await fetch(`${ready.url}/api/queue`, { headers })).json()) as {
        rows: { id: string; tier: number; requestedBy: string | null }[];
      };
      return q.rows.find((r) => r.tier === 1 && r.requestedBy === null);
    });
    let n = 0;
    const send = async (type: string, extra: Record<string, unknown> = {}) => {
      const res = await fetch(`${ready.url}/api/cases/${encodeURIComponent(row.id)}/commands`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ type, schemaVersion: 1, commandId: `otel-${++n}`, ...extra }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
      return (await res.json()) as { case: { episodeId: string } };
    };
    await send('handoff.case.claim');
    const approved = await send('handoff.case.approve', { comment: 'fine' });
    const episodeId = approved.case.episodeId;

    // Its episode ends; /metrics shows the decision in a finite bucket of time to resolve.
    const metrics = await until('the approval in /metrics', async () => {
      const text = await (await fetch(ready.metrics!)).text();
      return /handoff_case_time_to_resolve_count\{[^}]*outcome="approved"[^}]*\} [1-9]/.test(text) ? text : undefined;
    });
    const finite = [
      ...metrics.matchAll(
        /handoff_case_time_to_resolve_bucket\{[^}]*outcome="approved"[^}]*le="([^"]+)"[^}]*\} (\d+)/g,
      ),
    ].filter(([, le, count]) => le !== '+Inf' && Number(count) > 0);
    expect(finite.length, 'an approval in a finite bucket').toBeGreaterThan(0);
    expect(metrics).toContain('service_name="handoff-under-test"');
    // Prometheus's own linter accepts the exposition (names, types, suffixes, HELP).
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    expect(lint.error, 'promtool (Debian package prometheus; .ci/run installs it)').toBeUndefined();
    expect(lint.status, `${lint.stdout}${lint.stderr}`).toBe(0);

    // The episode's trace: one trace id, with its review case, the reviewer's commands and the actions.
    const spansOf = () => otlp.got.flatMap((r) => r.spans);
    const root = await until(
      'the approved episode’s root span',
      () => spansOf().find((s) => s.name === 'episode' && attr(s, 'handoff.episode.id') === episodeId),
      60_000,
    );
    expect(otlp.got.every((r) => r.service === 'handoff-under-test')).toBe(true);
    const trace = spansOf().filter((s) => s.traceId === root.traceId);
    const names = new Set(trace.map((s) => s.name));
    for (const name of ['review case', 'reviewer claim', 'reviewer approve', 'agent acting', 'gate'])
      expect(names, name).toContain(name);
    expect(new Set(trace.map((s) => attr(s, 'handoff.episode.id')))).toEqual(new Set([episodeId]));
    expect(root.status?.code).toBe(1); // OK
    // Another deployment's episode with the same id would have another trace: the id is random, not derived.
    expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);

    // A denied episode (the demo load makes some) ends in ERROR with the cause.
    const denied = await until(
      'a denied episode',
      () => spansOf().find((s) => s.name === 'episode' && attr(s, 'handoff.episode.outcome') === 'denied'),
      60_000,
    );
    expect(denied.status?.code).toBe(2); // ERROR
    expect(denied.status?.message).toMatch(/^denied by the gate/);

    // The access log: a line per request with method, route (ids replaced), status, duration and who; never a cookie or token.
    const lines = err
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map(
        (l) =>
          JSON.parse(l) as {
            msg: string;
            access?: { method: string; route: string; status: number; ms: number; reviewer?: string };
            signIn?: { account: string };
          },
      );
    const access = lines.filter((l) => l.msg === 'http request').map((l) => l.access!);
    expect(access).toContainEqual(
      expect.objectContaining({ method: 'POST', route: '/api/cases/:id/commands', status: 200, reviewer: 'r-amelie' }),
    );
    expect(access).toContainEqual(expect.objectContaining({ method: 'POST', route: '/api/login', status: 401 }));
    expect(access.every((a) => typeof a.ms === 'number')).toBe(true);
    expect(lines.find((l) => l.msg === 'sign-in failed')?.signIn?.account).toBe('r-amelie');
    expect(err).not.toContain(cookie.split('=')[1]!);
    expect(err).not.toContain(csrf);
    expect(err).not.toContain('not-her-password');

    child.kill('SIGTERM');
    await until(
      'the console to stop',
      () => (child!.exitCode !== null || child!.signalCode !== null ? true : undefined),
      30_000,
    );
  }, 120_000);
});
