import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  API_PREFIX,
  EpisodeListQuery,
  IdempotencyKey,
  MAX_SIGNAL_BATCH,
  SignalBatch,
  SignalSubmission,
  openApiDocument,
  type ApiOperation,
  type ServiceAccountView,
  type SignalAccepted,
  type SignalsAccepted,
} from '../contracts/api-v1.ts';
import { ContractError, HandoffError } from '../contracts/errors.ts';
import { parseContract, toIssues } from '../contracts/parse.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { AuditDraft } from '../base/audit-log.ts';
import { ApiLimits, retryAfterHeader, type ApiLimitsOptions } from './api-limits.ts';
import { episodeBody, episodeUrl, listEpisodes, streamEpisode } from './api-v1-episodes.ts';
import type { ApiV1Runtime } from './api-v1-runtime.ts';
import { episodeIdFor } from '../contracts/ingest.ts';

export type { ApiV1Runtime } from './api-v1-runtime.ts';
/** The episode id of an idempotency key on a model (contracts/ingest.ts; the NATS ingestion uses the same). */
export { episodeIdFor } from '../contracts/ingest.ts';
import { json, pathOf, toHttpError, traceparentOf, urlOf } from './app.ts';
import { HttpError, errorBody, readJson } from '../httpkit/http.ts';
import type { ServiceAccounts } from './service-accounts.ts';
import { RefusalLimiter } from './throttle.ts';

export interface ApiV1Options {
  runtime: ApiV1Runtime;
  accounts: ServiceAccounts;
  log?: Logger;
  /** Largest request body. @default 1 MiB */
  maxBodyBytes?: number;
  /** Per-account rate and the node's in-flight bound (429 past them). */
  limits?: ApiLimitsOptions;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The service account of an `/api/v1` request, once its key is checked. */
    apiAccount: ServiceAccountView | null;
  }
}

type Req<P = Record<string, string>> = FastifyRequest<{ Params: P }>;

/**
 * `/api/v1` (docs/api.md): the versioned API for programs, authenticated with service account keys
 * (`Authorization: Bearer <key>`), in its own Fastify scope on the gateway's server. Request and
 * response bodies are the zod contracts of src/contracts/api-v1.ts, from which `/api/v1/openapi.json`
 * is generated. Every use is audited with the account id; refusals too (rate limited per address).
 * Past the node's in-flight bound or an account's rate, requests get 429 with `Retry-After`.
 */
export class ApiV1 {
  readonly #rt: ApiV1Runtime;
  readonly #accounts: ServiceAccounts;
  readonly #log: Logger | undefined;
  readonly #maxBody: number;
  readonly #openapi: string;
  readonly #refusals = new RefusalLimiter();
  readonly limits: ApiLimits;
  /** Starts in flight by episode id: concurrent submissions of one key wait for the first. */
  readonly #inflight = new Map<string, Promise<boolean>>();
  /** Open event streams, ended on close. */
  readonly #streams = new Set<ServerResponse>();

  constructor(opts: ApiV1Options) {
    this.#rt = opts.runtime;
    this.#accounts = opts.accounts;
    this.#log = opts.log;
    this.#maxBody = opts.maxBodyBytes ?? 1024 * 1024;
    this.#openapi = JSON.stringify(openApiDocument());
    this.limits = new ApiLimits(opts.limits);
  }

