import type { Logger } from 'pino';
import { SCHEMA_VERSION } from '../contracts/envelope.ts';
import type { LoadedModel } from '../models/loader.ts';
import { systemClock, type Clock } from '../base/clock.ts';
import { failpoint } from '../base/failpoints.ts';
import type { ChannelTransition, OutboxChannel } from '../runtime/runtime.ts';
import type { DeadLetter, OutboxMessage, Store } from '../runtime/store.ts';
import type { WebhookConfig } from '../contracts/notifications.ts';
import { NotificationConfigError, WebhookDeliveryError } from './errors.ts';
import { caseNotifications, type CaseNotification } from './events.ts';
import type { WebhookPayload } from './payload.ts';
import { MIN_SECRET_BYTES, parseSecrets, SIGNATURE_HEADER, signatureHeader } from './signing.ts';

/** A webhook of a model, with its URL and secrets read from the environment. */
export interface ResolvedWebhook {
  model: string;
  name: string;
  /** `<model>/<name>`; outbox messages for it are addressed to `webhook:<key>`. */
  key: string;
  config: WebhookConfig;
  url: string | null;
  secrets: string[];
  /** Why the webhook is off (an environment variable is unset), or null when it is on. */
  off: string | null;
}

type Env = Record<string, string | undefined>;

/**
 * Reads the URL and secrets of every webhook of the models from `env`. A webhook whose URL or secret
 * variable is unset is off (nothing is recorded for it); a variable that is set but unusable (a URL
 * that is not http(s), a secret shorter than 16 bytes) is an error naming the variable, never its value.
 */
export function resolveWebhooks(models: readonly LoadedModel[], env: Env): ResolvedWebhook[] {
  const out: ResolvedWebhook[] = [];
  for (const m of models) {
    (m.config.notifications?.webhooks ?? []).forEach((w, i) => {
      const path = `notifications.webhooks.${i}`;
      let url = w.url ?? null;
      let off: string | null = null;
      if (w.urlEnv) {
        const v = env[w.urlEnv]?.trim();
        if (!v) off = `${w.urlEnv} is not set`;
        else {
          let parsed: URL | null = null;
          try {
            parsed = new URL(v);
          } catch {
            parsed = null;
          }
          if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:'))
            throw new NotificationConfigError(
              `model ${m.name}: ${path}.urlEnv: ${w.urlEnv} does not hold an http:// or https:// URL`,
              { model: m.name, path: `${path}.urlEnv`, env: w.urlEnv },
            );
          url = v;
        }
      }
      const secrets = parseSecrets(env[w.secretEnv]);
      if (secrets.length === 0) off ??= `${w.secretEnv} is not set`;
      else if (secrets.some((s) => Buffer.byteLength(s) < MIN_SECRET_BYTES))
        throw new NotificationConfigError(
          `model ${m.name}: ${path}.secretEnv: a secret in ${w.secretEnv} is shorter than ${MIN_SECRET_BYTES} bytes`,
          { model: m.name, path: `${path}.secretEnv`, env: w.secretEnv },
        );
      out.push({
        model: m.name,
        name: w.name,
        key: `${m.name}/${w.name}`,
        config: w,
        url: off ? null : url,
        secrets: off ? [] : secrets,
        off,
      });
    });
  }
  return out;
}

/** Each webhook, on or off and why, with the host it posts to (never the full URL: it may carry a token). */
export function webhookStatus(
  webhooks: readonly ResolvedWebhook[],
): { model: string; name: string; on: boolean; off: string | null; host: string | null; events: string[] }[] {
  return webhooks.map((w) => ({
    model: w.model,
    name: w.name,
    on: !w.off,
    off: w.off,
    host: w.url ? new URL(w.url).host : null,
    events: [...w.config.events],
  }));
}

