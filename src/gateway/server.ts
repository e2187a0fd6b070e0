import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { LoginRequest } from '../contracts/auth.ts';
import { ContractError, HandoffError } from '../contracts/errors.ts';
import { parseContract } from '../contracts/parse.ts';
import { ReviewerCommand } from '../contracts/reviewer-command.ts';
import { explainCaseRejection, type CaseContext, type CaseEvent } from '../machines/review-case.ts';
import type { AgentContext } from '../machines/agent.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { AuditDraft } from '../runtime/audit-log.ts';
import { AuditIndex } from '../lineage/audit-index.ts';
import { Directory, Sessions, tokenKey, type Principal, type Session, type SessionOptions } from './auth.ts';
import { OidcSignIn, type OidcConfig } from './oidc.ts';
import { randomBytes } from 'node:crypto';
import { RefusalLimiter, SignInThrottle, TrustedProxies, type SignInThrottleOptions } from './throttle.ts';
import type { GatewayBackend } from './backend.ts';
import { MASK, caseView, episodeView, mayOpen, unmaskActions } from './case-view.ts';
import { buildLineage, withCompensationTypes } from '../lineage/lineage.ts';
import { maskLineage } from '../lineage/mask.ts';
import { HOLDS_KEY, summaryKey, type CompactionSummary, type LegalHold } from '../lineage/retention-records.ts';
import { sensitivePaths } from '../contracts/classification.ts';
import { z } from 'zod';
import { HttpError, MIME, errorBody, SECURITY_HEADERS, parseCookies, readJson, sameOrigin, sendError, sendJson } from './http.ts';
import { Metrics } from './metrics.ts';
import { QueueProjection, mayView, type QueueFilter } from './projection.ts';
import { WsHub } from './ws-hub.ts';
import { InspectorRoutes, inspectableModels } from '../inspect/http.ts';
import type { InspectorBackend } from '../inspect/backend.ts';
import { CallbackEndpoint, type CallbackEndpointOptions } from '../notify/callbacks.ts';
import { checkListenAddress, hstsHeader, type GatewayTls } from '../security/tls-options.ts';
import type { ApiV1 } from './api-v1.ts';

export interface GatewayOptions {
  backend: GatewayBackend;
  /** Reviewer accounts. @default loaded from the models' `reviewers.json` */
  directory?: Directory;
  /** @default 127.0.0.1 */
  host?: string;
  /** 0 picks a free port. @default 7400 */
  port?: number;
  sessions?: SessionOptions;
  /** Largest JSON body accepted. @default 64 KiB */
  maxBodyBytes?: number;
  /** Add `Secure` to the session cookie (serve behind TLS). @default false */
  secureCookies?: boolean;
  /** Origins besides the server's own allowed to send commands (a TLS proxy's public origin). */
  allowedOrigins?: string[];
  /** Folder of the console's static pages. @default web/console of this repository */
  webRoot?: string;
  log?: Logger;
  /** Dashboard bucket size. @default 60 s */
  metricsBucketMs?: number;
  /** Serves the live inspector (`/inspector`, engineers only) from this backend. */
  inspector?: InspectorBackend;
  /**
   * Signed decision callbacks (`POST /api/callbacks/<source>`) of the models' `notifications.callbacks`,
   * secrets from `env` (docs/notifications.md). @default on, secrets from process.env
   */
  callbacks?: CallbackEndpointOptions;
  /**
   * Serve HTTPS and WSS with this certificate and key (`loadGatewayTls`, or the CLI's `--tls-cert` and
   * `--tls-key`). Session cookies are then `Secure` and every response carries HSTS.
   * @default null: plain HTTP, allowed on a loopback host only
   */
  tls?: GatewayTls | null;
  /** Serve plain HTTP on a non-loopback host anyway (a warning is logged); refused otherwise. @default false */
  allowPlaintext?: boolean;
  /**
   * Proxies whose `X-Forwarded-For` names the client (addresses or CIDR ranges). Only when the
   * direct peer is one of them is the header read. @default `HANDOFF_TRUSTED_PROXIES` (comma-separated), else none
   */
  trustedProxies?: string[];
  /** Sign-in throttling: per account with a doubling lock, per address only against floods. */
  signInThrottle?: SignInThrottleOptions;
  /** OpenID Connect sign-in (the `oidc` section of a gateway config, docs/console.md). @default none */
  oidc?: OidcConfig;
  /** Sign-in with the reviewers.json passwords. @default true */
  passwords?: boolean;
  /** Where the OIDC client id and secret variables are read from. @default process.env */
  env?: Record<string, string | undefined>;
  /** The versioned API for programs under `/api/v1` (service account keys, docs/api.md). @default none */
  api?: ApiV1;
}

const COOKIE = 'handoff_session';
/** The OIDC sign-in under way: a random handle on the pending record (state, nonce, PKCE verifier), for the callback only. */
const OIDC_COOKIE = 'handoff_oidc';
const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_WEB_ROOT = resolve(HERE, '..', '..', 'web', 'console');

/** Static files the console serves, by URL path; nothing outside this map is ever read. */
async function staticFiles(webRoot: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (MIME[extname(entry.name)]) files.set(`/${relative(webRoot, full).split(sep).join('/')}`, full);
    }
  };
  await walk(webRoot);
  const uplot = dirname(createRequire(import.meta.url).resolve('uplot'));
  files.set('/vendor/uplot/uPlot.esm.js', join(uplot, 'uPlot.esm.js'));
  files.set('/vendor/uplot/uPlot.min.css', join(uplot, 'uPlot.min.css'));
  return files;
}

