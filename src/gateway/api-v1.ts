import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  API_PREFIX,
  ApiEpisode,
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
import type { AgentContext } from '../machines/agent.ts';
import type { CaseContext } from '../machines/review-case.ts';
import type { LoadedModel } from '../models/loader.ts';
import type { AuditDraft } from '../runtime/audit-log.ts';
import type { Ack, ActorView, TransitionNotice } from '../runtime/runtime.ts';
import { episodeView } from './case-view.ts';
import { HttpError, errorBody, readJson, sendJson } from './http.ts';
import type { ServiceAccounts } from './service-accounts.ts';
import { RefusalLimiter } from './throttle.ts';

/** What `/api/v1` needs of the runtime (the embedded `Runtime` has all of it). */
export interface ApiV1Runtime {
  readonly models: ReadonlyMap<string, LoadedModel>;
  startEpisode(model: string, signal: unknown, opts: { episodeId: string; traceparent?: string }): Promise<Ack>;
  get(id: string): Promise<ActorView | undefined>;
  audit(drafts: AuditDraft[]): Promise<void>;
  readonly clock: { now(): number };
  /**
   * Episodes (agent actors, finished ones included) in ascending id order, only those whose id sorts
   * after `after`: `GET /api/v1/episodes` reads it lazily and stops at a page.
   */
  episodes(after?: string): AsyncIterable<ActorView>;
  /** Every durable agent transition (the outcome stream `GET /api/v1/episodes/{id}/events`); returns the unsubscribe. */
  onAgent(listener: (n: TransitionNotice) => void): () => void;
}

export interface ApiV1Options {
  runtime: ApiV1Runtime;
  accounts: ServiceAccounts;
  log?: Logger;
  /** Largest request body. @default 1 MiB */
  maxBodyBytes?: number;
}

/**
 * The episode id of an idempotency key on a model: a hash of both, so a key sent again (after a
 * timeout, a crash, a restart) names the same episode, and the runtime's "actor exists" check makes
 * the start happen at most once. The key space is per model, not per account.
 */
export function episodeIdFor(model: string, key: string): string {
  return `sig-${createHash('sha256').update(`${model}\n${key}`).digest('hex').slice(0, 32)}`;
}

/**
 * `/api/v1` (docs/api.md): the versioned API for programs, authenticated with service account keys
 * (`Authorization: Bearer <key>`), on the gateway's own server and router. Request and response
 * bodies are the zod contracts of src/contracts/api-v1.ts, from which `/api/v1/openapi.json` is
 * generated. Every use is audited with the account id; refusals too (rate limited per address).
 */
export class ApiV1 {
  readonly #rt: ApiV1Runtime;
  readonly #accounts: ServiceAccounts;
  readonly #log: Logger | undefined;
  readonly #maxBody: number;
  readonly #openapi: string;
  readonly #refusals = new RefusalLimiter();
  /** Starts in flight by episode id: concurrent submissions of one key wait for the first. */
  readonly #inflight = new Map<string, Promise<boolean>>();

  constructor(opts: ApiV1Options) {
    this.#rt = opts.runtime;
    this.#accounts = opts.accounts;
    this.#log = opts.log;
    this.#maxBody = opts.maxBodyBytes ?? 1024 * 1024;
    this.#openapi = JSON.stringify(openApiDocument());
  }

