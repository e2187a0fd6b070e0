import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LoginRequest } from '../contracts/auth.ts';
import { parseContract } from '../contracts/parse.ts';
import type { Principal, Session } from '../httpkit/auth.ts';
import { json, pathOf, urlOf } from './app.ts';
import { registerCaseRoutes } from './case-routes.ts';
import { HttpError, errorBody, parseCookies, readJson, sameOrigin } from '../httpkit/http.ts';
import { mayView, type QueueFilter } from './projection.ts';
import { COOKIE, safeDecode, sessionOf, type GatewayContext as Gateway } from './gateway-context.ts';

const RANGES: Record<string, number | null> = {
  '1h': 3600_000,
  '6h': 6 * 3600_000,
  '24h': 24 * 3600_000,
  '7d': 7 * 86_400_000,
  all: null,
};

/**
 * The console's JSON API (`/api/...` except `/api/v1`), in its own Fastify scope: every route but the
 * public ones (sign-in, sign-in methods, signed callbacks) needs a session, checked in an onRequest
 * hook before the body is read; mutations also need the same origin and the session's CSRF token.
 * Refusals are audited before the answer (the scope's error handler).
 */
export function registerConsoleApi(app: FastifyInstance, gw: Gateway): void {
  app.register(async (scope) => {
    scope.decorateRequest('consoleSession', null);
    scope.setErrorHandler(async (err, request, reply) => {
      await gw.auditApiRefusal(request, err);
      return gw.fail(reply, err);
    });
    scope.addHook('onRequest', async (request, reply) => {
      if (request.routeOptions.config.public) return;
      const session = await gw.session(request);
      request.consoleSession = session;
      if (request.method === 'GET' || request.method === 'HEAD') return;
      try {
        gw.checkMutation(request.raw, session);
      } catch (err) {
        // Audited before the answer, so an acknowledged refusal is always on record.
        const path = pathOf(request.url);
        const caseId = /^\/api\/cases\/([^/]+)\//.exec(path)?.[1];
        const { body } = errorBody(err);
        const p = session.principal;
        await gw.auditSafe([
          {
            at: gw.backend.now(),
            kind: 'command.refused',
            actor: caseId ? safeDecode(caseId) : `reviewer:${p.id}`,
            by: p.id,
            data: { path, code: body.error.code, message: body.error.message },
          },
        ]);
        gw.fail(reply, err);
        return reply;
      }
    });

    // Signed by the source instead of a session: no cookie, no CSRF token (docs/notifications.md).
    scope.route({
      method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      url: '/api/callbacks/*',
      config: { public: true },
      // The endpoint verifies the signature over the exact bytes and answers itself.
      handler: async (request, reply) => {
        reply.hijack();
        await gw.callbacks.handle(request.raw, reply.raw, pathOf(request.url).slice('/api/callbacks/'.length));
      },
    });
    scope.post('/api/login', { config: { public: true } }, (request, reply) => login(gw, request, reply));
    scope.get('/api/auth/methods', { config: { public: true } }, async (_request, reply) =>
      json(reply, 200, {
        password: gw.opts.passwords ?? true,
        oidc: gw.oidc ? { label: gw.oidc.label, start: '/auth/oidc' } : null,
      }),
    );
    scope.post('/api/logout', async (request, reply) => {
      const session = sessionOf(request);
      const p = session.principal;
      await gw.sessions.destroy(session);
      await gw.auditSafe([
        { at: gw.backend.now(), kind: 'auth.logout', actor: `reviewer:${p.id}`, by: p.id, data: {} },
      ]);
      return json(reply, 200, { ok: true }, { 'Set-Cookie': gw.cookie('', 0) });
    });
    if (gw.inspector) {
      const inspector = gw.inspector;
      scope.route({
        method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
        url: '/api/inspect/*',
        handler: async (request, reply) =>
          json(reply, 200, await inspector.api(request.method, urlOf(request), sessionOf(request).principal)),
      });
    }
    scope.get('/api/session', async (request, reply) => json(reply, 200, sessionBody(gw, sessionOf(request))));
    scope.get('/api/queue', async (request, reply) => queue(gw, reply, urlOf(request), sessionOf(request).principal));
    scope.get('/api/dashboard', async (request, reply) => {
      const range = urlOf(request).searchParams.get('range') ?? 'all';
      if (!(range in RANGES))
        throw new HttpError(400, 'request.invalid', `range must be one of ${Object.keys(RANGES).join(', ')}`);
      const p = sessionOf(request).principal;
      return json(reply, 200, {
        ready: gw.metrics.ready,
        ...gw.metrics.series(p, RANGES[range]!, gw.backend.now()),
        serverTime: gw.backend.now(),
      });
    });
    registerCaseRoutes(scope, gw);
  });
}