const COMMAND_TYPES: Record<string, CaseEvent['type']> = {
  'handoff.case.claim': 'claim',
  'handoff.case.release': 'release',
  'handoff.case.renew': 'renew',
  'handoff.case.approve': 'approve',
  'handoff.case.modify': 'modify',
  'handoff.case.reject': 'reject',
  'handoff.case.escalate': 'escalate',
};

const RANGES: Record<string, number | null> = { '1h': 3600_000, '6h': 6 * 3600_000, '24h': 24 * 3600_000, '7d': 7 * 86_400_000, all: null };

/**
 * The reviewer console's server: static pages, a JSON API and a WebSocket on one node:http server.
 *
 * Security model: no anonymous access (every API call needs a session; the app page redirects to the
 * login page); sessions are random tokens in an HttpOnly, SameSite=Strict cookie with sliding idle
 * expiry and an absolute cap; every mutation needs the session's CSRF token in `X-CSRF-Token`, a JSON
 * content type and a same-origin `Origin`; a strict content security policy; the reviewer's identity
 * and roles come from the session, never from the request. Each command is parsed with the
 * `ReviewerCommand` contract and authorised before it is sent to the case actor; refusals and logins
 * are appended to the audit log.
 */
export class Gateway {
  readonly server: Server;
  readonly sessions: Sessions;
  readonly projection: QueueProjection;
  readonly metrics: Metrics;
  readonly audit: AuditIndex;
  readonly directory: Directory;
  #backend: GatewayBackend;
  #hub: WsHub;
  #files: Map<string, string>;
  #opts: GatewayOptions;
  #models: Map<string, LoadedModel>;
  #names = new Map<string, string>();
  #throttle: SignInThrottle;
  #proxies: TrustedProxies;
  #refusals = new RefusalLimiter();
  /** Single sign-on starts each keep a pending record: at most 30 a minute per address, 1,200 in all. */
  #oidcStarts = new RefusalLimiter(30, 1200);
  #unsubs: (() => void)[] = [];
  #log: Logger | undefined;
  /** Who sent a request, once its session is known (for the access log). */
  #who = new WeakMap<IncomingMessage, string>();
  #fileCache = new Map<string, Buffer>();
  #inspector: InspectorRoutes | null;
  readonly callbacks: CallbackEndpoint;
  readonly oidc: OidcSignIn | null;
  #hsts: string | null;
  url = '';

