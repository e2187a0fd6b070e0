/**
 * `@handoff-hitl/runtime/client`: programs talking to a running Handoff (docs/api.md, "The typed client").
 *
 * - {@link ApiClient}: the `/api/v1` HTTP API with a service account key: submit signals (one or a
 *   batch, with idempotency keys), read episodes, wait for an outcome.
 * - {@link NatsSignalsClient}: signals over NATS (`handoff.<ns>.signals.<model>`, `Nats-Msg-Id` as the
 *   key) on a connection you open (`@nats-io/transport-node`), and the episode's notices.
 * - {@link HandoffClient}: reviewer commands to whichever node hosts a case, over any transport.
 *
 * Bodies are the zod contracts of the API (src/contracts/api-v1.ts): answers are parsed with them, and
 * every failure is an {@link ApiClientError} with the API's stable `code`.
 */
import type { z } from 'zod';
import {
  ApiEpisode,
  ApiEpisodeEvent,
  ApiEpisodePage,
  ApiModels,
  SignalsAccepted,
  type ApiEpisodeSummary,
  type EpisodeListQuery,
  type SignalAccepted,
} from './contracts/api-v1.ts';
import { episodeIdFor, signalRefusedSubject, signalSubject, SignalRefusal } from './contracts/ingest.ts';
import type { TransitionNotice } from './runtime/runtime.ts';

export { HandoffClient } from './transport/client.ts';
export { subjects, type Transport, type Msg, type Subscription } from './transport/transport.ts';
export type { Ack } from './contracts/ack.ts';
export { episodeIdFor, signalSubject, signalRefusedSubject } from './contracts/ingest.ts';
export type {
  ApiEpisode,
  ApiEpisodeEvent,
  ApiEpisodePage,
  ApiEpisodeSummary,
  SignalAccepted,
  SignalsAccepted,
} from './contracts/api-v1.ts';

/** The filters of {@link ApiClient.episodes} (`GET /api/v1/episodes`). */
export type EpisodeQuery = z.input<typeof EpisodeListQuery>;
export type { SignalRefusal } from './contracts/ingest.ts';
export type { TransitionNotice } from './runtime/runtime.ts';

/**
 * A refusal or failure, typed: `status` (HTTP status; 400 for a refused NATS signal, 0 when no answer
 * came), `code` (the API's stable code: `contract.invalid`, `auth.key_revoked`, `episode.not_found`,
 * `client.timeout`, ...) and `details` (for `contract.invalid`, `details.path` names the field).
 */
export class ApiClientError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;
  /** Seconds to wait before a retry, when the server said (`Retry-After`). */
  readonly retryAfter: number | undefined;
  constructor(
    status: number,
    code: string,
    message: string,
    details: Record<string, unknown> = {},
    retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiClientError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
  /** Worth retrying with the same idempotency key (429, 503, no answer). */
  get retryable(): boolean {
    return this.status === 429 || this.status === 503 || this.status === 0;
  }
}

export interface SubmitOptions {
  /** The idempotency key: the same key on the same model never starts two episodes. */
  idempotencyKey: string;
  /** W3C trace context: the episode's trace continues it. */
  traceparent?: string;
}

export interface WaitOptions {
  /** @default 60_000 */
  timeoutMs?: number;
  /** Between two reads. @default 250 */
  intervalMs?: number;
  /** What to wait for. @default the episode has an outcome */
  until?: (episode: ApiEpisode) => boolean;
}

export interface ApiClientOptions {
  /** Where the gateway listens, e.g. `http://127.0.0.1:7400`. */
  baseUrl: string;
  /** A service account key (`handoff accounts create`). */
  key: string;
  /** Per request. @default 30_000 */
  timeoutMs?: number;
  /** Another fetch (a proxy agent, tests). @default globalThis.fetch */
  fetch?: typeof fetch;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The `/api/v1` HTTP API, typed. */
export class ApiClient {
  readonly #base: string;
  readonly #key: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(opts: ApiClientOptions) {
    this.#base = opts.baseUrl.replace(/\/+$/, '');
    this.#key = opts.key;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#fetch = opts.fetch ?? globalThis.fetch;
  }