export function sessionBody(gw: Gateway, session: Session) {
  const p = session.principal;
  return {
    reviewer: { id: p.id, name: p.name, grants: p.grants },
    csrfToken: session.csrf,
    expiresAt: session.expiresAt,
    via: session.via,
    idleMs: gw.sessions.idleMs,
    serverTime: gw.backend.now(),
    models: [...gw.models.values()]
      .filter((m) => p.grants[m.name])
      .map((m) => ({
        name: m.name,
        description: m.config.description,
        tiers: m.config.review.tiers.map((t, i) => ({
          n: i + 1,
          name: t.name,
          queue: t.queue,
          roles: t.roles,
          fourEyes: t.fourEyes ?? false,
          mine: t.roles.some((r) => p.grants[m.name]!.roles.includes(r)),
        })),
        roles: Object.fromEntries(Object.entries(m.config.roles).map(([k, v]) => [k, v.description])),
      })),
  };
}

async function login(gw: Gateway, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const req = request.raw;
  if (!sameOrigin(req, gw.opts.allowedOrigins))
    throw new HttpError(403, 'auth.origin', 'cross-origin sign-in is not allowed');
  if (gw.opts.passwords === false)
    throw new HttpError(
      403,
      'auth.method_disabled',
      `passwords are turned off on this console; ${gw.oidc ? `use "${gw.oidc.label}"` : 'ask an administrator'}`,
    );
  const body = await readJson(req, 4096);
  const creds = parseContract(LoginRequest, body, 'LoginRequest');
  const ip = gw.ip(req);
  const account = creds.id.slice(0, 64);
  // Locked per account (a doubling lock after a few failures); per address only against floods.
  const verdict = gw.throttle.check(creds.id, ip);
  if (verdict) {
    const secs = Math.ceil(verdict.waitMs / 1000);
    const message =
      verdict.scope === 'account'
        ? `too many failed sign-ins for this account; try again in ${secs} s`
        : `too many failed sign-ins from your network address; try again in ${secs} s`;
    // Attempts during a lock-out are audited at a bounded rate (anyone could flood the log otherwise).
    await gw.auditRefusal('auth.throttled', ip, {
      actor: `reviewer:${account}`,
      by: 'anonymous',
      data: { scope: verdict.scope, retryAfterMs: verdict.waitMs },
    });
    const err = new HttpError(429, 'auth.throttled', message, { retryAfterMs: verdict.waitMs, scope: verdict.scope });
    return json(reply, 429, errorBody(err).body, { 'Retry-After': String(secs) });
  }
  const principal = await gw.directory.authenticate(creds.id, creds.password);
  if (!principal) {
    const { failures, accountLockMs, addressLockMs } = gw.throttle.failed(creds.id, ip);
    await gw.auditSafe([
      {
        at: gw.backend.now(),
        kind: 'auth.login_failed',
        actor: `reviewer:${account}`,
        by: 'anonymous',
        data: {
          ip,
          reason: 'invalid credentials',
          failures,
          ...(accountLockMs || addressLockMs
            ? { lockedOut: [...(accountLockMs ? [`id:${account}`] : []), ...(addressLockMs ? [`ip:${ip}`] : [])] }
            : {}),
          ...(accountLockMs ? { accountLockMs } : {}),
          ...(addressLockMs ? { addressLockMs } : {}),
        },
      },
    ]);
    gw.log?.warn({ signIn: { account, ip, failures, locked: !!(accountLockMs || addressLockMs) } }, 'sign-in failed');
    throw new HttpError(401, 'auth.invalid_credentials', 'unknown reviewer id or wrong password');
  }
  gw.throttle.succeeded(creds.id);
  // A new sign-in replaces the session this browser had.
  const previous = await gw.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE], false);
  if (previous.ok) await gw.sessions.destroy(previous.session, 'replaced');
  const { token, session } = await gw.sessions.create(principal, 'password');
  request.who = { reviewer: principal.id };
  await gw.auditSafe([
    {
      at: gw.backend.now(),
      kind: 'auth.login',
      actor: `reviewer:${principal.id}`,
      by: principal.id,
      data: { ip, via: 'password', roles: principal.grants },
    },
  ]);
  return json(reply, 200, sessionBody(gw, session), {
    'Set-Cookie': gw.cookie(token, Math.round(gw.sessions.absoluteMs / 1000)),
  });
}