  /** Handles a request under `/api/v1/`; `ip` is the client address (for the audit of refusals). */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL, ip: string): Promise<void> {
    const path = url.pathname.slice(API_PREFIX.length);
    const method = req.method ?? 'GET';
    let account: ServiceAccountView | null = null;
    try {
      if (path === '/openapi.json') {
        if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'request.method', 'use GET');
        res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-cache', 'Content-Length': Buffer.byteLength(this.#openapi) });
        res.end(this.#openapi);
        return;
      }
      const auth = await this.#accounts.authenticate(req.headers.authorization);
      if (!auth.ok) {
        const message =
          auth.code === 'auth.required'
            ? 'this API needs a service account key: Authorization: Bearer <key> (handoff accounts create)'
            : auth.code === 'auth.key_revoked'
              ? 'this key was revoked'
              : 'the key is not valid';
        throw new HttpError(401, auth.code, message, auth.accountId ? { accountId: auth.accountId } : {});
      }
      account = auth.account;
      if (path === '/models') {
        if (method !== 'GET') throw new HttpError(405, 'request.method', 'use GET');
        return this.#listModels(res, account);
      }
      const signals = /^\/models\/([^/]+)\/signals$/.exec(path);
      if (signals) {
        if (method !== 'POST') throw new HttpError(405, 'request.method', 'use POST to submit signals');
        return await this.#submit(req, res, decode(signals[1]!), account);
      }
      const episode = /^\/episodes\/([^/]+)$/.exec(path);
      if (episode) {
        if (method !== 'GET') throw new HttpError(405, 'request.method', 'use GET');
        return await this.#episode(res, decode(episode[1]!), account);
      }
      throw new HttpError(404, 'request.not_found', `no API at ${url.pathname}`);
    } catch (err) {
      const { status, body } = errorBody(err);
      if (status === 401 || status === 403) {
        const who = account?.id ?? (err instanceof HandoffError && typeof err.details.accountId === 'string' ? err.details.accountId : null);
        const suppressed = this.#refusals.admit(`${status}|${ip}`);
        if (suppressed !== null)
          await this.#audit([
            {
              at: this.#rt.clock.now(),
              kind: 'api.refused',
              actor: who ? `account:${who}` : 'gateway',
              by: who ? `account:${who}` : 'anonymous',
              data: { ip, method: method.slice(0, 10), path: url.pathname.slice(0, 200), status, code: body.error.code, ...(suppressed ? { suppressed } : {}) },
            },
          ]);
      }
      if (status >= 500) this.#log?.error({ err }, 'api request failed');
      if (!res.headersSent) sendJson(res, status, body);
      else res.end();
    }
  }

  #model(name: string): LoadedModel {
    const model = this.#rt.models.get(name);
    if (!model) throw new HttpError(404, 'model.not_found', `no model '${name.slice(0, 100)}' on this node`, { model: name.slice(0, 100) });
    return model;
  }

  #require(account: ServiceAccountView, model: string, op: ApiOperation): void {
    if (!account.scopes[model]?.includes(op)) throw new HttpError(403, 'auth.forbidden', `account ${account.id} may not ${op} on model ${model}`, { accountId: account.id, model, operation: op });
  }

  #listModels(res: ServerResponse, account: ServiceAccountView): void {
    const models = Object.entries(account.scopes)
      .filter(([name]) => this.#rt.models.has(name))
      .map(([name, operations]) => {
        const m = this.#rt.models.get(name)!;
        return { name, description: m.config.description, operations, signalSchema: signalSchema(m) };
      });
    sendJson(res, 200, { models });
  }

  async #submit(req: IncomingMessage, res: ServerResponse, modelName: string, account: ServiceAccountView): Promise<void> {
    const model = this.#model(modelName);
    this.#require(account, model.name, 'signals:submit');
    const headerKey = req.headers['idempotency-key'];
    if (Array.isArray(headerKey)) throw new HttpError(400, 'request.invalid', 'send one Idempotency-Key header', { path: 'Idempotency-Key' });
    if (headerKey !== undefined) {
      const ok = IdempotencyKey.safeParse(headerKey);
      if (!ok.success) throw new ContractError('Idempotency-Key', toIssues(ok.error, 'Idempotency-Key'));
    }
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
    const body = await readJson(req, this.#maxBody);
    const batch = !!body && typeof body === 'object' && 'signals' in body;
    if (batch && Array.isArray((body as { signals: unknown }).signals) && (body as { signals: unknown[] }).signals.length > MAX_SIGNAL_BATCH)
      throw new HttpError(413, 'request.batch_too_large', `a batch holds at most ${MAX_SIGNAL_BATCH} signals`, { path: 'signals', limit: MAX_SIGNAL_BATCH });
    const items = batch ? parseContract(SignalBatch, body, 'SignalBatch').signals : [parseContract(SignalSubmission, body, 'SignalSubmission')];
    // Every signal is checked before any starts: a 400 starts nothing.
    const work = items.map((item, i) => {
      const prefix = batch ? `signals.${i}` : '';
      const key = item.idempotencyKey ?? (headerKey !== undefined ? (batch ? `${headerKey}/${i}` : headerKey) : undefined);
      if (key === undefined)
        throw new HttpError(400, 'request.idempotency_key_required', 'send an Idempotency-Key header or an idempotencyKey in the body: the same key never starts two episodes', { path: [prefix, 'idempotencyKey'].filter(Boolean).join('.') });
      const signal = parseContract(model.handlers.signal, item.signal, `${model.name}.signal`, [prefix, 'signal'].filter(Boolean).join('.'));
      return { key, signal, episodeId: episodeIdFor(model.name, key) };
    });
    const keys = new Set<string>();
    for (const [i, w] of work.entries()) {
      if (keys.has(w.key)) throw new HttpError(400, 'request.duplicate_key', `idempotency key '${w.key}' appears twice in the batch`, { path: `signals.${i}.idempotencyKey` });
      keys.add(w.key);
    }
    const accepted: SignalAccepted[] = [];
    const drafts: AuditDraft[] = [];
    try {
      for (const w of work) {
        const created = await this.#startOnce(model.name, w.episodeId, w.signal, traceparent);
        accepted.push({ episodeId: w.episodeId, idempotencyKey: w.key, created, statusUrl: `${API_PREFIX}/episodes/${encodeURIComponent(w.episodeId)}` });
        drafts.push({ at: this.#rt.clock.now(), kind: 'api.signal.accepted', actor: w.episodeId, by: `account:${account.id}`, data: { model: model.name, idempotencyKey: w.key.slice(0, 200), created } });
      }
    } finally {
      // What started is on record even when a later signal of the batch failed (the client retries the batch with the same keys).
      if (drafts.length) await this.#audit(drafts);
    }
    const out: SignalsAccepted = { model: model.name, accepted };
    sendJson(res, 202, out, batch ? {} : { Location: accepted[0]!.statusUrl });
  }

  /** Starts the episode unless it exists: true when this call started it. */
  async #startOnce(model: string, episodeId: string, signal: unknown, traceparent: string | undefined): Promise<boolean> {
    for (;;) {
      const running = this.#inflight.get(episodeId);
      if (!running) break;
      // Another request with this key is starting it: whatever it did, the episode exists or that start failed (then try).
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

  async #episode(res: ServerResponse, id: string, account: ServiceAccountView): Promise<void> {
    const readable = Object.entries(account.scopes).filter(([, ops]) => ops.includes('episodes:read'));
    if (readable.length === 0) throw new HttpError(403, 'auth.forbidden', `account ${account.id} may not episodes:read on any model`, { accountId: account.id, operation: 'episodes:read' });
    const view = id.length <= 200 ? await this.#rt.get(id) : undefined;
    const model = view ? this.#rt.models.get(view.model) : undefined;
    // Another model's episode is as invisible as a missing one: its existence is not this account's business.
    if (!view || view.kind !== 'agent' || !model || !account.scopes[model.name]?.includes('episodes:read'))
      throw new HttpError(404, 'episode.not_found', `no episode '${id.slice(0, 200)}' readable by this account`, { episodeId: id.slice(0, 200) });
    const a = view.context as AgentContext;
    const ev = episodeView(view, model, false)!;
    const cases = await Promise.all(
      a.caseIds.map(async (caseId) => {
        const c = await this.#rt.get(caseId);
        const ctx = c?.kind === 'case' ? (c.context as CaseContext) : undefined;
        return { id: caseId, state: c?.state ?? null, status: c?.status ?? null, tier: ctx?.tier ?? null, outcome: ctx?.resolution?.outcome ?? null };
      }),
    );
    const d = a.decision;
    const body: ApiEpisode = {
      id: view.id,
      model: view.model,
      state: view.state,
      status: view.status,
      outcome: a.outcome,
      resolution: a.resolution,
      decision: d ? { outcome: d.outcome, ruleId: d.ruleId, tier: d.tier, riskScore: d.riskScore, reasons: d.reasons, policyVersion: d.policyVersion } : null,
      actions: ev.steps.map((s) => ({ index: s.index, type: s.type, status: s.status, result: s.result })),
      cases,
      error: ev.error,
      traceId: a.trace?.traceId ?? null,
      startedAt: a.startedAt,
      endedAt: a.endedAt,
      serverTime: this.#rt.clock.now(),
    };
    await this.#audit([{ at: this.#rt.clock.now(), kind: 'api.episode.read', actor: view.id, by: `account:${account.id}`, data: { model: model.name } }]);
    sendJson(res, 200, body);
  }

  async #audit(drafts: AuditDraft[]): Promise<void> {
    try {
      await this.#rt.audit(drafts);
    } catch (err) {
      this.#log?.error({ err }, 'audit append failed');
    }
  }
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
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
