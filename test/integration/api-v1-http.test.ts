/**
 * `/api/v1` on the gateway's Fastify server, over real HTTP against an embedded runtime on a real
 * LevelDB: the paged episode list (stable cursor), the outcome stream (Server-Sent Events), 429 with
 * Retry-After past an account's rate or the node's in-flight bound, and one OpenTelemetry HTTP server
 * span per API request, continuing the caller's traceparent, with the signal's episode joined to it
 * (exported over OTLP/HTTP to a receiver this test runs).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiLimits, apiLimitsFromEnv } from '../../src/gateway/api-limits.ts';
import { embeddedApi } from '../../src/gateway/api-v1-embedded.ts';
import { embeddedBackend } from '../../src/gateway/backend.ts';
import { startConsole, type RunningConsole } from '../../src/app/embedded-console.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { pino } from 'pino';
import { ServiceAccounts } from '../../src/gateway/service-accounts.ts';
import { Rng } from '../../src/base/rng.ts';
import { ProcessTelemetry } from '../../src/telemetry/process.ts';

const ROOT = join(import.meta.dirname, '..', '..');

import { otlpReceiver as receiver, type OtlpSpan } from './otlp-receiver.ts';

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined);
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
    await new Promise((r) => setTimeout(r, 100));
  }
}

let data: string;
let running: RunningConsole;
let telemetry: ProcessTelemetry;
let otlp: Awaited<ReturnType<typeof receiver>>;
let producerKey: string;
let limitedKey: string;
let incidentsKey: string;
const rng = new Rng(2121);
let n = 0;

function signal(): Record<string, unknown> {
  return running.runtime.models.get('refunds')!.handlers.synthesize(rng, n++) as Record<string, unknown>;
}

async function api(path: string, key: string, opts: { body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${running.url}${path}`, {
    method: opts.body === undefined ? 'GET' : 'POST',
    headers: {
      Authorization: `Bearer ${key}`,
      ...(opts.body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...opts.headers,
    },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
}

const SERVICE = 'handoff-api-under-test';
const savedEnv = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, service: process.env.OTEL_SERVICE_NAME };

beforeAll(async () => {
  otlp = await receiver();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = otlp.url;
  process.env.OTEL_SERVICE_NAME = SERVICE;
  telemetry = new ProcessTelemetry();
  data = await mkdtemp(join(tmpdir(), 'handoff-api-http-'));
  running = await startConsole({
    data,
    models: [join(ROOT, 'models/refunds'), join(ROOT, 'models/incidents')],
    port: 0,
    telemetry,
    apiLimits: { perAccountPerSecond: 10, perAccountBurst: 100 },
  });
  const accounts = new ServiceAccounts(running.store);
  producerKey = (await accounts.create('producer', { refunds: ['signals:submit', 'episodes:read'] })).key;
  incidentsKey = (await accounts.create('pager', { incidents: ['episodes:read'] })).key;
  limitedKey = (await accounts.create('chatty', { refunds: ['episodes:read'] })).key;
}, 60_000);

afterAll(async () => {
  await running?.close();
  await telemetry?.shutdown();
  await new Promise((r) => otlp?.server.close(r));
  if (data) await rm(data, { recursive: true, force: true });
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = savedEnv.endpoint;
  process.env.OTEL_SERVICE_NAME = savedEnv.service;
  if (savedEnv.endpoint === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (savedEnv.service === undefined) delete process.env.OTEL_SERVICE_NAME;
});

describe('/api/v1 on Fastify', () => {
  it('lists episodes a page at a time: a stable cursor, no repeats, filters, typed 400s naming the parameter', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++)
      ids.push(
        (
          await api('/api/v1/models/refunds/signals', producerKey, {
            body: { idempotencyKey: `list-${i}`, signal: signal() },
          })
        ).json.accepted[0].episodeId,
      );
    await running.runtime.whenIdle();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await api(`/api/v1/episodes?model=refunds&limit=3${cursor ? `&cursor=${cursor}` : ''}`, producerKey);
      expect(page.status).toBe(200);
      expect(page.json.episodes.length).toBeLessThanOrEqual(3);
      seen.push(...page.json.episodes.map((e: { id: string }) => e.id));
      cursor = page.json.next;
      pages++;
    } while (cursor && pages < 20);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining(ids));
    expect(pages).toBeGreaterThanOrEqual(3);
    // In id order, so a page's cursor keeps its meaning while episodes come and go.
    expect([...seen].sort()).toEqual(seen);
    const first = (await api('/api/v1/episodes?limit=3', producerKey)).json;
    expect(first.episodes.every((e: { model: string }) => e.model === 'refunds')).toBe(true);

    // Filters: an outcome, a start time in the future.
    const all = (await api('/api/v1/episodes?limit=200', producerKey)).json.episodes as {
      id: string;
      outcome: string | null;
      startedAt: number;
    }[];
    const outcome = all.find((e) => e.outcome)?.outcome;
    if (outcome) {
      const only = (await api(`/api/v1/episodes?limit=200&outcome=${outcome}`, producerKey)).json.episodes as {
        outcome: string;
      }[];
      expect(only.length).toBe(all.filter((e) => e.outcome === outcome).length);
    }
    expect((await api(`/api/v1/episodes?since=${Date.now() + 3_600_000}`, producerKey)).json.episodes).toEqual([]);

    // Bad input: 400 naming the parameter; another model's list is 403; nothing readable, 403.
    const badLimit = await api('/api/v1/episodes?limit=0', producerKey);
    expect(badLimit.status).toBe(400);
    expect(badLimit.json.error).toMatchObject({ code: 'contract.invalid', details: { path: 'limit' } });
    const badOutcome = await api('/api/v1/episodes?outcome=maybe', producerKey);
    expect(badOutcome.json.error.details.path).toBe('outcome');
    const badCursor = await api('/api/v1/episodes?cursor=nonsense', producerKey);
    expect(badCursor.status).toBe(400);
    expect(badCursor.json.error.details.path).toBe('cursor');
    const unknown = await api('/api/v1/episodes?colour=red', producerKey);
    expect(unknown.status).toBe(400);
    expect((await api('/api/v1/episodes?model=refunds', incidentsKey)).status).toBe(403);
  });

  it("streams an episode's transitions as Server-Sent Events, ending with its outcome", async () => {
    type Ev = {
      name: string | undefined;
      data: { id: string; seq: number; state: string; status: string; outcome: string | null };
    };
    const parse = (text: string): Ev[] =>
      text
        .split('\n\n')
        .filter((b) => b.includes('data: '))
        .map((b) => ({
          name: /^event: (.+)$/m.exec(b)?.[1],
          data: JSON.parse(/^data: (.+)$/m.exec(b)![1]!) as Ev['data'],
        }));
    // Streams opened right after the submissions: the episodes that end without review end their streams.
    const streams = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const accepted = await api('/api/v1/models/refunds/signals', producerKey, {
          body: { idempotencyKey: `sse-${i}`, signal: signal() },
        });
        const id = accepted.json.accepted[0].episodeId as string;
        const abort = new AbortController();
        const res = await fetch(`${running.url}/api/v1/episodes/${id}/events`, {
          headers: { Authorization: `Bearer ${producerKey}` },
          signal: abort.signal,
        });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
        const s = { id, text: '', ended: false, abort };
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        void (async () => {
          try {
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              s.text += decoder.decode(value, { stream: true });
            }
            s.ended = true;
          } catch {
            // aborted below
          }
        })();
        return s;
      }),
    );
    await running.runtime.whenIdle();
    await until('every stream to end or to show its episode waiting', async () => {
      for (const s of streams) {
        const view = await running.runtime.get(s.id);
        if (view!.status !== 'active' ? !s.ended : !parse(s.text).some((e) => e.data.seq === view!.seq))
          return undefined;
      }
      return true;
    });
    const finished = streams.filter((s) => s.ended);
    expect(finished.length, 'an episode of six that ends without review').toBeGreaterThan(0);
    for (const s of streams) {
      const events = parse(s.text);
      expect(events[0]!.name).toBe('state');
      expect(events.every((e) => e.data.id === s.id)).toBe(true);
      const seqs = events.filter((e) => e.name === 'state').map((e) => e.data.seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      expect(new Set(seqs).size).toBe(seqs.length);
      const read = await api(`/api/v1/episodes/${s.id}`, producerKey);
      if (s.ended) {
        const last = events.at(-1)!;
        expect(last.name).toBe('outcome');
        expect(last.data.status).not.toBe('active');
        expect(last.data.outcome).toBe(read.json.outcome);
      } else {
        // Waiting for a reviewer: the stream is open, at the episode's current state.
        expect(events.at(-1)!.data.state).toBe(read.json.state);
        s.abort.abort();
      }
    }
    const id = streams[0]!.id;
    // Another model's episode is not there for this account; no key is 401.
    expect(
      (
        await fetch(`${running.url}/api/v1/episodes/${id}/events`, {
          headers: { Authorization: `Bearer ${incidentsKey}` },
        })
      ).status,
    ).toBe(404);
    expect((await fetch(`${running.url}/api/v1/episodes/${id}/events`)).status).toBe(401);
  }, 90_000);

  it("answers 429 with Retry-After past the node's in-flight bound, and serves again once requests finish", async () => {
    const limits = running.gateway.opts.api!.limits;
    limits.maxInFlight = 2;
    try {
      // Two submissions whose bodies have not arrived yet hold both slots.
      const held: ClientRequest[] = [];
      const answers: Promise<number>[] = [];
      for (let i = 0; i < 2; i++) {
        const req = httpRequest(`${running.url}/api/v1/models/refunds/signals`, {
          method: 'POST',
          headers: {
            Authorization: `Bearer ${producerKey}`,
            'Content-Type': 'application/json',
            'Content-Length': '10000',
          },
        });
        answers.push(
          new Promise((resolve) =>
            req
              .on('response', (r) => (r.resume(), resolve(r.statusCode ?? 0)))
              .on('error', () => resolve(0))
              .on('close', () => resolve(0)),
          ),
        );
        req.write('{"idempotencyKey":');
        held.push(req);
      }
      const refused = await until('the bound to be reached', async () => {
        const r = await api('/api/v1/models', producerKey);
        return r.status === 429 ? r : undefined;
      });
      expect(refused.json.error.code).toBe('node.overloaded');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      for (const req of held) req.destroy();
      await Promise.all(answers);
      const again = await until(
        'a slot to be free',
        async () => {
          const r = await api('/api/v1/models', producerKey);
          return r.status === 200 ? r : undefined;
        },
        30_000,
      );
      expect(again.json.models[0].name).toBe('refunds');
      expect(limits.inFlight).toBe(0);
    } finally {
      limits.maxInFlight = 512;
    }
  });

  it("answers 429 api.rate_limited with Retry-After past an account's rate (a bucket per account)", () => {
    let now = 0;
    const limits = new ApiLimits({ perAccountPerSecond: 2, perAccountBurst: 3 }, () => now);
    for (let i = 0; i < 3; i++) limits.take('sa-a');
    let refused: any;
    try {
      limits.take('sa-a');
    } catch (err) {
      refused = err;
    }
    expect(refused).toMatchObject({
      status: 429,
      code: 'api.rate_limited',
      details: { accountId: 'sa-a', retryAfterMs: 500 },
    });
    limits.take('sa-b'); // another account is not slowed
    now = 600;
    limits.take('sa-a'); // a token is back after 1/rate s
  });

  it('takes the limits from HANDOFF_API_RATE, _BURST and _MAX_IN_FLIGHT; a bad value is refused naming the variable', () => {
    expect(
      apiLimitsFromEnv({ HANDOFF_API_RATE: '2.5', HANDOFF_API_BURST: '10', HANDOFF_API_MAX_IN_FLIGHT: '64' }),
    ).toEqual({
      perAccountPerSecond: 2.5,
      perAccountBurst: 10,
      maxInFlight: 64,
    });
    expect(apiLimitsFromEnv({})).toEqual({});
    for (const [name, value] of [
      ['HANDOFF_API_MAX_IN_FLIGHT', 'lots'],
      ['HANDOFF_API_BURST', '1.5'],
      ['HANDOFF_API_RATE', '-1'],
    ] as const) {
      let err: any;
      try {
        apiLimitsFromEnv({ [name]: value });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'config.invalid', details: { field: name } });
      expect(err.message).toContain(name);
    }
  });

  it('refuses an account over its rate over HTTP with 429 and Retry-After, others unaffected', async () => {
    const codes: number[] = [];
    let retry: string | null = null;
    // A burst of 100 and 10 a second: 400 reads, 50 at once, get past it unless they take 30 s.
    for (let round = 0; round < 8; round++) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () =>
          fetch(`${running.url}/api/v1/models`, { headers: { Authorization: `Bearer ${limitedKey}` } }),
        ),
      );
      for (const r of batch) {
        codes.push(r.status);
        if (r.status === 429) {
          const body = (await r.json()) as { error: { code: string } };
          if (body.error.code === 'api.rate_limited') retry = r.headers.get('retry-after');
        } else await r.arrayBuffer();
      }
    }
    expect(codes.filter((c) => c === 429).length).toBeGreaterThan(0);
    expect(retry).not.toBeNull();
    expect((await api('/api/v1/models', producerKey)).status).toBe(200);
  }, 60_000);

  it('makes one HTTP server span per API request (semantic conventions), continuing traceparent, with the episode joined', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const callerSpan = 'b7ad6b7169203331';
    const res = await api('/api/v1/models/refunds/signals', producerKey, {
      body: { idempotencyKey: 'traced-1', signal: signal() },
      headers: { traceparent: `00-${traceId}-${callerSpan}-01` },
    });
    expect(res.status).toBe(202);
    const episodeId = res.json.accepted[0].episodeId as string;
    expect((await api(`/api/v1/episodes/${episodeId}`, producerKey)).json.traceId).toBe(traceId);
    expect((await api('/api/v1/episodes/nope', producerKey)).status).toBe(404);
    await running.runtime.whenIdle();
    await telemetry.tracing!.forceFlush();
    const server = await until("the submission's server span", () =>
      otlp.got
        .flatMap((r) => r.spans)
        .find((s) => s.name === 'POST /api/v1/models/:model/signals' && s.traceId === traceId),
    );
    expect(server.kind).toBe(2); // SERVER
    expect(server.parentSpanId).toBe(callerSpan);
    expect(attr(server, 'http.request.method')).toBe('POST');
    expect(attr(server, 'http.route')).toBe('/api/v1/models/:model/signals');
    expect(attr(server, 'http.response.status_code')).toBe(202);
    expect(attr(server, 'url.path')).toBe('/api/v1/models/refunds/signals');
    expect(attr(server, 'server.address')).toBe('127.0.0.1');
    expect(attr(server, 'handoff.episode.id')).toBe(episodeId);
    expect(attr(server, 'handoff.account.id')).toMatch(/^sa-/);
    // The episode is a child of the request's span, in the caller's trace: its stored trace context
    // (its root span's parent) and the spans it exports as it leaves its states.
    const stored = (await running.runtime.get(episodeId))!.context as {
      trace: { traceId: string; parentSpanId?: string };
    };
    expect(stored.trace).toMatchObject({ traceId, parentSpanId: server.spanId });
    const state = await until('a state span of the episode', async () => {
      await telemetry.tracing!.forceFlush();
      return otlp.got
        .flatMap((r) => r.spans)
        .find((s) => attr(s, 'handoff.episode.id') === episodeId && s.name.startsWith('agent '));
    });
    expect(state.traceId).toBe(traceId);
    // Each request has its span: the 404 too, unset status (a client error is not a server error).
    const miss = await until("the 404's span", () =>
      otlp.got
        .flatMap((r) => r.spans)
        .find((s) => s.name === 'GET /api/v1/episodes/:id' && attr(s, 'http.response.status_code') === 404),
    );
    expect(miss.status?.code ?? 0).toBe(0);
    expect(otlp.got.every((r) => r.service === SERVICE)).toBe(true);
    // Console pages get no span; the console API does.
    await fetch(`${running.url}/login`);
    await fetch(`${running.url}/api/session`);
    await telemetry.tracing!.forceFlush();
    const session = await until('the console API span', () =>
      otlp.got.flatMap((r) => r.spans).find((s) => attr(s, 'url.path') === '/api/session'),
    );
    expect(attr(session, 'http.response.status_code')).toBe(401);
    expect(otlp.got.some((r) => r.spans.some((s) => attr(s, 'url.path') === '/login'))).toBe(false);
  }, 90_000);

  it('writes the access log: method, route, status, duration, the account or the reviewer; never a key or a cookie', async () => {
    const lines: { msg: string; access?: Record<string, unknown> }[] = [];
    const log = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    );
    const gw = await Gateway.start({
      backend: embeddedBackend(running.runtime),
      api: embeddedApi(running.runtime, running.store),
      port: 0,
      log,
    });
    try {
      await fetch(`${gw.url}/api/v1/episodes?limit=1`, { headers: { Authorization: `Bearer ${producerKey}` } });
      const login = await fetch(`${gw.url}/api/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ id: 'r-amelie', password: 'demo-amelie' }),
      });
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      await fetch(`${gw.url}/api/session`, { headers: { Cookie: cookie } });
      await fetch(`${gw.url}/api/v1/episodes/missing`, { headers: { Authorization: 'Bearer hk_not-a-key' } });
      const access = await until('four access lines', () => {
        const a = lines.filter((l) => l.msg === 'http request').map((l) => l.access!);
        return a.length >= 4 ? a : undefined;
      });
      expect(access).toContainEqual(
        expect.objectContaining({
          method: 'GET',
          route: '/api/v1/episodes',
          status: 200,
          account: expect.stringMatching(/^sa-/),
        }),
      );
      expect(access.every((a) => typeof a.ms === 'number')).toBe(true);
      expect(access).toContainEqual(
        expect.objectContaining({ method: 'POST', route: '/api/login', status: 200, reviewer: 'r-amelie' }),
      );
      expect(access).toContainEqual(
        expect.objectContaining({ method: 'GET', route: '/api/session', status: 200, reviewer: 'r-amelie' }),
      );
      expect(access).toContainEqual(expect.objectContaining({ route: '/api/v1/episodes/:id', status: 401 }));
      const text = JSON.stringify(lines);
      expect(text).not.toContain(producerKey.split('_').pop());
      expect(text).not.toContain(cookie.split('=')[1]);
      expect(text).not.toContain('limit=1');
    } finally {
      await gw.close();
    }
  });
});
