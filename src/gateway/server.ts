import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { LoadedModel } from '../models/loader.ts';
import type { AuditDraft } from '../base/audit-log.ts';
import { AuditIndex } from '../lineage/audit-index.ts';
import { Directory, Sessions, type Principal, type Session } from '../httpkit/auth.ts';
import { OidcSignIn } from './oidc.ts';
import { RefusalLimiter, SignInThrottle, TrustedProxies } from './throttle.ts';
import type { GatewayBackend } from './backend.ts';
import { HttpError, StaticFiles, errorBody, parseCookies, sameOrigin } from '../httpkit/http.ts';
import { Metrics } from './metrics.ts';
import { QueueProjection } from './projection.ts';
import { WsHub } from './ws-hub.ts';
import { InspectorRoutes, inspectableModels } from '../inspect/http.ts';
import { CallbackEndpoint } from './callbacks.ts';
import { checkListenAddress, hstsHeader } from '../security/tls-options.ts';
import { createApp, json, pathOf, sendError } from './app.ts';
import { registerConsoleApi } from './console-api.ts';
import { registerOidcRoutes } from './oidc-routes.ts';
import { COOKIE, safeDecode, type GatewayContext, type GatewayOptions } from './gateway-context.ts';

export type { GatewayOptions } from './gateway-context.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_WEB_ROOT = resolve(HERE, '..', '..', 'web', 'console');

/** The console's static files, with uPlot from its package. */
async function consoleFiles(webRoot: string): Promise<StaticFiles> {
  const uplot = dirname(createRequire(import.meta.url).resolve('uplot'));
  return StaticFiles.load(webRoot, '/', {
    '/vendor/uplot/uPlot.esm.js': join(uplot, 'uPlot.esm.js'),
    '/vendor/uplot/uPlot.min.css': join(uplot, 'uPlot.min.css'),
  });
}

/**
 * The reviewer console's server: static pages, a JSON API and a WebSocket on one Fastify server
 * (app.ts; the routes are in console-api.ts, case-routes.ts, oidc-routes.ts and api-v1.ts).
 *
 * Security model: no anonymous access (every API call needs a session; the app page redirects to the
 * login page); sessions are random tokens in an HttpOnly, SameSite=Strict cookie with sliding idle
 * expiry and an absolute cap; every mutation needs the session's CSRF token in `X-CSRF-Token`, a JSON
 * content type and a same-origin `Origin`; a strict content security policy; the reviewer's identity
 * and roles come from the session, never from the request. Each command is parsed with the
 * `ReviewerCommand` contract and authorised before it is sent to the case actor; refusals and logins
 * are appended to the audit log.
 */
export class Gateway implements GatewayContext {
  readonly app: FastifyInstance;
  readonly server: Server;
  readonly sessions: Sessions;
  readonly projection: QueueProjection;
  readonly metrics: Metrics;
  readonly audit: AuditIndex;
  readonly directory: Directory;
  readonly callbacks: CallbackEndpoint;
  readonly oidc: OidcSignIn | null;
  /** @internal for the route modules */ readonly backend: GatewayBackend;
  /** @internal */ readonly opts: GatewayOptions;
  /** @internal */ readonly models: Map<string, LoadedModel>;
  /** @internal reviewer id → display name */ readonly names = new Map<string, string>();
  /** @internal */ readonly log: Logger | undefined;
  /** @internal */ readonly inspector: InspectorRoutes | null;
  /** @internal sign-in throttling */ readonly throttle: SignInThrottle;
  /** @internal Single sign-on starts each keep a pending record: at most 30 a minute per address, 1,200 in all. */
  readonly oidcStarts = new RefusalLimiter(30, 1200);
  #hub: WsHub;
  #files: StaticFiles;
  #proxies: TrustedProxies;
  #refusals = new RefusalLimiter();
  #unsubs: (() => void)[] = [];
  url = '';

