import type { IncomingMessage } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { parseTraceparent } from '../contracts/envelope.ts';
import { HandoffError } from '../contracts/errors.ts';
import type { GatewayTls } from '../security/tls-options.ts';
import { HttpError, SECURITY_HEADERS, errorBody } from '../httpkit/http.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request, once known (the access log): a reviewer's id or a service account's. */
    who: { reviewer?: string; account?: string } | null;
    /** The HTTP server span of an API request (`/api/...`), when one was started. */
    span: Span | null;
  }
  interface FastifyContextConfig {
    /** Served without a session or key (sign-in, the OpenAPI document, signed callbacks). */
    public?: boolean;
    /** A long-lived stream: not counted against the in-flight bound. */
    stream?: boolean;
  }
}

export interface AppOptions {
  tls: GatewayTls | null;
  /** The Strict-Transport-Security value under TLS. */
  hsts: string | null;
  log: Logger | undefined;
  /** The client's address (the peer, or a trusted proxy's X-Forwarded-For). */
  clientIp: (req: IncomingMessage) => string;
  /** Where HTTP server spans go. @default the global tracer provider's (a no-op until telemetry registers one) */
  tracer?: Tracer;
}

/**
 * The gateway's Fastify instance: one server (HTTP, or HTTPS with the gateway's certificate) for the
 * console, the inspector, the signed callbacks and `/api/v1`. What every request gets is here: the
 * security headers, the access log, an HTTP server span for API requests, and errors answered as
 * `{ error: { status, code, message, details? } }` (docs/api.md).
 *
 * Bodies are not read by a Fastify content-type parser: each route reads its own with `readJson` /
 * `readBody` (http.ts) once the caller is authenticated, with its own size limit, so an anonymous
 * caller never makes the server buffer a body, and signed callbacks verify the exact bytes.
 */
export function createApp(opts: AppOptions): FastifyInstance {
  const base = {
    logger: false,
    requestTimeout: 30_000,
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 500 },
    return503OnClosing: true,
    // Fastify's own routing errors (a URL it cannot decode) in the gateway's error shape.
    frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      const e =
        err.code === 'FST_ERR_BAD_URL'
          ? new HttpError(400, 'request.bad_url', 'the URL cannot be parsed')
          : toHttpError(err);
      // Answered before the onRequest hooks: the same headers as every other answer.
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.raw.setHeader(k, v);
      if (opts.hsts) reply.raw.setHeader('Strict-Transport-Security', opts.hsts);
      sendError(reply, e);
    },
  };
  const app = (opts.tls
    ? Fastify({ ...base, https: { cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' } })
    : Fastify(base)) as unknown as FastifyInstance;
  app.server.headersTimeout = 15_000;
  app.decorateRequest('who', null);
  app.decorateRequest('span', null);
  app.removeAllContentTypeParsers();
  // Any content type: the body stays unread on the request for the route (see above).
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  const tracer = opts.tracer ?? trace.getTracer('handoff.gateway');
  const scheme = opts.tls ? 'https' : 'http';
  app.addHook('onRequest', async (request, reply) => {
    // On the raw response, so routes that write it themselves (signed callbacks) carry them too.
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.raw.setHeader(k, v);
    if (opts.hsts) reply.raw.setHeader('Strict-Transport-Security', opts.hsts);
    const path = pathOf(request.url);
    if (path.startsWith('/api/')) request.span = startServerSpan(tracer, request, path, scheme, opts.clientIp);
  });
  app.addHook('onResponse', async (request, reply) => {
    const span = request.span;
    if (span) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (request.who?.account) span.setAttribute('handoff.account.id', request.who.account);
      if (reply.statusCode >= 500) {
        span.setAttribute('error.type', String(reply.statusCode));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    }
    const log = opts.log;
    if (!log?.isLevelEnabled('info')) return;
    // The access log: method, route (ids replaced), status, duration, who; never a cookie, key, token or query.
    log.info(
      {
        access: {
          method: request.method,
          route: routeOf(request),
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 10) / 10,
          ...(request.who?.reviewer ? { reviewer: request.who.reviewer } : {}),
          ...(request.who?.account ? { account: request.who.account } : {}),
          ip: opts.clientIp(request.raw),
        },
      },
      'http request',
    );
  });
  return app;
}

/** One OpenTelemetry HTTP server span (semantic conventions), continuing an incoming `traceparent`. */
function startServerSpan(
  tracer: Tracer,
  request: FastifyRequest,
  path: string,
  scheme: string,
  clientIp: (req: IncomingMessage) => string,
): Span {
  const header = request.headers.traceparent;
  const parent = parseTraceparent(typeof header === 'string' ? header : undefined);
  const ctx = parent
    ? trace.setSpanContext(ROOT_CONTEXT, {
        traceId: parent.traceId,
        spanId: parent.spanId,
        traceFlags: parent.sampled ? 1 : 0,
        isRemote: true,
      })
    : ROOT_CONTEXT;
  const route = request.routeOptions.url;
  const host = request.headers.host ?? '';
  const port = Number(/:(\d+)$/.exec(host)?.[1] ?? (scheme === 'https' ? 443 : 80));
  const ua = request.headers['user-agent'];
  return tracer.startSpan(
    route ? `${request.method} ${route}` : request.method,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': request.method,
        ...(route ? { 'http.route': route } : {}),
        'url.path': path.slice(0, 200),
        'url.scheme': scheme,
        'server.address': host.replace(/:\d+$/, '').slice(0, 200),
        'server.port': port,
        'client.address': clientIp(request.raw),
        'network.protocol.version': request.raw.httpVersion,
        ...(typeof ua === 'string' ? { 'user_agent.original': ua.slice(0, 300) } : {}),
      },
    },
    ctx,
  );
}