  private constructor(opts: GatewayOptions, directory: Directory, files: Map<string, string>) {
    this.#opts = opts;
    this.#backend = opts.backend;
    this.#log = opts.log;
    this.directory = directory;
    this.#files = files;
    this.#models = new Map(opts.backend.models.map((m) => [m.name, m]));
    for (const m of opts.backend.models) for (const r of m.config.reviewers) this.#names.set(r.id, r.name);
    this.sessions = new Sessions(opts.sessions);
    this.oidc = opts.oidc ? new OidcSignIn(opts.oidc, opts.backend.models, opts.env ?? process.env) : null;
    this.#throttle = new SignInThrottle(opts.signInThrottle);
    this.#proxies = opts.trustedProxies ? new TrustedProxies(opts.trustedProxies) : TrustedProxies.parse(process.env.HANDOFF_TRUSTED_PROXIES);
    this.projection = new QueueProjection(opts.backend);
    this.metrics = new Metrics(opts.backend, opts.metricsBucketMs ? { bucketMs: opts.metricsBucketMs } : {});
    this.audit = new AuditIndex(opts.backend);
    this.#hub = new WsHub(opts.backend, this.projection, this.sessions);
    this.#inspector = opts.inspector ? new InspectorRoutes(opts.inspector, this.sessions) : null;
    this.callbacks = new CallbackEndpoint(opts.backend, { ...(opts.log ? { log: opts.log } : {}), ...opts.callbacks });
    const serverOpts = { requestTimeout: 30_000, headersTimeout: 15_000 };
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res);
    this.#hsts = opts.tls ? hstsHeader(opts.tls) : null;
    this.server = opts.tls ? createHttpsServer({ ...serverOpts, cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, handler) : createServer(serverOpts, handler);
    this.server.on('upgrade', (req, socket, head) => this.#upgrade(req, socket, head));
  }

  /** Loads accounts and the open cases, then listens. The dashboards' history loads in the background. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    // Refused before anything loads: reviewers' passwords and cookies must not cross a network in clear text.
    const listen = await checkListenAddress(opts.host ?? '127.0.0.1', { tls: opts.tls ?? null, allowPlaintext: opts.allowPlaintext ?? false });
    if (listen === 'plaintext-allowed') {
      const warning = `serving the console in plain HTTP on ${opts.host ?? '(all interfaces)'}, which other hosts can reach (--insecure-allow-plaintext): passwords and session cookies cross the network in clear text`;
      if (opts.log) opts.log.warn({ host: opts.host, code: 'gateway.plaintext' }, warning);
      else process.emitWarning(warning, { code: 'HANDOFF_PLAINTEXT' });
    }
    const directory = opts.directory ?? (await Directory.load(opts.backend.models));
    const files = await staticFiles(opts.webRoot ?? DEFAULT_WEB_ROOT);
    const gw = new Gateway(opts, directory, files);
    const sub = await gw.projection.start();
    const m = gw.metrics.start();
    gw.#unsubs.push(() => sub.unsubscribe(), () => m.unsubscribe());
    if (gw.#inspector) await gw.#inspector.start();
    // Background loads cut short by a close (the store closes under them) are not failures.
    m.loaded.catch((err: unknown) => gw.#closing || gw.#log?.error({ err }, 'dashboard history failed to load'));
    void gw.audit.catchUp().catch((err: unknown) => gw.#closing || gw.#log?.error({ err }, 'audit index failed to load'));
    await new Promise<void>((resolveListen, reject) => {
      gw.server.once('error', reject);
      gw.server.listen(opts.port ?? 7400, opts.host ?? '127.0.0.1', () => resolveListen());
    });
    const addr = gw.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    gw.url = `${opts.tls ? 'https' : 'http'}://${host}:${addr.port}`;
    return gw;
  }

  #closing = false;

  async close(): Promise<void> {
    this.#closing = true;
    this.#hub.close();
    this.#inspector?.close();
    this.sessions.close();
    for (const u of this.#unsubs) u();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ----------------------------------------------------------------------------------------------
  // Plumbing
  // ----------------------------------------------------------------------------------------------

  #cookie(token: string, maxAgeS: number): string {
    return `${COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${this.#opts.secureCookies || this.#opts.tls ? '; Secure' : ''}`;
  }

  async #session(req: IncomingMessage): Promise<Session> {
    const found = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE]);
    if (found.ok) {
      this.#who.set(req, found.session.principal.id);
      return found.session;
    }
    if (found.reason === 'expired') throw new HttpError(401, 'auth.session_expired', 'your session expired; sign in again');
    throw new HttpError(401, 'auth.required', 'sign in first: this API needs a session');
  }

  /** Mutations: same origin, and the session's CSRF token in X-CSRF-Token. */
  #checkMutation(req: IncomingMessage, session: Session): void {
    if (!sameOrigin(req, this.#opts.allowedOrigins)) throw new HttpError(403, 'auth.origin', 'cross-origin requests may not change anything');
    const sent = req.headers['x-csrf-token'];
    if (typeof sent !== 'string' || !sent) throw new HttpError(403, 'auth.csrf', 'the X-CSRF-Token header is missing; reload the page');
    const a = Buffer.from(sent);
    const b = Buffer.from(session.csrf);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new HttpError(403, 'auth.csrf', 'the X-CSRF-Token header does not match this session; reload the page');
  }

  /** The client's address: the peer, or what a trusted proxy says in X-Forwarded-For. */
  #ip(req: IncomingMessage): string {
    return this.#proxies.clientOf(req);
  }

  /**
   * Audits a refusal (401, 403 on a read, a refused WebSocket upgrade, a throttled sign-in), rate
   * limited per kind and client address so an anonymous flood cannot swamp the log.
   */
  async #auditRefusal(kind: string, ip: string, draft: { actor: string; by: string; data: Record<string, unknown> }): Promise<void> {
    const suppressed = this.#refusals.admit(`${kind}|${ip}`);
    if (suppressed === null) return;
    await this.#auditSafe([{ at: this.#backend.now(), kind, actor: draft.actor, by: draft.by, data: { ip, ...draft.data, ...(suppressed ? { suppressed } : {}) } }]);
  }

