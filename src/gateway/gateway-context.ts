import type { IncomingMessage } from 'node:http';
import type { Tracer } from '@opentelemetry/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { InspectorBackend } from '../inspect/backend.ts';
import type { InspectorRoutes } from '../inspect/http.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { CallbackEndpoint, CallbackEndpointOptions } from './callbacks.ts';
import type { AuditDraft } from '../base/audit-log.ts';
import type { GatewayTls } from '../security/tls-options.ts';
import type { ApiV1 } from './api-v1.ts';
import type { AuditIndex } from '../lineage/audit-index.ts';
import type { Directory, Session, SessionOptions, Sessions } from '../httpkit/auth.ts';
import type { GatewayBackend } from './backend.ts';
import { HttpError } from '../httpkit/http.ts';
import type { Metrics } from './metrics.ts';
import type { OidcConfig, OidcSignIn } from './oidc.ts';
import type { QueueProjection } from './projection.ts';
import type { RefusalLimiter, SignInThrottle, SignInThrottleOptions } from './throttle.ts';

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
  /** Where the HTTP server spans of API requests go. @default the global tracer provider (set by `ProcessTelemetry`) */
  tracer?: Tracer;
}

/** The session cookie's name. */
export const COOKIE = 'handoff_session';

declare module 'fastify' {
  interface FastifyRequest {
    /** The console session of a request under `/api/` (set by the console API's onRequest hook). */
    consoleSession: Session | null;
  }
}

/**
 * What the route modules (console-api.ts, case-routes.ts, oidc-routes.ts) use of the gateway
 * (server.ts implements it): its parts, and the checks and audit every route shares.
 */
export interface GatewayContext {
  readonly backend: GatewayBackend;
  readonly opts: GatewayOptions;
  readonly models: Map<string, LoadedModel>;
  /** Reviewer id → display name. */
  readonly names: Map<string, string>;
  readonly log: Logger | undefined;
  readonly inspector: InspectorRoutes | null;
  readonly throttle: SignInThrottle;
  readonly oidcStarts: RefusalLimiter;
  readonly sessions: Sessions;
  readonly directory: Directory;
  readonly oidc: OidcSignIn | null;
  readonly callbacks: CallbackEndpoint;
  readonly projection: QueueProjection;
  readonly metrics: Metrics;
  readonly audit: AuditIndex;
  /** The session cookie (or its removal with max age 0). */
  cookie(token: string, maxAgeS: number): string;
  /** The request's session, or 401. */
  session(request: FastifyRequest): Promise<Session>;
  /** Mutations: same origin, and the session's CSRF token in X-CSRF-Token (403 otherwise). */
  checkMutation(req: IncomingMessage, session: Session): void;
  /** The client's address: the peer, or what a trusted proxy says in X-Forwarded-For. */
  ip(req: IncomingMessage): string;
  /** Audits a refusal, rate limited per kind and client address. */
  auditRefusal(
    kind: string,
    ip: string,
    draft: { actor: string; by: string; data: Record<string, unknown> },
  ): Promise<void>;
  auditSafe(drafts: AuditDraft[]): Promise<void>;
  /** Audits a refused console API request (401, 403) before the answer. */
  auditApiRefusal(request: FastifyRequest, err: unknown): Promise<void>;
  /** Answers an error; a 5xx is logged. */
  fail(reply: FastifyReply, err: unknown): FastifyReply;
}

/** The session of a request of the console API (its hook has checked it). */
export function sessionOf(request: FastifyRequest): Session {
  if (!request.consoleSession) throw new HttpError(401, 'auth.required', 'sign in first: this API needs a session');
  return request.consoleSession;
}

export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