/** The W3C traceparent of a request's server span, for work it starts (an episode joins the request's trace). */
export function traceparentOf(request: FastifyRequest): string | undefined {
  const span = request.span;
  if (span?.isRecording()) {
    const sc = span.spanContext();
    return `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`;
  }
  const header = request.headers.traceparent;
  return typeof header === 'string' ? header : undefined;
}

export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** A request's URL as a URL (its query parameters), never failing. */
export function urlOf(request: FastifyRequest): URL {
  try {
    return new URL(request.url, 'http://x');
  } catch {
    return new URL('http://x/');
  }
}

/** The route of the access log: the matched route's template (ids are parameters), else the path with ids replaced. */
function routeOf(request: FastifyRequest): string {
  const route = request.routeOptions.url;
  if (route && route !== '*') return route;
  return pathOf(request.url)
    .replace(/^\/api\/cases\/[^/]+/, '/api/cases/:id')
    .replace(/^\/api\/v1\/(episodes|models)\/[^/]+/, '/api/v1/$1/:id')
    .replace(/^\/api\/callbacks\/[^/]+/, '/api/callbacks/:source')
    .replace(/^\/api\/inspect\/actors\/[^/]+/, '/api/inspect/actors/:id')
    .slice(0, 200);
}

/** Fastify's own errors (FST_*) as the gateway's typed errors; the gateway's pass through. */
export function toHttpError(err: unknown): unknown {
  if (err instanceof HandoffError) return err;
  const fe = err as Partial<FastifyError> | null;
  if (
    fe &&
    typeof fe.code === 'string' &&
    fe.code.startsWith('FST_') &&
    typeof fe.statusCode === 'number' &&
    fe.statusCode < 500
  ) {
    if (fe.statusCode === 413) return new HttpError(413, 'request.too_large', 'the body exceeds the size limit');
    if (fe.statusCode === 415)
      return new HttpError(415, 'request.unsupported_media_type', 'send the body as application/json');
    return new HttpError(fe.statusCode, 'request.invalid', fe.message ?? 'bad request');
  }
  return err;
}

/** Answers an error (unless the answer has begun): its status and `{ error }` body. */
export function sendError(
  reply: FastifyReply,
  err: unknown,
  headers: Record<string, string> = {},
): { status: number; code: string; message: string } {
  const { status, body } = errorBody(toHttpError(err));
  if (!reply.sent && !reply.raw.headersSent)
    void reply
      .code(status)
      .headers({ 'Cache-Control': 'no-store', ...headers })
      .send(body);
  else if (!reply.raw.writableEnded) reply.raw.end();
  return { status, code: body.error.code, message: body.error.message };
}

/** Answers JSON (never cached). */
export function json(
  reply: FastifyReply,
  status: number,
  body: unknown,
  headers: Record<string, string | string[]> = {},
): FastifyReply {
  return reply
    .code(status)
    .headers({ 'Cache-Control': 'no-store', ...headers })
    .type('application/json; charset=utf-8')
    .send(body);
}