  async #auditSafe(drafts: AuditDraft[]): Promise<void> {
    try {
      await this.#backend.appendAudit(drafts);
    } catch (err) {
      this.#log?.error({ err }, 'audit append failed');
    }
  }

  #upgrade(req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    void this.#upgradeAsync(req, socket, head).catch((err: unknown) => {
      this.#log?.error({ err }, 'websocket upgrade failed');
      socket.destroy();
    });
  }

  async #upgradeAsync(req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      url = new URL('http://x/');
    }
    const refuse = (status: number, text: string, reason: string, principal?: Principal) => {
      socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
      const origin = typeof req.headers.origin === 'string' ? req.headers.origin.slice(0, 200) : null;
      void this.#auditRefusal('ws.refused', this.#ip(req), {
        actor: principal ? `reviewer:${principal.id}` : 'gateway',
        by: principal?.id ?? 'anonymous',
        data: { path: url.pathname.slice(0, 200), status, reason, origin },
      });
    };
    if (url.pathname !== '/ws' && !(url.pathname === '/inspector/ws' && this.#inspector)) return refuse(404, 'Not Found', 'no such socket');
    // Browsers always send Origin on WebSockets: a page of another site must not ride the cookie.
    if (!req.headers.origin || !sameOrigin(req, this.#opts.allowedOrigins)) return refuse(403, 'Forbidden', req.headers.origin ? 'cross-origin' : 'no origin');
    const found = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE]);
    if (!found.ok) return refuse(401, 'Unauthorized', found.reason === 'expired' ? 'session expired' : 'no session');
    if (url.pathname === '/inspector/ws' && inspectableModels(found.session.principal).size === 0) return refuse(403, 'Forbidden', 'the inspector needs the engineer role', found.session.principal);
    if (url.pathname === '/inspector/ws') this.#inspector!.upgrade(req, socket, head, found.session);
    else this.#hub.upgrade(req, socket, head, found.session);
  }

  /** The access log: one line per request once answered (method, route, status, duration, who); never a cookie, token or query. */
  #accessLog(req: IncomingMessage, res: ServerResponse): void {
    const log = this.#log;
    if (!log?.isLevelEnabled('info')) return;
    const t0 = performance.now();
    res.once('finish', () => {
      let path = '/';
      try {
        path = new URL(req.url ?? '/', 'http://x').pathname;
      } catch {
        path = '(unparseable)';
      }
      log.info(
        {
          access: {
            method: req.method,
            route: routeOf(path),
            status: res.statusCode,
            ms: Math.round((performance.now() - t0) * 10) / 10,
            ...(this.#who.has(req) ? { reviewer: this.#who.get(req) } : {}),
            ip: this.#ip(req),
          },
        },
        'http request',
      );
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#accessLog(req, res);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    if (this.#hsts) res.setHeader('Strict-Transport-Security', this.#hsts);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      sendError(res, new HttpError(400, 'request.bad_url', 'the URL cannot be parsed'));
      return;
    }
    const path = url.pathname;
    try {
      if (this.#opts.api && (path === '/api/v1' || path.startsWith('/api/v1/'))) return await this.#opts.api.handle(req, res, url, this.#ip(req));
      if (path.startsWith('/api/')) return await this.#apiAudited(req, res, url);
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'request.method', `${req.method} is not allowed here`);
      if (path === '/healthz') return sendJson(res, 200, { ok: true });
      if (path === '/' || path === '/index.html') {
        const found = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE], false);
        if (!found.ok) {
          res.writeHead(302, { Location: found.reason === 'expired' ? '/login?expired=1' : '/login', 'Cache-Control': 'no-store' });
          res.end();
          return;
        }
        return await this.#static(res, '/index.html');
      }
      if (this.#inspector && (path === '/inspector' || path.startsWith('/inspector/'))) {
        const found = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE], false);
        return await this.#inspector.page(res, path, found.ok ? 'ok' : found.reason);
      }
      if (path === '/login' || path === '/login.html') return await this.#static(res, '/login.html');
      if (path === '/auth/oidc') return await this.#oidcBegin(req, res, url);
      if (path === '/auth/callback') return await this.#oidcCallback(req, res, url);
      if (path === '/favicon.ico') return await this.#static(res, '/assets/favicon.svg');
      if (this.#files.has(path) && (path.startsWith('/assets/') || path.startsWith('/vendor/'))) return await this.#static(res, path);
      throw new HttpError(404, 'request.not_found', `nothing at ${path}`);
    } catch (err) {
      this.#fail(res, err);
    }
  }

  #fail(res: ServerResponse, err: unknown): { status: number; code: string; message: string } {
    const out = sendError(res, err);
    if (out.status >= 500) this.#log?.error({ err }, 'gateway request failed');
    return out;
  }

  async #static(res: ServerResponse, path: string): Promise<void> {
    const file = this.#files.get(path);
    if (!file) throw new HttpError(404, 'request.not_found', `nothing at ${path}`);
    let body = this.#fileCache.get(file);
    if (!body) {
      body = await readFile(file);
      if (process.env.HANDOFF_CONSOLE_DEV !== '1') this.#fileCache.set(file, body);
    }
    res.writeHead(200, { 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length, 'Cache-Control': 'no-cache' });
    res.end(body);
  }

  // ----------------------------------------------------------------------------------------------
  // API
  // ----------------------------------------------------------------------------------------------

  /**
   * The API, with its refusals audited before the answer: 401 (no or expired session) and 403 on
   * reads (a case of another tier, the inspector without the engineer role). Sign-in failures and
   * refused commands have their own entries (`auth.login_failed`, `command.refused`).
   */
  async #apiAudited(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      await this.#api(req, res, url);
    } catch (err) {
      const { status, body } = errorBody(err);
      const path = url.pathname;
      const audited = (path === '/api/login' && status === 401) || path.startsWith('/api/callbacks/');
      if ((status === 401 || status === 403) && !audited) {
        const found = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE], false);
        const p = found.ok ? found.session.principal : null;
        const caseId = /^\/api\/cases\/([^/]+)/.exec(path)?.[1];
        const method = req.method ?? 'GET';
        const details = err instanceof HandoffError ? err.details : {};
        await this.#auditRefusal(status === 401 ? 'auth.refused' : method === 'GET' ? 'read.refused' : 'request.refused', this.#ip(req), {
          actor: caseId ? safeDecode(caseId).slice(0, 200) : p ? `reviewer:${p.id}` : 'gateway',
          by: p?.id ?? 'anonymous',
          data: { method: method.slice(0, 10), path: path.slice(0, 200), status, code: body.error.code, ...(typeof details.rule === 'string' ? { rule: details.rule } : {}) },
        });
      }
      throw err;
    }
  }

  async #api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    // Signed by the source instead of a session: no cookie, no CSRF token (docs/notifications.md).
    if (path.startsWith('/api/callbacks/')) return await this.callbacks.handle(req, res, path.slice('/api/callbacks/'.length));
    if (path === '/api/login') {
      if (method !== 'POST') throw new HttpError(405, 'request.method', 'use POST to sign in');
      return this.#login(req, res);
    }
    if (path === '/api/auth/methods' && method === 'GET') {
      return sendJson(res, 200, { password: this.#opts.passwords ?? true, oidc: this.oidc ? { label: this.oidc.label, start: '/auth/oidc' } : null });
    }
    const session = await this.#session(req);
    const p = session.principal;
    if (method !== 'GET') {
      try {
        this.#checkMutation(req, session);
      } catch (err) {
        // Audited before the answer, so an acknowledged refusal is always on record.
        const caseId = /^\/api\/cases\/([^/]+)\//.exec(path)?.[1];
        const { body } = errorBody(err);
        await this.#auditSafe([{ at: this.#backend.now(), kind: 'command.refused', actor: caseId ? safeDecode(caseId) : `reviewer:${p.id}`, by: p.id, data: { path, code: body.error.code, message: body.error.message } }]);
        this.#fail(res, err);
        return;
      }
    }
    if (path === '/api/logout') {
      if (method !== 'POST') throw new HttpError(405, 'request.method', 'use POST to sign out');
      await this.sessions.destroy(session);
      await this.#auditSafe([{ at: this.#backend.now(), kind: 'auth.logout', actor: `reviewer:${p.id}`, by: p.id, data: {} }]);
      return sendJson(res, 200, { ok: true }, { 'Set-Cookie': this.#cookie('', 0) });
    }
    if (this.#inspector && path.startsWith('/api/inspect/')) return await this.#inspector.api(req, res, url, p);
    if (path === '/api/session' && method === 'GET') return sendJson(res, 200, this.#sessionBody(session));
    if (path === '/api/queue' && method === 'GET') return this.#queue(res, url, p);
    if (path === '/api/dashboard' && method === 'GET') {
      const range = url.searchParams.get('range') ?? 'all';
      if (!(range in RANGES)) throw new HttpError(400, 'request.invalid', `range must be one of ${Object.keys(RANGES).join(', ')}`);
      return sendJson(res, 200, { ready: this.metrics.ready, ...this.metrics.series(p, RANGES[range]!, this.#backend.now()), serverTime: this.#backend.now() });
    }
    const m = /^\/api\/cases\/([^/]+)(\/audit|\/commands|\/lineage)?$/.exec(path);
    if (m) {
      const id = safeDecode(m[1]!);
      if (!m[2] && method === 'GET') return sendJson(res, 200, await this.#caseBody(id, p));
      if (m[2] === '/audit' && method === 'GET') return this.#caseAudit(res, id, p);
      if (m[2] === '/lineage' && method === 'GET') return sendJson(res, 200, await this.#caseLineage(id, p));
      if (m[2] === '/commands' && method === 'POST') return this.#command(req, res, id, p);
      throw new HttpError(405, 'request.method', `${method} is not allowed on ${path}`);
    }
    throw new HttpError(404, 'request.not_found', `no API at ${path}`);
  }

  #sessionBody(session: Session) {
    const p = session.principal;
    return {
      reviewer: { id: p.id, name: p.name, grants: p.grants },
      csrfToken: session.csrf,
      expiresAt: session.expiresAt,
      via: session.via,
      idleMs: this.sessions.idleMs,
      serverTime: this.#backend.now(),
      models: [...this.#models.values()]
        .filter((m) => p.grants[m.name])
        .map((m) => ({
          name: m.name,
          description: m.config.description,
          tiers: m.config.review.tiers.map((t, i) => ({ n: i + 1, name: t.name, queue: t.queue, roles: t.roles, fourEyes: t.fourEyes ?? false, mine: t.roles.some((r) => p.grants[m.name]!.roles.includes(r)) })),
          roles: Object.fromEntries(Object.entries(m.config.roles).map(([k, v]) => [k, v.description])),
        })),
    };
  }

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!sameOrigin(req, this.#opts.allowedOrigins)) throw new HttpError(403, 'auth.origin', 'cross-origin sign-in is not allowed');
    if (this.#opts.passwords === false) throw new HttpError(403, 'auth.method_disabled', `passwords are turned off on this console; ${this.oidc ? `use "${this.oidc.label}"` : 'ask an administrator'}`);
    const body = await readJson(req, 4096);
    const creds = parseContract(LoginRequest, body, 'LoginRequest');
    const ip = this.#ip(req);
    const account = creds.id.slice(0, 64);
    // Locked per account (a doubling lock after a few failures); per address only against floods.
    const verdict = this.#throttle.check(creds.id, ip);
    if (verdict) {
      const secs = Math.ceil(verdict.waitMs / 1000);
      const message =
        verdict.scope === 'account'
          ? `too many failed sign-ins for this account; try again in ${secs} s`
          : `too many failed sign-ins from your network address; try again in ${secs} s`;
      // Attempts during a lock-out are audited at a bounded rate (anyone could flood the log otherwise).
      await this.#auditRefusal('auth.throttled', ip, { actor: `reviewer:${account}`, by: 'anonymous', data: { scope: verdict.scope, retryAfterMs: verdict.waitMs } });
      const err = new HttpError(429, 'auth.throttled', message, { retryAfterMs: verdict.waitMs, scope: verdict.scope });
      sendJson(res, 429, errorBody(err).body, { 'Retry-After': String(secs) });
      return;
    }
    const principal = await this.directory.authenticate(creds.id, creds.password);
    if (!principal) {
      const { failures, accountLockMs, addressLockMs } = this.#throttle.failed(creds.id, ip);
      await this.#auditSafe([
        {
          at: this.#backend.now(),
          kind: 'auth.login_failed',
          actor: `reviewer:${account}`,
          by: 'anonymous',
          data: {
            ip,
            reason: 'invalid credentials',
            failures,
            ...(accountLockMs || addressLockMs ? { lockedOut: [...(accountLockMs ? [`id:${account}`] : []), ...(addressLockMs ? [`ip:${ip}`] : [])] } : {}),
            ...(accountLockMs ? { accountLockMs } : {}),
            ...(addressLockMs ? { addressLockMs } : {}),
          },
        },
      ]);
      this.#log?.warn({ signIn: { account, ip, failures, locked: !!(accountLockMs || addressLockMs) } }, 'sign-in failed');
      throw new HttpError(401, 'auth.invalid_credentials', 'unknown reviewer id or wrong password');
    }
    this.#throttle.succeeded(creds.id);
    // A new sign-in replaces the session this browser had.
    const previous = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE], false);
    if (previous.ok) await this.sessions.destroy(previous.session, 'replaced');
    const { token, session } = await this.sessions.create(principal, 'password');
    await this.#auditSafe([{ at: this.#backend.now(), kind: 'auth.login', actor: `reviewer:${principal.id}`, by: principal.id, data: { ip, via: 'password', roles: principal.grants } }]);
    sendJson(res, 200, this.#sessionBody(session), { 'Set-Cookie': this.#cookie(token, Math.round(this.sessions.absoluteMs / 1000)) });
  }

  #oidcCookie(value: string, maxAgeS: number): string {
    // Lax, not Strict: the provider's redirect back is a cross-site navigation, which must carry it.
    return `${OIDC_COOKIE}=${value}; Path=/auth/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${this.#opts.secureCookies || this.#opts.tls ? '; Secure' : ''}`;
  }

  /** `GET /auth/oidc`: a new sign-in (state, nonce, PKCE verifier kept in the session store), then off to the provider. */
  async #oidcBegin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!this.oidc) throw new HttpError(404, 'request.not_found', 'single sign-on is not configured on this console');
    if (this.#oidcStarts.admit(this.#ip(req)) === null) throw new HttpError(429, 'auth.throttled', 'too many sign-ins started from your network address; try again in a minute');
    const next = url.searchParams.get('next') === '/inspector' ? '/inspector' : '/';
    const { url: to, pending } = await this.oidc.begin(next, Date.now());
    const handle = randomBytes(32).toString('base64url');
    await this.sessions.store.put(tokenKey(handle), pending);
    res.writeHead(302, { Location: to.href, 'Cache-Control': 'no-store', 'Set-Cookie': this.#oidcCookie(handle, 600) });
    res.end();
  }

  /**
   * `GET /auth/callback`: the provider's answer. The pending sign-in is taken (one use) by the handle
   * in this browser's cookie; openid-client checks state, PKCE, the ID token and its nonce; the claims
   * map to roles. A new session (new token) ends with a page that navigates to the console itself, so
   * the SameSite=Strict session cookie is sent (it is not on a redirect chain begun by another site).
   */
  async #oidcCallback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!this.oidc) throw new HttpError(404, 'request.not_found', 'single sign-on is not configured on this console');
    const ip = this.#ip(req);
    const clear = this.#oidcCookie('', 0);
    const fail = async (reason: string, notice: string, id?: string) => {
      await this.#auditSafe([{ at: this.#backend.now(), kind: 'auth.login_failed', actor: `reviewer:${(id ?? 'unknown').slice(0, 64)}`, by: 'anonymous', data: { ip, via: 'oidc', reason: reason.slice(0, 300) } }]);
      res.writeHead(302, { Location: `/login?sso=${notice}`, 'Cache-Control': 'no-store', 'Set-Cookie': clear });
      res.end();
    };
    const handle = parseCookies(req.headers.cookie)[OIDC_COOKIE];
    const key = handle && handle.length <= 100 ? tokenKey(handle) : null;
    const pending = key ? await this.sessions.store.get(key) : undefined;
    if (key && pending) await this.sessions.store.delete(key);
    if (!pending || pending.kind !== 'oidc-pending' || Date.now() >= pending.expiresAt) return fail('no sign-in under way in this browser (or it took over 10 minutes)', 'stale');
    const providerError = url.searchParams.get('error');
    if (providerError) return fail(`the identity provider answered ${providerError.slice(0, 100)}`, 'failed');
    let result: Awaited<ReturnType<OidcSignIn['complete']>>;
    try {
      result = await this.oidc.complete(url.search, pending);
    } catch (err) {
      this.#log?.warn({ err, code: 'auth.oidc_failed' }, 'OIDC sign-in failed');
      return fail(`the provider's response failed a check: ${(err as Error).message}`, 'failed');
    }
    if ('refused' in result) return fail(result.refused, 'norole', result.id);
    const principal = result.principal;
    const previous = await this.sessions.lookup(parseCookies(req.headers.cookie)[COOKIE], false);
    if (previous.ok) await this.sessions.destroy(previous.session, 'replaced');
    const { token } = await this.sessions.create(principal, 'oidc');
    await this.#auditSafe([{ at: this.#backend.now(), kind: 'auth.login', actor: `reviewer:${principal.id}`, by: principal.id, data: { ip, via: 'oidc', issuer: this.oidc.config.issuer, roles: principal.grants } }]);
    const body = Buffer.from(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${pending.next}"><title>Signed in</title><p>Signed in. <a href="${pending.next}">Continue to the console</a>.</p>\n`);
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store', 'Set-Cookie': [this.#cookie(token, Math.round(this.sessions.absoluteMs / 1000)), clear] });
    res.end(body);
  }

  #queue(res: ServerResponse, url: URL, p: Principal): void {
    const sp = url.searchParams;
    const num = (name: string, min: number, max: number): number | undefined => {
      const v = sp.get(name);
      if (v === null || v === '') return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n < min || n > max) throw new HttpError(400, 'request.invalid', `${name} must be a number from ${min} to ${max}`, { path: name });
      return n;
    };
    const oneOf = <T extends string>(name: string, values: readonly T[]): T | undefined => {
      const v = sp.get(name);
      if (v === null || v === '') return undefined;
      if (!values.includes(v as T)) throw new HttpError(400, 'request.invalid', `${name} must be one of ${values.join(', ')}`, { path: name });
      return v as T;
    };
    const filter: QueueFilter = {};
    const queue = sp.get('queue');
    if (queue) {
      filter.queue = queue.slice(0, 200);
      // A queue of a tier the reviewer has no role for is refused, not shown empty.
      const tiers = [...this.#models.values()].flatMap((m) => m.config.review.tiers.map((t) => ({ model: m.name, t })).filter((x) => x.t.queue === filter.queue));
      if (tiers.length && !tiers.some((x) => mayView(p, x.model, x.t.roles))) {
        const needs = [...new Set(tiers.flatMap((x) => x.t.roles))];
        throw new HttpError(403, 'auth.forbidden', `the queue ${filter.queue} (${tiers[0]!.t.name}) needs the role ${needs.join(' or ')}; your roles do not include it`, { rule: 'queue-role', queue: filter.queue });
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
    const q = sp.get('q');
    if (q) filter.q = q.slice(0, 200);
    const offset = num('offset', 0, 1e7) ?? 0;
    const limit = num('limit', 1, 200) ?? 50;
    const now = this.#backend.now();
    const page = this.projection.list(p, filter, Math.floor(offset), Math.floor(limit), now);
    const names: Record<string, string> = {};
    for (const r of page.rows) {
      for (const id of [r.claimedBy, r.requestedBy]) if (id && this.#names.has(id)) names[id] = this.#names.get(id)!;
    }
    sendJson(res, 200, { ...page, limit, names, depth: this.projection.depth(p, now), serverTime: now });
  }

  /** Reads a case and checks the reviewer may open it: 404 unknown, 403 not theirs. */
  async #readCase(id: string, p: Principal) {
    const view = await this.#backend.get(id);
    if (!view || view.kind !== 'case') throw new HandoffError('actor.not_found', `no case with id '${id}'`, { caseId: id });
    const ctx = view.context as CaseContext;
    const model = this.#models.get(view.model);
    if (!model) throw new HandoffError('actor.not_found', `no case with id '${id}'`, { caseId: id });
    if (!mayOpen(p, ctx)) {
      const tier = ctx.tiers[ctx.tier - 1];
      throw new HttpError(403, 'auth.forbidden', `case ${id} is at tier ${ctx.tier}${tier ? ` (${tier.name}), which needs the role ${tier.roles.join(' or ')}` : ''}; your roles do not include it`, { caseId: id, rule: 'tier-role' });
    }
    return { view, ctx, model };
  }

  async #caseBody(id: string, p: Principal) {
    const { view, model } = await this.#readCase(id, p);
    const agent = await this.#backend.get((view.context as CaseContext).episodeId);
    const c = caseView(model, view, p, this.#names, agent?.kind === 'agent' ? (agent.context as AgentContext) : undefined);
    const episode = episodeView(agent, model, p.grants[model.name]?.seeSensitive ?? false);
    return { case: c, episode, serverTime: this.#backend.now() };
  }

  async #caseAudit(res: ServerResponse, id: string, p: Principal): Promise<void> {
    const { ctx } = await this.#readCase(id, p);
    const entries = await this.audit.entries([id, ctx.episodeId]);
    sendJson(res, 200, {
      entries: entries.map((e) => ({ seq: e.seq, at: e.at, kind: e.kind, actor: e.actor, by: e.by, byName: this.#names.get(e.by) ?? null, data: e.data, hash: e.hash, prev: e.prev })),
      indexedThrough: this.audit.indexed,
    });
  }

  /** The lineage of the case's episode (`handoff lineage` as JSON), masked like the case page. */
  async #caseLineage(id: string, p: Principal) {
    const { model } = await this.#readCase(id, p);
    const b = this.#backend;
    const lineage = await buildLineage(id, {
      get: (actorId) => b.get(actorId),
      auditOf: (actors) => this.audit.entries(actors, Number.MAX_SAFE_INTEGER),
      ...(b.journal ? { journal: (actorId: string) => b.journal!(actorId) } : {}),
      ...(b.effect ? { effect: (key: string) => b.effect!(key) } : {}),
      ...(b.getMeta
        ? {
            summary: (episodeId: string) => b.getMeta!<CompactionSummary>(summaryKey(episodeId)),
            hold: async (episodeId: string) => (await b.getMeta!<Record<string, LegalHold>>(HOLDS_KEY))?.[episodeId],
          }
        : {}),
    });
    const named = withCompensationTypes(lineage, model.config.actions);
    if (p.grants[model.name]?.seeSensitive) return { lineage: named };
    const keys = (type: string) => new Set(sensitivePaths(model.handlers.actions[type]?.args ?? z.object({})).map((path) => path.split('.').pop()!));
    return { lineage: maskLineage(named, keys, MASK) };
  }

  async #command(req: IncomingMessage, res: ServerResponse, caseId: string, p: Principal): Promise<void> {
    const now = this.#backend.now();
    let type = 'unknown';
    let commandId: string | undefined;
    try {
      const body = await readJson(req, this.#opts.maxBodyBytes ?? 64 * 1024);
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'request.invalid', 'the body must be a JSON object (a reviewer command)');
      const raw = body as Record<string, unknown>;
      if (typeof raw.type === 'string') type = raw.type.slice(0, 64);
      if ('reviewer' in raw) throw new HttpError(400, 'request.reviewer_in_payload', 'do not send a reviewer: the reviewer is the signed-in user of this session', { path: 'reviewer' });
      if (raw.caseId !== undefined && raw.caseId !== caseId) throw new HttpError(400, 'request.invalid', `caseId in the body (${String(raw.caseId)}) differs from the URL (${caseId})`, { path: 'caseId' });
      const { view, ctx, model } = await this.#readCase(caseId, p);
      const grant = p.grants[model.name]!;
      commandId = typeof raw.commandId === 'string' && raw.commandId.length > 0 && raw.commandId.length <= 100 ? `web:${p.id}:${raw.commandId}` : undefined;
      const cmdInput: Record<string, unknown> = { ...raw, caseId, reviewer: { id: p.id, roles: grant.roles }, commandId: commandId ?? raw.commandId };
      if (raw.type === 'handoff.case.modify') {
        if ('plan' in raw) throw new HttpError(400, 'request.invalid', 'send the edited arguments as `actions` ([{ type, args }] for every action of the plan); the planner\'s plan itself cannot be replaced', { path: 'plan' });
        const { actions, forbidden } = unmaskActions(model, ctx.plan, raw.actions, grant.seeSensitive);
        if (forbidden.length)
          throw new HttpError(403, 'auth.sensitive_field', `your roles may not see or change ${forbidden.join(', ')}; leave those fields as they are`, { path: forbidden[0], fields: forbidden });
        cmdInput.actions = actions;
      }
      const cmd = parseContract(ReviewerCommand, cmdInput, 'ReviewerCommand');
      const edited = cmd.type === 'handoff.case.modify' ? model.editActions(ctx.plan, cmd.actions) : null;
      // Authorise before the actor sees it: the rules that forbid (role, separation of duties, four eyes).
      const probe = { type: COMMAND_TYPES[cmd.type]!, reviewer: cmd.reviewer, at: now, ...(cmd.type === 'handoff.case.modify' ? { actions: edited, comment: cmd.comment } : {}), ...('reason' in cmd && cmd.reason ? { reason: cmd.reason } : {}) } as CaseEvent;
      const why = view.status === 'active' ? explainCaseRejection(view.state, ctx, probe) : null;
      if (why?.forbidden) throw new HttpError(403, 'auth.forbidden', `${caseId}: ${why.reason}`, { caseId, rule: why.rule });
      const ack = await this.#backend.command(cmd);
      const fresh = await this.#backend.get(caseId);
      if (fresh && fresh.kind === 'case') this.projection.apply(caseId, fresh.seq, fresh.state, fresh.status, fresh.context as CaseContext);
      const agent = fresh ? await this.#backend.get(ctx.episodeId) : undefined;
      const bodyOut = fresh ? { ack, case: caseView(model, fresh, p, this.#names, agent?.kind === 'agent' ? (agent.context as AgentContext) : undefined), episode: episodeView(agent, model, grant.seeSensitive) } : { ack };
      sendJson(res, 200, bodyOut);
    } catch (err) {
      const { status, body } = errorBody(err);
      const details = err instanceof HandoffError ? err.details : {};
      // Audited before the answer, so an acknowledged refusal is always on record.
      await this.#auditSafe([
        {
          at: now,
          kind: 'command.refused',
          actor: caseId,
          by: p.id,
          data: {
            type,
            status,
            code: body.error.code,
            message: body.error.message.slice(0, 500),
            ...(commandId ? { commandId } : {}),
            ...(typeof details.rule === 'string' ? { rule: details.rule } : {}),
            ...(err instanceof ContractError ? { path: err.path } : {}),
          },
        },
      ]);
      if (status < 500) this.#log?.warn({ refused: { caseId, type, status, code: body.error.code, reviewer: p.id, ...(typeof details.rule === 'string' ? { rule: details.rule } : {}) } }, 'command refused');
      this.#fail(res, err);
    }
  }
}

/** A request path as a route: ids replaced by their parameter name, so the access log carries no case ids or tokens. */
function routeOf(path: string): string {
  return path
    .replace(/^\/api\/cases\/[^/]+/, '/api/cases/:id')
    .replace(/^\/api\/v1\/(episodes|models)\/[^/]+/, '/api/v1/$1/:id')
    .replace(/^\/api\/callbacks\/[^/]+/, '/api/callbacks/:source')
    .replace(/^\/api\/inspect\/actors\/[^/]+/, '/api/inspect/actors/:id')
    .slice(0, 200);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