  /** Ends the open event streams (the gateway is closing). */
  close(): void {
    for (const res of this.#streams) res.end();
    this.#streams.clear();
  }

  /** The routes, in a scope of `app` with its own hooks and error handler; `clientIp` for the audit of refusals. */
  register(app: FastifyInstance, clientIp: (req: IncomingMessage) => string): void {
    app.register(async (scope) => {
      scope.decorateRequest('apiAccount', null);
      scope.setErrorHandler(async (err, request, reply) => this.#refused(request, reply, err, clientIp(request.raw)));
      scope.addHook('onRequest', async (request, reply) => {
        if (request.routeOptions.config.public) return;
        if (!request.routeOptions.config.stream) {
          this.limits.enter();
          reply.raw.once('close', () => this.limits.release());
        }
        const account = await this.#authenticate(request);
        this.limits.take(account.id);
      });
      scope.get(`${API_PREFIX}/openapi.json`, { config: { public: true } }, async (_request, reply) =>
        reply
          .code(200)
          .headers({ 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-cache' })
          .send(this.#openapi),
      );
      scope.get(`${API_PREFIX}/models`, async (request, reply) =>
        json(reply, 200, this.#listModels(request.apiAccount!)),
      );
      scope.post(`${API_PREFIX}/models/:model/signals`, async (request: Req<{ model: string }>, reply) =>
        this.#submit(request, reply, request.params.model, request.apiAccount!),
      );
      scope.get(`${API_PREFIX}/episodes`, async (request, reply) => {
        const q = parseContract(EpisodeListQuery, Object.fromEntries(urlOf(request).searchParams), 'EpisodeListQuery');
        const account = request.apiAccount!;
        const page = await listEpisodes(this.#rt, account, q);
        await this.#audit([
          {
            at: this.#rt.clock.now(),
            kind: 'api.episodes.listed',
            actor: `account:${account.id}`,
            by: `account:${account.id}`,
            data: { count: page.episodes.length, ...(q.model ? { model: q.model } : {}) },
          },
        ]);
        return json(reply, 200, page);
      });
      scope.get(`${API_PREFIX}/episodes/:id`, async (request: Req<{ id: string }>, reply) => {
        const account = request.apiAccount!;
        const { view, model } = await this.#readable(request.params.id, account);
        const body = await episodeBody(this.#rt, view, model);
        await this.#audit([
          {
            at: this.#rt.clock.now(),
            kind: 'api.episode.read',
            actor: view.id,
            by: `account:${account.id}`,
            data: { model: model.name },
          },
        ]);
        return json(reply, 200, body);
      });
      scope.get(
        `${API_PREFIX}/episodes/:id/events`,
        { config: { stream: true } },
        async (request: Req<{ id: string }>, reply) => {
          const account = request.apiAccount!;
          const { view, model } = await this.#readable(request.params.id, account);
          await this.#audit([
            {
              at: this.#rt.clock.now(),
              kind: 'api.episode.watched',
              actor: view.id,
              by: `account:${account.id}`,
              data: { model: model.name },
            },
          ]);
          reply.hijack();
          await streamEpisode(this.#rt, reply.raw, view, this.#streams);
        },
      );
    });
  }

  /** No route: 405 on a known path (after the key is checked, except the public document), else 404. */
  async notFound(request: FastifyRequest, reply: FastifyReply, ip: string): Promise<FastifyReply> {
    const path = pathOf(request.url).slice(API_PREFIX.length);
    try {
      if (path === '/openapi.json') throw new HttpError(405, 'request.method', 'use GET');
      await this.#authenticate(request);
      if (path === '/models' || path === '/episodes' || /^\/episodes\/[^/]+(\/events)?$/.test(path))
        throw new HttpError(405, 'request.method', 'use GET');
      if (/^\/models\/[^/]+\/signals$/.test(path))
        throw new HttpError(405, 'request.method', 'use POST to submit signals');
      throw new HttpError(404, 'request.not_found', `no API at ${pathOf(request.url)}`);
    } catch (err) {
      return this.#refused(request, reply, err, ip);
    }
  }

  async #authenticate(request: FastifyRequest): Promise<ServiceAccountView> {
    const auth = await this.#accounts.authenticate(request.headers.authorization);
    if (!auth.ok) {
      const message =
        auth.code === 'auth.required'
          ? 'this API needs a service account key: Authorization: Bearer <key> (handoff accounts create)'
          : auth.code === 'auth.key_revoked'
            ? 'this key was revoked'
            : 'the key is not valid';
      throw new HttpError(401, auth.code, message, auth.accountId ? { accountId: auth.accountId } : {});
    }
    request.apiAccount = auth.account;
    request.who = { account: auth.account.id };
    return auth.account;
  }

  /** Answers a refusal: 401 and 403 audited first (rate limited per address), 429 with Retry-After, 5xx logged. */
  async #refused(request: FastifyRequest, reply: FastifyReply, err: unknown, ip: string): Promise<FastifyReply> {
    const e = toHttpError(err);
    const { status, body } = errorBody(e);
    const method = request.method;
    if (status === 401 || status === 403) {
      const account = request.apiAccount;
      const who =
        account?.id ??
        (e instanceof HandoffError && typeof e.details.accountId === 'string' ? e.details.accountId : null);
      const suppressed = this.#refusals.admit(`${status}|${ip}`);
      if (suppressed !== null)
        await this.#audit([
          {
            at: this.#rt.clock.now(),
            kind: 'api.refused',
            actor: who ? `account:${who}` : 'gateway',
            by: who ? `account:${who}` : 'anonymous',
            data: {
              ip,
              method: method.slice(0, 10),
              path: pathOf(request.url).slice(0, 200),
              status,
              code: body.error.code,
              ...(suppressed ? { suppressed } : {}),
            },
          },
        ]);
    }
    // A client that went away mid-body is not a server failure.
    if (status >= 500 && (err as { code?: unknown }).code !== 'ECONNRESET')
      this.#log?.error({ err }, 'api request failed');
    const headers = status === 429 && e instanceof HandoffError ? retryAfterHeader(e.details) : {};
    if (reply.sent || reply.raw.headersSent) {
      if (!reply.raw.writableEnded) reply.raw.end();
      return reply;
    }
    return json(reply, status, body, headers);
  }

  #model(name: string): LoadedModel {
    const model = this.#rt.models.get(name);
    if (!model)
      throw new HttpError(404, 'model.not_found', `no model '${name.slice(0, 100)}' on this node`, {
        model: name.slice(0, 100),
      });
    return model;
  }

  #require(account: ServiceAccountView, model: string, op: ApiOperation): void {
    if (!account.scopes[model]?.includes(op))
      throw new HttpError(403, 'auth.forbidden', `account ${account.id} may not ${op} on model ${model}`, {
        accountId: account.id,
        model,
        operation: op,
      });
  }

  #listModels(account: ServiceAccountView) {
    const models = Object.entries(account.scopes)
      .filter(([name]) => this.#rt.models.has(name))
      .map(([name, operations]) => {
        const m = this.#rt.models.get(name)!;
        return { name, description: m.config.description, operations, signalSchema: signalSchema(m) };
      });
    return { models };
  }

  /** An episode this account may read: another model's is as invisible as a missing one (404). */
  async #readable(id: string, account: ServiceAccountView) {
    const readable = Object.entries(account.scopes).filter(([, ops]) => ops.includes('episodes:read'));
    if (readable.length === 0)
      throw new HttpError(403, 'auth.forbidden', `account ${account.id} may not episodes:read on any model`, {
        accountId: account.id,
        operation: 'episodes:read',
      });
    const view = id.length <= 200 ? await this.#rt.get(id) : undefined;
    const model = view ? this.#rt.models.get(view.model) : undefined;
    if (!view || view.kind !== 'agent' || !model || !account.scopes[model.name]?.includes('episodes:read'))
      throw new HttpError(404, 'episode.not_found', `no episode '${id.slice(0, 200)}' readable by this account`, {
        episodeId: id.slice(0, 200),
      });
    return { view, model };
  }

  async #submit(
    request: FastifyRequest,
    reply: FastifyReply,
    modelName: string,
    account: ServiceAccountView,
  ): Promise<FastifyReply> {
    const req = request.raw;
    const model = this.#model(modelName);
    this.#require(account, model.name, 'signals:submit');
    const headerKey = req.headers['idempotency-key'];
    if (Array.isArray(headerKey))
      throw new HttpError(400, 'request.invalid', 'send one Idempotency-Key header', { path: 'Idempotency-Key' });
    if (headerKey !== undefined) {
      const ok = IdempotencyKey.safeParse(headerKey);
      if (!ok.success) throw new ContractError('Idempotency-Key', toIssues(ok.error, 'Idempotency-Key'));
    }
    // The episode joins the request's server span (which continues the caller's traceparent).
    const traceparent = traceparentOf(request);
    const body = await readJson(req, this.#maxBody);
    const batch = !!body && typeof body === 'object' && 'signals' in body;
    if (
      batch &&
      Array.isArray((body as { signals: unknown }).signals) &&
      (body as { signals: unknown[] }).signals.length > MAX_SIGNAL_BATCH
    )
      throw new HttpError(413, 'request.batch_too_large', `a batch holds at most ${MAX_SIGNAL_BATCH} signals`, {
        path: 'signals',
        limit: MAX_SIGNAL_BATCH,
      });
    const items = batch
      ? parseContract(SignalBatch, body, 'SignalBatch').signals
      : [parseContract(SignalSubmission, body, 'SignalSubmission')];
    // Every signal is checked before any starts: a 400 starts nothing.
    const work = items.map((item, i) => {
      const prefix = batch ? `signals.${i}` : '';
      const key =
        item.idempotencyKey ?? (headerKey !== undefined ? (batch ? `${headerKey}/${i}` : headerKey) : undefined);
      if (key === undefined)
        throw new HttpError(
          400,
          'request.idempotency_key_required',
          'send an Idempotency-Key header or an idempotencyKey in the body: the same key never starts two episodes',
          { path: [prefix, 'idempotencyKey'].filter(Boolean).join('.') },
        );
      const signal = parseContract(
        model.handlers.signal,
        item.signal,
        `${model.name}.signal`,
        [prefix, 'signal'].filter(Boolean).join('.'),
      );
      return { key, signal, episodeId: episodeIdFor(model.name, key) };
    });
    const keys = new Set<string>();
    for (const [i, w] of work.entries()) {
      if (keys.has(w.key))
        throw new HttpError(400, 'request.duplicate_key', `idempotency key '${w.key}' appears twice in the batch`, {
          path: `signals.${i}.idempotencyKey`,
        });
      keys.add(w.key);
    }
    const accepted: SignalAccepted[] = [];
    const drafts: AuditDraft[] = [];
    try {
      for (const w of work) {
        const created = await this.#startOnce(model.name, w.episodeId, w.signal, traceparent);
        accepted.push({
          episodeId: w.episodeId,
          idempotencyKey: w.key,
          created,
          statusUrl: episodeUrl(w.episodeId),
        });
        drafts.push({
          at: this.#rt.clock.now(),
          kind: 'api.signal.accepted',
          actor: w.episodeId,
          by: `account:${account.id}`,
          data: { model: model.name, idempotencyKey: w.key.slice(0, 200), created },
        });
      }
    } finally {
      // What started is on record even when a later signal of the batch failed
      // (the client retries the batch with the same keys).
      if (drafts.length) await this.#audit(drafts);
    }
    if (accepted.length === 1) request.span?.setAttribute('handoff.episode.id', accepted[0]!.episodeId);
    const out: SignalsAccepted = { model: model.name, accepted };
    return json(reply, 202, out, batch ? {} : { Location: accepted[0]!.statusUrl });
  }

  /** Starts the episode unless it exists: true when this call started it. */
  async #startOnce(
    model: string,
    episodeId: string,
    signal: unknown,
    traceparent: string | undefined,
  ): Promise<boolean> {
    for (;;) {
      const running = this.#inflight.get(episodeId);
      if (!running) break;
      // Another request with this key is starting it: whatever it did, the episode exists
      // or that start failed (then try).
      if (await running.catch(() => false)) return false;
    }
    const start = (async () => {
      try {
        await this.#rt.startEpisode(model, signal, { episodeId, ...(traceparent ? { traceparent } : {}) });
        return true;
      } catch (err) {
        if (err instanceof HandoffError && err.code === 'actor.exists') return false;
        throw err;
      }
    })();
    this.#inflight.set(episodeId, start);
    try {
      return await start;
    } finally {
      this.#inflight.delete(episodeId);
    }
  }

  async #audit(drafts: AuditDraft[]): Promise<void> {
    try {
      await this.#rt.audit(drafts);
    } catch (err) {
      this.#log?.error({ err }, 'audit append failed');
    }
  }
}

const schemaCache = new WeakMap<LoadedModel, unknown>();
/** A model's signal schema as JSON Schema (draft 2020-12). */
export function signalSchema(model: LoadedModel): unknown {
  let s = schemaCache.get(model);
  if (s === undefined) {
    s = z.toJSONSchema(model.handlers.signal, { io: 'input', unrepresentable: 'any' });
    schemaCache.set(model, s);
  }
  return s;
}