  /** Submits one signal: 202 with its episode id (`created: false` when the key had started it before). */
  async submit(model: string, signal: Record<string, unknown>, opts: SubmitOptions): Promise<SignalAccepted> {
    const headers: Record<string, string> = { 'Idempotency-Key': opts.idempotencyKey };
    if (opts.traceparent) headers.traceparent = opts.traceparent;
    const out = await this.#call(`/models/${encodeURIComponent(model)}/signals`, SignalsAccepted, {
      method: 'POST',
      body: { signal },
      headers,
    });
    return out.accepted[0]!;
  }

  /**
   * Submits up to 100 signals, each with its own key. All are checked before any starts; on a failure
   * part-way, send the same batch again: the started ones answer `created: false`.
   */
  async submitBatch(
    model: string,
    items: readonly { signal: Record<string, unknown>; idempotencyKey: string }[],
    opts: { traceparent?: string } = {},
  ): Promise<SignalAccepted[]> {
    const headers: Record<string, string> = opts.traceparent ? { traceparent: opts.traceparent } : {};
    const body = { signals: items.map((i) => ({ signal: i.signal, idempotencyKey: i.idempotencyKey })) };
    return (
      await this.#call(`/models/${encodeURIComponent(model)}/signals`, SignalsAccepted, {
        method: 'POST',
        body,
        headers,
      })
    ).accepted;
  }

  /** An episode: state, outcome, gate decision, cases, actions. */
  episode(id: string): Promise<ApiEpisode> {
    return this.#call(`/episodes/${encodeURIComponent(id)}`, ApiEpisode);
  }

  /** The models this key may use, with their signal JSON Schemas. */
  models(): Promise<z.infer<typeof ApiModels>> {
    return this.#call('/models', ApiModels);
  }

  /** A page of episodes, oldest id first; pass the page's `next` as `cursor` for the next one. */
  episodes(query: EpisodeQuery = {}): Promise<ApiEpisodePage> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return this.#call(`/episodes${qs ? `?${qs}` : ''}`, ApiEpisodePage);
  }

  /** Every episode the query matches, page after page. */
  async *allEpisodes(query: Omit<EpisodeQuery, 'cursor'> = {}): AsyncIterable<ApiEpisodeSummary> {
    let cursor: string | undefined;
    do {
      const page = await this.episodes({ ...query, ...(cursor ? { cursor } : {}) });
      yield* page.episodes;
      cursor = page.next ?? undefined;
    } while (cursor);
  }

  /**
   * The episode's outcome stream (`GET /api/v1/episodes/{id}/events`, Server-Sent Events): a `state`
   * event now and on every durable transition, then `outcome` once it has finished; then it ends.
   * Stop early with `signal` (or by leaving the loop).
   */
  async *events(
    id: string,
    opts: { signal?: AbortSignal } = {},
  ): AsyncIterable<{ type: 'state' | 'outcome'; data: ApiEpisodeEvent }> {
    const res = await this.#request(`/episodes/${encodeURIComponent(id)}/events`, {
      headers: { Accept: 'text/event-stream' },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let type = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if ((type !== 'state' && type !== 'outcome') || data.length === 0) continue;
          const parsed = ApiEpisodeEvent.safeParse(JSON.parse(data.join('\n')));
          if (!parsed.success)
            throw new ApiClientError(
              res.status,
              'response.invalid',
              `an event of ${id} does not match ApiEpisodeEvent`,
            );
          yield { type, data: parsed.data };
        }
      }
    } catch (err) {
      if (err instanceof ApiClientError) throw err;
      throw clientError(err, `GET /episodes/${id}/events`);
    }
  }

  /**
   * Resolves with the episode once it has an outcome (or once `until` holds). Without `until` it
   * follows the outcome stream ({@link events}); with `until`, or when the stream breaks off, it
   * reads the episode every `intervalMs`. Rejects with `client.timeout` at the deadline.
   */
  async waitForOutcome(id: string, opts: WaitOptions = {}): Promise<ApiEpisode> {
    const until = opts.until ?? ((e: ApiEpisode) => e.outcome !== null);
    const deadline = performance.now() + (opts.timeoutMs ?? 60_000);
    let last: ApiEpisode | undefined;
    if (!opts.until) {
      try {
        const signal = AbortSignal.timeout(Math.max(1, deadline - performance.now()));
        for await (const e of this.events(id, { signal })) if (e.type === 'outcome') return await this.episode(id);
      } catch (err) {
        // A refusal is final; a broken or timed-out stream falls back to reading.
        if (err instanceof ApiClientError && !err.retryable && err.code !== 'client.timeout') throw err;
      }
    }
    for (;;) {
      try {
        last = await this.episode(id);
        if (until(last)) return last;
      } catch (err) {
        if (!(err instanceof ApiClientError && err.retryable)) throw err;
      }
      if (performance.now() >= deadline) break;
      await sleep(opts.intervalMs ?? 250);
    }
    throw new ApiClientError(
      0,
      'client.timeout',
      `episode ${id} did not reach the awaited state in time (last: ${last?.state ?? 'unread'})`,
      { episodeId: id, state: last?.state ?? null },
    );
  }

  /** A request; a non-2xx answer becomes an {@link ApiClientError} with the API's code. */
  async #request(
    path: string,
    init: { method?: string; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.#key}`,
      Accept: 'application/json',
      ...init.headers,
    };
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await this.#fetch(`${this.#base}/api/v1${path}`, {
        method: init.method ?? 'GET',
        headers,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        signal: init.signal ?? AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw clientError(err, `${init.method ?? 'GET'} ${path}`);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = undefined;
    }
    const e = (json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
    const retryAfter = Number(res.headers.get('retry-after') ?? NaN);
    throw new ApiClientError(
      res.status,
      typeof e?.code === 'string' ? e.code : `http.${res.status}`,
      typeof e?.message === 'string' ? e.message : `${res.status} ${res.statusText}`,
      e?.details && typeof e.details === 'object' ? (e.details as Record<string, unknown>) : {},
      Number.isFinite(retryAfter) ? retryAfter : undefined,
    );
  }

  async #call<S extends z.ZodType>(
    path: string,
    schema: S,
    init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<z.output<S>> {
    const res = await this.#request(path, init);
    let json: unknown;
    try {
      json = await res.json();
    } catch (err) {
      if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
        throw clientError(err, path);
      json = undefined;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new ApiClientError(
        res.status,
        'response.invalid',
        `the answer to ${path} does not match the API contract: ${parsed.error.issues[0]?.message ?? ''}`,
        { path: parsed.error.issues[0]?.path.join('.') ?? '' },
      );
    return parsed.data;
  }
}

