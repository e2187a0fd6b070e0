import type { Logger } from 'pino';
import { EffectError } from '../../contracts/errors.ts';
import type { LlmEndpointConfig } from '../../contracts/planner-config.ts';
import type { CircuitBreaker } from '../../base/circuit-breaker.ts';
import { inChatSpan } from './llm-span.ts';
import { truncate, type ChatResponse, type Toolset } from './llm-wire.ts';

/**
 * The LLM planner's endpoint client: one Chat Completions request per attempt, with a timeout; 429,
 * 5xx, timeouts and network errors retried with exponential backoff (a `Retry-After` header wins);
 * every attempt through the circuit breaker. The API key only ever goes into the `Authorization`
 * header: `redact` takes it out of any text that might carry it (a server echoing the header).
 */

/** An endpoint failure, with what the retry loop needs. */
class EndpointError extends EffectError {
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;
  constructor(
    message: string,
    opts: { transient: boolean; code: string; status?: number; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, { transient: opts.transient, code: opts.code, cause: opts.cause });
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

const sleepReal = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Parses `Retry-After` (seconds or an HTTP date) or `retry-after-ms`; undefined when absent or unreadable. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const v = headers.get('retry-after');
  if (!v) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.max(0, Math.round(Number(v) * 1000));
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

export interface ChatClientOptions {
  /** The endpoint settings, API key left out. */
  config: Omit<LlmEndpointConfig, 'apiKey'>;
  apiKey: string | undefined;
  /** Where the key came from, for the message when the endpoint refuses it. */
  keySource: string;
  fetch: typeof fetch;
  log: Logger;
  sleep?: (ms: number) => Promise<void>;
  random: () => number;
  breaker: CircuitBreaker;
  /** The planner's counters: requests and HTTP retries are counted here. */
  stats: { requests: number; httpRetries: number };
}

export class ChatClient {
  readonly config: Omit<LlmEndpointConfig, 'apiKey'>;
  #breaker: CircuitBreaker;
  #apiKey: string | undefined;
  #keySource: string;
  #fetch: typeof fetch;
  #log: Logger;
  #sleep: (ms: number) => Promise<void>;
  #random: () => number;
  #stats: { requests: number; httpRetries: number };
  #url: string;

  constructor(opts: ChatClientOptions) {
    this.config = opts.config;
    this.#breaker = opts.breaker;
    this.#apiKey = opts.apiKey;
    this.#keySource = opts.keySource;
    this.#url = `${opts.config.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    this.#fetch = opts.fetch;
    this.#log = opts.log;
    this.#sleep = opts.sleep ?? sleepReal;
    this.#random = opts.random;
    this.#stats = opts.stats;
  }

  /** Keeps the key out of `JSON.stringify` and `console.log`. */
  toJSON(): Record<string, unknown> {
    return { url: this.#url, model: this.config.model, apiKey: this.#apiKey ? '[REDACTED]' : null };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): Record<string, unknown> {
    return this.toJSON();
  }

  /** One completion: retried while transient, through the breaker; throws `EffectError` when spent. */
  async complete(
    messages: { role: string; content: string }[],
    toolset: Toolset,
    meta: { episodeId: string; round: number; traceparent?: string },
  ): Promise<ChatResponse> {
    const body = JSON.stringify({
      model: this.config.model,
      messages,
      tools: toolset.tools,
      tool_choice: 'auto',
      temperature: this.config.temperature,
      stream: false,
      ...(this.config.maxTokens ? { max_tokens: this.config.maxTokens } : {}),
    });
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#breaker.run(() => this.#once(body, meta, attempt));
      } catch (err) {
        const e =
          err instanceof EffectError
            ? err
            : new EndpointError(this.redact(String((err as Error)?.message ?? err)), {
                transient: true,
                code: 'planner.unreachable',
                cause: err,
              });
        if (!e.transient || e.code === 'circuit.open' || attempt >= this.config.maxRetries) {
          this.#log.warn(
            {
              url: this.#url,
              model: this.config.model,
              episodeId: meta.episodeId,
              code: e.code,
              attempts: attempt + 1,
              breaker: this.#breaker.state,
            },
            `LLM endpoint failed: ${e.message}`,
          );
          throw e;
        }
        const hinted = e instanceof EndpointError ? e.retryAfterMs : undefined;
        const backoff =
          Math.min(this.config.maxBackoffMs, this.config.backoffMs * 2 ** attempt) * (0.8 + 0.4 * this.#random());
        const wait = Math.round(hinted ?? backoff);
        if (wait > this.config.maxBackoffMs) {
          throw new EndpointError(
            `${e.message}; the server asks to retry after ${wait} ms, beyond maxBackoffMs ${this.config.maxBackoffMs}`,
            { transient: true, code: e.code, ...(hinted !== undefined ? { retryAfterMs: hinted } : {}) },
          );
        }
        this.#stats.httpRetries++;
        this.#log.info(
          { url: this.#url, episodeId: meta.episodeId, code: e.code, waitMs: wait, attempt: attempt + 1 },
          'retrying the LLM endpoint',
        );
        await this.#sleep(wait);
      }
    }
  }

  /**
   * One request, as an OpenTelemetry GenAI client span (`chat <model>`, see `llm-span.ts`) in the
   * episode's trace.
   */
  #once(body: string, meta: { episodeId: string; round: number; traceparent?: string }, attempt: number) {
    return inChatSpan(
      this.config,
      this.#url,
      meta,
      attempt,
      (s) => this.redact(s),
      () => this.#request(body, meta, attempt),
    );
  }