  private constructor(opts: GatewayOptions, directory: Directory, files: StaticFiles) {
    this.opts = opts;
    this.backend = opts.backend;
    this.log = opts.log;
    this.directory = directory;
    this.#files = files;
    this.models = new Map(opts.backend.models.map((m) => [m.name, m]));
    for (const m of opts.backend.models) for (const r of m.config.reviewers) this.names.set(r.id, r.name);
    this.sessions = new Sessions(opts.sessions);
    this.oidc = opts.oidc ? new OidcSignIn(opts.oidc, opts.backend.models, opts.env ?? process.env) : null;
    this.throttle = new SignInThrottle(opts.signInThrottle);
    this.#proxies = opts.trustedProxies
      ? new TrustedProxies(opts.trustedProxies)
      : TrustedProxies.parse(process.env.HANDOFF_TRUSTED_PROXIES);
    this.projection = new QueueProjection(opts.backend);
    this.metrics = new Metrics(opts.backend, opts.metricsBucketMs ? { bucketMs: opts.metricsBucketMs } : {});
    this.audit = new AuditIndex(opts.backend);
    this.#hub = new WsHub(opts.backend, this.projection, this.sessions);
    this.inspector = opts.inspector ? new InspectorRoutes(opts.inspector, this.sessions) : null;
    this.callbacks = new CallbackEndpoint(opts.backend, { ...(opts.log ? { log: opts.log } : {}), ...opts.callbacks });
    this.app = createApp({
      tls: opts.tls ?? null,
      hsts: opts.tls ? hstsHeader(opts.tls) : null,
      log: opts.log,
      clientIp: (req) => this.ip(req),
      ...(opts.tracer ? { tracer: opts.tracer } : {}),
    });
    this.server = this.app.server as Server;
    this.#routes();
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
  }

  /** Loads accounts and the open cases, then listens. The dashboards' history loads in the background. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    // Refused before anything loads: reviewers' passwords and cookies must not cross a network in clear text.
    const listen = await checkListenAddress(opts.host ?? '127.0.0.1', {
      tls: opts.tls ?? null,
      allowPlaintext: opts.allowPlaintext ?? false,
    });
    if (listen === 'plaintext-allowed') {
      const warning = `serving the console in plain HTTP on ${opts.host ?? '(all interfaces)'}, which other hosts can reach (--insecure-allow-plaintext): passwords and session cookies cross the network in clear text`;
      if (opts.log) opts.log.warn({ host: opts.host, code: 'gateway.plaintext' }, warning);
      else process.emitWarning(warning, { code: 'HANDOFF_PLAINTEXT' });
    }
    const directory = opts.directory ?? (await Directory.load(opts.backend.models));
    const files = await consoleFiles(opts.webRoot ?? DEFAULT_WEB_ROOT);
    const gw = new Gateway(opts, directory, files);
    const sub = await gw.projection.start();
    const m = gw.metrics.start();
    gw.#unsubs.push(
      () => sub.unsubscribe(),
      () => m.unsubscribe(),
    );
    if (gw.inspector) await gw.inspector.start();
    // Background loads cut short by a close (the store closes under them) are not failures.
    m.loaded.catch((err: unknown) => gw.#closing || gw.log?.error({ err }, 'dashboard history failed to load'));
    void gw.audit
      .catchUp()
      .catch((err: unknown) => gw.#closing || gw.log?.error({ err }, 'audit index failed to load'));
    await gw.app.listen({ port: opts.port ?? 7400, host: opts.host ?? '127.0.0.1' });
    const addr = gw.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    gw.url = `${opts.tls ? 'https' : 'http'}://${host}:${addr.port}`;
    return gw;
  }

  #closing = false;

  async close(): Promise<void> {
    this.#closing = true;
    this.#hub.close();
    this.inspector?.close();
    this.opts.api?.close();
    this.sessions.close();
    for (const u of this.#unsubs) u();
    await this.app.close();
  }

  // ----------------------------------------------------------------------------------------------
  // For the route modules
  // ----------------------------------------------------------------------------------------------

  /** @internal The session cookie (or its removal with max age 0). */
  cookie(token: string, maxAgeS: number): string {
    return `${COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${this.opts.secureCookies || this.opts.tls ? '; Secure' : ''}`;
  }

  /** @internal The request's session, or 401. */
  async session(request: FastifyRequest): Promise<Session> {
    const found = await this.sessions.lookup(parseCookies(request.headers.cookie)[COOKIE]);
    if (found.ok) {
      request.who = { reviewer: found.session.principal.id };
      return found.session;
    }
    if (found.reason === 'expired')
      throw new HttpError(401, 'auth.session_expired', 'your session expired; sign in again');
    throw new HttpError(401, 'auth.required', 'sign in first: this API needs a session');
  }