/** A failure with no answer: `client.timeout` (a deadline or an abort) or `client.unreachable`. */
function clientError(err: unknown, what: string): ApiClientError {
  const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
  const text = err instanceof Error ? err.message : String(err);
  return new ApiClientError(0, timeout ? 'client.timeout' : 'client.unreachable', `${what}: ${text}`);
}

/**
 * What the NATS client uses of a connection: a `NatsConnection` of `@nats-io/transport-node` has it
 * (declared here so these types do not need the optional NATS packages).
 */
export interface NatsConnectionLike {
  subscribe(
    subject: string,
    opts: { callback: (err: Error | null, msg: { data: Uint8Array }) => void },
  ): { unsubscribe(): void };
  flush(): Promise<void>;
}

export interface NatsSignalsClientOptions {
  /** The cluster's namespace. @default 'default' */
  namespace?: string;
}

/** Where a signal submitted over NATS went: stored in its model's stream (not yet started). */
export interface NatsSubmitted {
  episodeId: string;
  idempotencyKey: string;
  /** The stream's duplicate window already held this key (nothing new was stored). */
  duplicate: boolean;
}

/**
 * Signals over NATS, on a connection you open (`connect()` of `@nats-io/transport-node`; JetStream needs
 * `@nats-io/jetstream`). `submit` resolves once JetStream stored the signal (a node starts it; a node
 * killed in between loses nothing). `watch` follows the episode's notices and rejects with the typed
 * refusal if a node refuses the signal; start it before `submit` so no notice is missed.
 */