/** Whether a notification concerns the queues and tiers a webhook listens to. */
function matches(w: WebhookConfig, n: CaseNotification, tiers: CaseNotification['data']['tier'][]): boolean {
  if (!w.events.includes(n.event)) return false;
  if (w.queues && !tiers.some((t) => w.queues!.includes(t.queue))) return false;
  if (w.tiers && !tiers.some((t) => w.tiers!.some((x) => (typeof x === 'number' ? x === t.number : x === t.name))))
    return false;
  return true;
}

export interface WebhookNotifierOptions {
  store: Store;
  models: readonly LoadedModel[];
  /** Where URLs and secrets are read from. @default process.env */
  env?: Env;
  log?: Logger;
  /** Timers of retries and the time of dead letters. @default systemClock */
  clock?: Clock;
  /** Signature timestamps, unix seconds (receivers compare them with their own clock). @default the wall clock */
  nowSec?: () => number;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Deliveries in flight at once. @default 8 */
  concurrency?: number;
  /** Draws of the backoff jitter, in [0, 1). @default Math.random */
  random?: () => number;
}

interface Attempt {
  ok: boolean;
  status: number | null;
  retryable: boolean;
  retryAfterMs: number | null;
  error: string;
}

/** `Retry-After`: seconds or an HTTP date. */
function retryAfterMs(value: string | null, nowMs: number): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : null;
}

/**
 * Webhooks as an outbox channel of the runtime. For each case transition it adds one outbox message
 * per (notification, subscribed webhook) to the transition's own commit, so a notification is
 * durable exactly when the transition is. Once durable (and again at every start, until
 * acknowledged) the message is POSTed, signed with HMAC-SHA256; network errors, timeouts, 429 and
 * 5xx are retried with exponential backoff and jitter; any other answer than 2xx, or the last failed
 * attempt, moves it to the dead letters (`handoff deadletters list / replay`). Delivery is
 * at least once: receivers deduplicate by `Webhook-Id`.
 */
export class WebhookNotifier implements OutboxChannel {
  readonly prefix = 'webhook:';
  /** Counters: attempts (every POST), retries (attempts after a first), deliveries, dead letters, replays. */
  readonly stats = { attempts: 0, retries: 0, delivered: 0, deadLettered: 0, replayed: 0 };
  readonly webhooks: readonly ResolvedWebhook[];
  #store: Store;
  #log: Logger | undefined;
  #clock: Clock;
  #nowSec: () => number;
  #fetch: typeof fetch;
  #random: () => number;
  #concurrency: number;
  #byKey = new Map<string, ResolvedWebhook>();
  #byModel = new Map<string, ResolvedWebhook[]>();
  /** Messages being delivered or waiting for a retry, by id, with the attempts made so far. */
  #inFlight = new Map<string, number>();
  #queue: OutboxMessage[] = [];
  #active = 0;
  #timers = new Set<unknown>();
  #aborts = new Set<AbortController>();
  #idle: (() => void)[] = [];
  #closed = false;

  constructor(opts: WebhookNotifierOptions) {
    this.#store = opts.store;
    this.#log = opts.log;
    this.#clock = opts.clock ?? systemClock;
    this.#nowSec = opts.nowSec ?? (() => Math.floor(Date.now() / 1000));
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#random = opts.random ?? Math.random;
    this.#concurrency = Math.max(1, opts.concurrency ?? 8);
    this.webhooks = resolveWebhooks(opts.models, opts.env ?? process.env);
    for (const w of this.webhooks) {
      this.#byKey.set(w.key, w);
      if (w.off) continue;
      const list = this.#byModel.get(w.model) ?? [];
      list.push(w);
      this.#byModel.set(w.model, list);
    }
  }

  /** Each webhook, on or off and why, with the host it posts to (never the full URL: it may carry a token). */
  status(): ReturnType<typeof webhookStatus> {
    return webhookStatus(this.webhooks);
  }