  /** @internal Mutations: same origin, and the session's CSRF token in X-CSRF-Token. */
  checkMutation(req: IncomingMessage, session: Session): void {
    if (!sameOrigin(req, this.opts.allowedOrigins))
      throw new HttpError(403, 'auth.origin', 'cross-origin requests may not change anything');
    const sent = req.headers['x-csrf-token'];
    if (typeof sent !== 'string' || !sent)
      throw new HttpError(403, 'auth.csrf', 'the X-CSRF-Token header is missing; reload the page');
    const a = Buffer.from(sent);
    const b = Buffer.from(session.csrf);
    if (a.length !== b.length || !timingSafeEqual(a, b))
      throw new HttpError(403, 'auth.csrf', 'the X-CSRF-Token header does not match this session; reload the page');
  }

  /** @internal The client's address: the peer, or what a trusted proxy says in X-Forwarded-For. */
  ip(req: IncomingMessage): string {
    return this.#proxies.clientOf(req);
  }

  /**
   * @internal Audits a refusal (401, 403 on a read, a refused WebSocket upgrade, a throttled sign-in), rate
   * limited per kind and client address so an anonymous flood cannot swamp the log.
   */
  async auditRefusal(
    kind: string,
    ip: string,
    draft: { actor: string; by: string; data: Record<string, unknown> },
  ): Promise<void> {
    const suppressed = this.#refusals.admit(`${kind}|${ip}`);
    if (suppressed === null) return;
    await this.auditSafe([
      {
        at: this.backend.now(),
        kind,
        actor: draft.actor,
        by: draft.by,
        data: { ip, ...draft.data, ...(suppressed ? { suppressed } : {}) },
      },
    ]);
  }

  /** @internal */
  async auditSafe(drafts: AuditDraft[]): Promise<void> {
    try {
      await this.backend.appendAudit(drafts);
    } catch (err) {
      this.log?.error({ err }, 'audit append failed');
    }
  }

  /** @internal Answers an error; a 5xx is logged. */
  fail(reply: FastifyReply, err: unknown): FastifyReply {
    const out = sendError(reply, err);
    if (out.status >= 500) this.log?.error({ err }, 'gateway request failed');
    return reply;
  }

  // ----------------------------------------------------------------------------------------------
  // Routes
  // ----------------------------------------------------------------------------------------------