export class NatsSignalsClient {
  readonly #nc: NatsConnectionLike;
  readonly #ns: string;
  #js: Promise<{ publish(subject: string, data: string, opts: object): Promise<{ duplicate: boolean }> }> | undefined;

  constructor(nc: NatsConnectionLike, opts: NatsSignalsClientOptions = {}) {
    this.#nc = nc;
    this.#ns = opts.namespace ?? 'default';
  }

  async submit(model: string, signal: Record<string, unknown>, opts: SubmitOptions): Promise<NatsSubmitted> {
    this.#js ??= import('@nats-io/jetstream').then((m) => m.jetstream(this.#nc as Parameters<typeof m.jetstream>[0]));
    const { headers } = await import('@nats-io/transport-node');
    const h = headers();
    if (opts.traceparent) h.set('traceparent', opts.traceparent);
    try {
      const ack = await (
        await this.#js
      ).publish(signalSubject(this.#ns, model), JSON.stringify(signal), { msgID: opts.idempotencyKey, headers: h });
      return {
        episodeId: episodeIdFor(model, opts.idempotencyKey),
        idempotencyKey: opts.idempotencyKey,
        duplicate: ack.duplicate,
      };
    } catch (err) {
      // Nothing answers a JetStream publish on a subject without a stream (nats.js calls it "jetstream is
      // not enabled"): no node has created the model's stream.
      const noStream = /no responders|503|JetStreamNotEnabled|jetstream is not enabled/i.test(`${String(err)}`);
      const code = noStream ? 'model.not_found' : 'client.unreachable';
      throw new ApiClientError(
        code === 'model.not_found' ? 404 : 0,
        code,
        `signal not stored on ${signalSubject(this.#ns, model)}: ${err instanceof Error ? err.message : String(err)}` +
          ` (is a node with model '${model}' running?)`,
        { model },
      );
    }
  }

  /**
   * Resolves with the episode's first transition notice for which `until` holds (default: the episode
   * has ended); rejects with an {@link ApiClientError} when a node refuses the signal (the refusal's
   * code and details) or with `client.timeout`. `cancel()` stops watching (the promise stays pending).
   */
  watch(
    model: string,
    idempotencyKey: string,
    opts: { until?: (n: TransitionNotice) => boolean; timeoutMs?: number } = {},
  ): Promise<TransitionNotice> & { ready: Promise<void>; cancel(): void } {
    const episodeId = episodeIdFor(model, idempotencyKey);
    const until = opts.until ?? ((n: TransitionNotice) => n.status !== 'active');
    const subs: { unsubscribe(): void }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      for (const s of subs) s.unsubscribe();
    };
    const result = new Promise<TransitionNotice>((resolve, reject) => {
      const decode = (data: Uint8Array) => JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
      subs.push(
        this.#nc.subscribe(`handoff.${this.#ns}.events.agent.${episodeId.replace(/[.*> ]/g, '_')}`, {
          callback: (err, m) => {
            if (err) return;
            const n = decode(m.data) as TransitionNotice;
            if (n.id === episodeId && until(n)) {
              done();
              resolve(n);
            }
          },
        }),
        this.#nc.subscribe(signalRefusedSubject(this.#ns, model), {
          callback: (err, m) => {
            if (err) return;
            const r = SignalRefusal.safeParse(decode(m.data));
            if (!r.success || r.data.idempotencyKey !== idempotencyKey) return;
            done();
            reject(new ApiClientError(400, r.data.error.code, r.data.error.message, r.data.error.details ?? {}));
          },
        }),
      );
      timer = setTimeout(() => {
        done();
        reject(
          new ApiClientError(0, 'client.timeout', `episode ${episodeId} did not reach the awaited state in time`, {
            episodeId,
          }),
        );
      }, opts.timeoutMs ?? 60_000);
    });
    // Subscriptions are registered with the server once flushed: `await watch(...).ready` before submitting.
    return Object.assign(result, { ready: this.#nc.flush(), cancel: done });
  }
}