function queue(gw: Gateway, reply: FastifyReply, url: URL, p: Principal): FastifyReply {
  const sp = url.searchParams;
  const num = (name: string, min: number, max: number): number | undefined => {
    const v = sp.get(name);
    if (v === null || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new HttpError(400, 'request.invalid', `${name} must be a number from ${min} to ${max}`, { path: name });
    return n;
  };
  const oneOf = <T extends string>(name: string, values: readonly T[]): T | undefined => {
    const v = sp.get(name);
    if (v === null || v === '') return undefined;
    if (!values.includes(v as T))
      throw new HttpError(400, 'request.invalid', `${name} must be one of ${values.join(', ')}`, { path: name });
    return v as T;
  };
  const filter: QueueFilter = {};
  const q = sp.get('queue');
  if (q) {
    filter.queue = q.slice(0, 200);
    // A queue of a tier the reviewer has no role for is refused, not shown empty.
    const tiers = [...gw.models.values()].flatMap((m) =>
      m.config.review.tiers.map((t) => ({ model: m.name, t })).filter((x) => x.t.queue === filter.queue),
    );
    if (tiers.length && !tiers.some((x) => mayView(p, x.model, x.t.roles))) {
      const needs = [...new Set(tiers.flatMap((x) => x.t.roles))];
      throw new HttpError(
        403,
        'auth.forbidden',
        `the queue ${filter.queue} (${tiers[0]!.t.name}) needs the role ${needs.join(' or ')}; your roles do not include it`,
        { rule: 'queue-role', queue: filter.queue },
      );
    }
  }
  const tier = num('tier', 1, 100);
  if (tier !== undefined) filter.tier = tier;
  const risk = oneOf('risk', ['low', 'medium', 'high'] as const);
  if (risk) filter.risk = risk;
  const minAge = num('minAgeMin', 0, 1e7);
  if (minAge !== undefined) filter.minAgeMs = minAge * 60_000;
  const maxAge = num('maxAgeMin', 0, 1e7);
  if (maxAge !== undefined) filter.maxAgeMs = maxAge * 60_000;
  const status = oneOf('status', ['unclaimed', 'mine', 'claimed', 'breached'] as const);
  if (status) filter.status = status;
  const text = sp.get('q');
  if (text) filter.q = text.slice(0, 200);
  const offset = num('offset', 0, 1e7) ?? 0;
  const limit = num('limit', 1, 200) ?? 50;
  const now = gw.backend.now();
  const page = gw.projection.list(p, filter, Math.floor(offset), Math.floor(limit), now);
  const names: Record<string, string> = {};
  for (const r of page.rows) {
    for (const id of [r.claimedBy, r.requestedBy]) if (id && gw.names.has(id)) names[id] = gw.names.get(id)!;
  }
  return json(reply, 200, { ...page, limit, names, depth: gw.projection.depth(p, now), serverTime: now });
}