  async #request(body: string, meta: { episodeId: string; round: number }, attempt: number): Promise<ChatResponse> {
    this.#stats.requests++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.config.timeoutMs);
    const started = Date.now();
    try {
      let res: Response;
      try {
        res = await this.#fetch(this.#url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json',
            ...(this.#apiKey ? { authorization: `Bearer ${this.#apiKey}` } : {}),
          },
          body,
          signal: controller.signal,
        });
      } catch (err) {
        if (controller.signal.aborted)
          throw new EndpointError(`LLM endpoint ${this.#url} did not answer within ${this.config.timeoutMs} ms`, {
            transient: true,
            code: 'planner.timeout',
          });
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new EndpointError(
          `LLM endpoint ${this.#url} unreachable: ${this.redact(cause?.code ?? cause?.message ?? (err as Error).message)}`,
          { transient: true, code: 'planner.unreachable' },
        );
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        if (controller.signal.aborted)
          throw new EndpointError(
            `LLM endpoint ${this.#url} did not finish its reply within ${this.config.timeoutMs} ms`,
            { transient: true, code: 'planner.timeout' },
          );
        throw new EndpointError(`LLM endpoint ${this.#url}: reply cut off: ${this.redact((err as Error).message)}`, {
          transient: true,
          code: 'planner.unreachable',
        });
      }
      this.#log.debug(
        {
          url: this.#url,
          model: this.config.model,
          episodeId: meta.episodeId,
          round: meta.round,
          attempt: attempt + 1,
          status: res.status,
          ms: Date.now() - started,
        },
        'LLM reply',
      );
      if (res.ok) {
        try {
          return JSON.parse(text) as ChatResponse;
        } catch {
          throw new EndpointError(`LLM endpoint ${this.#url} answered ${res.status} with a body that is not JSON`, {
            transient: true,
            code: 'planner.bad_response',
            status: res.status,
          });
        }
      }
      const detail = this.#serverMessage(text);
      if (res.status === 429 || res.status === 408 || res.status >= 500) {
        const hint = retryAfterMs(res.headers);
        throw new EndpointError(`LLM endpoint ${this.#url} answered ${res.status}${detail ? `: ${detail}` : ''}`, {
          transient: true,
          code: res.status === 429 ? 'planner.rate_limited' : 'planner.server_error',
          status: res.status,
          ...(hint !== undefined ? { retryAfterMs: hint } : {}),
        });
      }
      if (res.status === 401 || res.status === 403) {
        throw new EndpointError(
          `LLM endpoint ${this.#url} refused the credentials (${res.status}); check the API key in ${this.#keySource}${detail ? `: ${detail}` : ''}`,
          { transient: false, code: 'planner.unauthorized', status: res.status },
        );
      }
      throw new EndpointError(
        `LLM endpoint ${this.#url} rejected the request (${res.status})${detail ? `: ${detail}` : ''}`,
        { transient: false, code: 'planner.request_rejected', status: res.status },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  #serverMessage(text: string): string {
    let msg = text;
    try {
      const j = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
      msg = (typeof j.error === 'string' ? j.error : j.error?.message) ?? j.message ?? text;
    } catch {
      /* plain text */
    }
    return truncate(this.redact(msg.replace(/\s+/g, ' ').trim()), 300);
  }

  /** Removes the API key from any text that might carry it (a server echoing the header). */
  redact(s: string): string {
    const key = this.#apiKey;
    return key && key.length >= 4 ? s.split(key).join('[REDACTED]') : s;
  }
}