  messagesFor(t: ChannelTransition): OutboxMessage[] {
    const hooks = t.kind === 'case' ? this.#byModel.get(t.model.name) : undefined;
    if (!hooks) return [];
    const out: OutboxMessage[] = [];
    for (const n of caseNotifications(t)) {
      const tiers = [n.data.tier, ...(n.data.fromTier ? [n.data.fromTier] : [])];
      for (const w of hooks) {
        if (!matches(w.config, n, tiers)) continue;
        const id = `wh:${w.key}:${n.data.caseId}:${t.seq}:${n.event}`;
        const payload: WebhookPayload = {
          id,
          type: `handoff.${n.event}`,
          event: n.event,
          schemaVersion: SCHEMA_VERSION,
          createdAt: new Date(t.event.at).toISOString(),
          model: w.model,
          webhook: w.name,
          data: n.data,
        };
        out.push({ id, to: `${this.prefix}${w.key}`, event: { type: payload.type, at: t.event.at, payload } });
      }
    }
    return out;
  }

  deliver(msg: OutboxMessage): void {
    if (this.#closed || this.#inFlight.has(msg.id)) return;
    this.#inFlight.set(msg.id, 0);
    this.#queue.push(msg);
    this.#pump();
  }

  /** One attempt at a dead letter of a webhook; throws {@link WebhookDeliveryError} when it fails. */
  async replay(letter: DeadLetter): Promise<void> {
    const hook = this.#byKey.get(letter.actorId.slice(this.prefix.length));
    if (!hook || hook.off || !hook.url)
      throw new WebhookDeliveryError(
        'webhook.not_configured',
        `webhook ${letter.actorId.slice(this.prefix.length)} is not configured on this node${hook?.off ? ` (${hook.off})` : ''}`,
        { webhook: letter.actorId },
      );
    const payload = (letter.event as { payload?: WebhookPayload }).payload;
    if (!payload)
      throw new WebhookDeliveryError('webhook.failed', `dead letter ${letter.id} holds no webhook payload`, {
        webhook: hook.key,
      });
    const a = await this.#attempt(hook, payload, 1);
    if (!a.ok)
      throw new WebhookDeliveryError(
        a.retryable ? 'webhook.failed' : 'webhook.rejected',
        `webhook ${hook.key}: ${a.error}`,
        { webhook: hook.key, status: a.status, attempts: 1 },
      );
    this.stats.replayed++;
    this.#log?.info({ webhook: hook.key, id: payload.id }, 'webhook dead letter replayed');
  }

  /** Resolves when nothing is being delivered or waiting for a retry. */
  whenIdle(): Promise<void> {
    if (this.#inFlight.size === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops: pending retries are dropped and requests aborted; their messages stay in the outbox for the next start. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) this.#clock.clearTimeout(t);
    this.#timers.clear();
    for (const a of this.#aborts) a.abort();
    this.#queue = [];
    this.#inFlight.clear();
    for (const w of this.#idle.splice(0)) w();
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.#concurrency && this.#queue.length > 0) {
      const msg = this.#queue.shift()!;
      this.#active++;
      void this.#run(msg)
        .catch((err: unknown) =>
          this.#log?.error({ id: msg.id, err }, 'webhook delivery failed unexpectedly; retried at the next start'),
        )
        .finally(() => {
          this.#active--;
          this.#pump();
        });
    }
  }

  #done(id: string): void {
    this.#inFlight.delete(id);
    if (this.#inFlight.size === 0) for (const w of this.#idle.splice(0)) w();
  }

  async #run(msg: OutboxMessage): Promise<void> {
    const key = msg.to.slice(this.prefix.length);
    const hook = this.#byKey.get(key);
    const payload = (msg.event as { payload?: WebhookPayload }).payload;
    if (!hook || hook.off || !hook.url || !payload) {
      const why = !payload
        ? 'the outbox message holds no payload'
        : `webhook ${key} is not configured on this node${hook?.off ? ` (${hook.off})` : ''}`;
      await this.#deadLetter(msg, 'webhook.not_configured', why);
      return;
    }
    const attempt = (this.#inFlight.get(msg.id) ?? 0) + 1;
    this.#inFlight.set(msg.id, attempt);
    // A test kills the process here: the notification is durable, its delivery not yet made.
    failpoint('before-webhook');
    const a = await this.#attempt(hook, payload, attempt);
    if (this.#closed) return;
    if (a.ok) {
      this.stats.delivered++;
      await this.#store
        .ackOutbox(msg.id)
        .catch((err: unknown) =>
          this.#log?.warn(
            { webhook: key, id: msg.id, err },
            'delivered, but the outbox entry was not removed: it is sent again at the next start',
          ),
        );
      this.#done(msg.id);
      return;
    }
    const retry = hook.config.retry;
    if (!a.retryable || attempt >= retry.maxAttempts) {
      await this.#deadLetter(
        msg,
        a.retryable ? 'webhook.retries_exhausted' : 'webhook.rejected',
        `${a.error} (attempt ${attempt} of ${retry.maxAttempts})`,
        a.status,
      );
      return;
    }
    const base = Math.min(retry.maxMs, retry.minMs * 2 ** (attempt - 1));
    const jittered = Math.round(base * (1 + (this.#random() * 2 - 1) * retry.jitter));
    const delay = Math.min(retry.maxMs, Math.max(jittered, a.retryAfterMs ?? 0));
    this.#log?.debug(
      { webhook: key, id: msg.id, attempt, status: a.status, delayMs: delay },
      'webhook delivery failed; retrying',
    );
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#closed) return;
      this.#queue.push(msg);
      this.#pump();
    }, delay);
    this.#timers.add(timer);
  }

  async #deadLetter(msg: OutboxMessage, code: string, reason: string, status: number | null = null): Promise<void> {
    const at = this.#clock.now();
    this.stats.deadLettered++;
    this.#log?.warn(
      { webhook: msg.to.slice(this.prefix.length), id: msg.id, code, status },
      'webhook delivery dead-lettered',
    );
    // Both writes join the same batch of the store: the letter replaces the outbox entry.
    await Promise.all([
      this.#store.putDeadLetter({
        id: `${at.toString(36)}-${msg.id}`,
        at,
        actorId: msg.to,
        event: msg.event,
        reason,
        code,
      }),
      this.#store.ackOutbox(msg.id),
    ]).catch((err: unknown) =>
      this.#log?.error({ id: msg.id, err }, 'dead letter not written; the delivery is retried at the next start'),
    );
    this.#done(msg.id);
  }

  async #attempt(hook: ResolvedWebhook, payload: WebhookPayload, attempt: number): Promise<Attempt> {
    this.stats.attempts++;
    if (attempt > 1) this.stats.retries++;
    const body = JSON.stringify(payload);
    const t = this.#nowSec();
    const abort = new AbortController();
    this.#aborts.add(abort);
    const timeout = setTimeout(() => abort.abort(), hook.config.timeoutMs);
    try {
      const res = await this.#fetch(hook.url!, {
        method: 'POST',
        redirect: 'manual',
        signal: abort.signal,
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'Handoff-Webhooks/1',
          'Webhook-Id': payload.id,
          'Webhook-Event': payload.event,
          'Webhook-Timestamp': String(t),
          'Webhook-Attempt': String(attempt),
          [SIGNATURE_HEADER]: signatureHeader(hook.secrets, t, body),
        },
        body,
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300)
        return { ok: true, status: res.status, retryable: false, retryAfterMs: null, error: '' };
      const retryable = res.status === 429 || res.status >= 500;
      const error =
        res.status >= 300 && res.status < 400
          ? `the receiver answered a redirect (${res.status}); redirects are not followed`
          : `the receiver answered ${res.status}`;
      return {
        ok: false,
        status: res.status,
        retryable,
        retryAfterMs: retryAfterMs(res.headers.get('retry-after'), this.#clock.now()),
        error,
      };
    } catch (err) {
      const timedOut = abort.signal.aborted && !this.#closed;
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return {
        ok: false,
        status: null,
        retryable: true,
        retryAfterMs: null,
        error: timedOut ? `no answer within ${hook.config.timeoutMs} ms` : `network error${cause ? ` (${cause})` : ''}`,
      };
    } finally {
      clearTimeout(timeout);
      this.#aborts.delete(abort);
    }
  }
}