  #routes(): void {
    const app = this.app;
    app.setErrorHandler((err, _request, reply) => this.fail(reply, err));
    app.setNotFoundHandler((request, reply) => this.#notFound(request, reply));
    app.get('/healthz', async (_request, reply) => json(reply, 200, { ok: true }));
    const index = async (request: FastifyRequest, reply: FastifyReply) => {
      const found = await this.sessions.lookup(parseCookies(request.headers.cookie)[COOKIE], false);
      if (!found.ok)
        return reply
          .code(302)
          .headers({
            Location: found.reason === 'expired' ? '/login?expired=1' : '/login',
            'Cache-Control': 'no-store',
          })
          .send();
      return this.#files.send(reply, '/index.html');
    };
    app.get('/', index);
    app.get('/index.html', index);
    app.get('/login', async (_request, reply) => this.#files.send(reply, '/login.html'));
    app.get('/login.html', async (_request, reply) => this.#files.send(reply, '/login.html'));
    app.get('/favicon.ico', async (_request, reply) => this.#files.send(reply, '/assets/favicon.svg'));
    const file = async (request: FastifyRequest, reply: FastifyReply) => this.#files.send(reply, pathOf(request.url));
    app.get('/assets/*', file);
    app.get('/vendor/*', file);
    if (this.inspector) {
      const inspector = this.inspector;
      const page = async (request: FastifyRequest, reply: FastifyReply) => {
        const found = await this.sessions.lookup(parseCookies(request.headers.cookie)[COOKIE], false);
        return inspector.page(reply, pathOf(request.url), found.ok ? 'ok' : found.reason);
      };
      app.get('/inspector', page);
      app.get('/inspector/*', page);
    }
    registerOidcRoutes(app, this);
    registerConsoleApi(app, this);
    if (this.opts.api) this.opts.api.register(app, (req) => this.ip(req));
  }

  /** No route for this method and path: 405 for a known path, else 404 (an API path needs a session first). */
  async #notFound(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const path = pathOf(request.url);
    const method = request.method;
    if (this.opts.api && (path === '/api/v1' || path.startsWith('/api/v1/')))
      return this.opts.api.notFound(request, reply, this.ip(request.raw));
    if (path.startsWith('/api/')) return this.#apiNotFound(request, reply, path);
    if (method !== 'GET' && method !== 'HEAD')
      return this.fail(reply, new HttpError(405, 'request.method', `${method} is not allowed here`));
    return this.fail(reply, new HttpError(404, 'request.not_found', `nothing at ${path}`));
  }

  async #apiNotFound(request: FastifyRequest, reply: FastifyReply, path: string): Promise<FastifyReply> {
    const method = request.method;
    const known: [RegExp, string][] = [
      [/^\/api\/login$/, 'use POST to sign in'],
      [/^\/api\/logout$/, 'use POST to sign out'],
      [/^\/api\/cases\/[^/]+(\/audit|\/commands|\/lineage)?$/, `${method} is not allowed on ${path}`],
    ];
    try {
      const public405 = path === '/api/login' ? known[0]![1] : null;
      if (public405) throw new HttpError(405, 'request.method', public405);
      await this.session(request);
      for (const [re, message] of known) if (re.test(path)) throw new HttpError(405, 'request.method', message);
      throw new HttpError(404, 'request.not_found', `no API at ${path}`);
    } catch (err) {
      await this.auditApiRefusal(request, err);
      return this.fail(reply, err);
    }
  }

  /**
   * @internal Audits a refused console API request before the answer: 401 (no or expired session) and 403 on
   * reads (a case of another tier, the inspector without the engineer role). Sign-in failures and
   * refused commands have their own entries (`auth.login_failed`, `command.refused`).
   */
  async auditApiRefusal(request: FastifyRequest, err: unknown): Promise<void> {
    const { status, body } = errorBody(err);
    const path = pathOf(request.url);
    const audited = (path === '/api/login' && status === 401) || path.startsWith('/api/callbacks/');
    if ((status !== 401 && status !== 403) || audited) return;
    const found = await this.sessions.lookup(parseCookies(request.headers.cookie)[COOKIE], false);
    const p: Principal | null = found.ok ? found.session.principal : null;
    const caseId = /^\/api\/cases\/([^/]+)/.exec(path)?.[1];
    const method = request.method;
    const details = (err as { details?: Record<string, unknown> }).details ?? {};
    await this.auditRefusal(
      status === 401 ? 'auth.refused' : method === 'GET' ? 'read.refused' : 'request.refused',
      this.ip(request.raw),
      {
        actor: caseId ? safeDecode(caseId).slice(0, 200) : p ? `reviewer:${p.id}` : 'gateway',
        by: p?.id ?? 'anonymous',
        data: {
          method: method.slice(0, 10),
          path: path.slice(0, 200),
          status,
          code: body.error.code,
          ...(typeof details.rule === 'string' ? { rule: details.rule } : {}),
        },
      },
    );
  }

  // ----------------------------------------------------------------------------------------------
  // WebSockets (ws on the server's upgrade event; the session and origin are checked here)
  // ----------------------------------------------------------------------------------------------

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    void this.#upgradeAsync(req, socket, head).catch((err: unknown) => {
      this.log?.error({ err }, 'websocket upgrade failed');
      socket.destroy();
    });
  }

  async #upgradeAsync(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = pathOf(req.url ?? '/');
    const refuse = (status: number, text: string, reason: string, principal?: Principal) => {
      socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
      const origin = typeof req.headers.origin === 'string' ? req.headers.origin.slice(0, 200) : null;
      void this.auditRefusal('ws.refused', this.ip(req), {
        actor: principal ? `reviewer:${principal.id}` : 'gateway',
        by: principal?.id ?? 'anonymous',
        data: { path: path.slice(0, 200), status, reason, origin },
      });
    };
    if (path !== '/ws' && !(path === '/inspector/ws' && this.inspector))
      return refuse(404, 'Not Found', 'no such socket');
    // Browsers always send Origin on WebSockets: a page of another site must not ride the cookie.
    if (!req.headers.origin || !sameOrigin(req, this.opts.allowedOrigins))
      return refuse(403, 'Forbidden', req.headers.origin ? 'cross-origin' : 'no origin');
    const found = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE]);
    if (!found.ok) return refuse(401, 'Unauthorized', found.reason === 'expired' ? 'session expired' : 'no session');
    if (path === '/inspector/ws' && inspectableModels(found.session.principal).size === 0)
      return refuse(403, 'Forbidden', 'the inspector needs the engineer role', found.session.principal);
    if (path === '/inspector/ws') this.inspector!.upgrade(req, socket, head, found.session);
    else this.#hub.upgrade(req, socket, head, found.session);
  }
}
