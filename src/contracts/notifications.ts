import { z } from 'zod';

/**
 * The `notifications` section of `model.json`: outgoing webhooks and incoming, signed callbacks.
 * Only names of environment variables appear here, never a secret: `model.json` is checked in.
 * See docs/notifications.md.
 */

/** What a webhook can subscribe to. The payload's `type` is `handoff.<event>`. */
export const WebhookEventName = z.enum([
  'case.opened',
  'case.escalated',
  'case.sla_breached',
  'case.expired',
  'case.resolved',
  'operator.opened',
]);
export type WebhookEventName = z.infer<typeof WebhookEventName>;

const EnvName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name: upper-case letters, digits and underscores');
const Name = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes');
const NoSecret = z
  .never({
    error: 'secrets never go in model.json: put the secret in an environment variable and name it in secretEnv',
  })
  .optional();

/** Retries of one delivery: exponential backoff with jitter, on network errors, timeouts, 429 and 5xx. */
export const WebhookRetry = z.object({
  /** Attempts in all, the first included; then the delivery is dead-lettered. @default 6 */
  maxAttempts: z.number().int().min(1).max(50).default(6),
  /** Delay before the second attempt, in ms; doubled for each further one. @default 1000 */
  minMs: z.number().int().min(1).default(1000),
  /** Longest delay between attempts (also caps a `Retry-After`). @default 60000 */
  maxMs: z.number().int().min(1).default(60_000),
  /** Each delay is moved at random by up to this fraction, either way. @default 0.2 */
  jitter: z.number().min(0).max(1).default(0.2),
});
export type WebhookRetry = z.infer<typeof WebhookRetry>;

export const WebhookConfig = z
  .object({
    /** Unique within the model; names the webhook in logs, dead letters and the `webhook` field of payloads. */
    name: Name,
    /** Where to POST. Give either `url` or `urlEnv`. */
    url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }).optional(),
    /** Environment variable holding the URL; while it is unset the webhook is off. */
    urlEnv: EnvName.optional(),
    /** Environment variable holding the signing secret (several, separated by spaces, while rotating). Unset: the webhook is off. */
    secretEnv: EnvName,
    secret: NoSecret,
    events: z.array(WebhookEventName).min(1),
    /** Only cases in these queues (the tier before or after the transition). @default every queue */
    queues: z.array(z.string().min(1)).min(1).optional(),
    /** Only cases at these tiers: 1-based numbers or tier names (before or after the transition). @default every tier */
    tiers: z
      .array(z.union([z.number().int().min(1), z.string().min(1)]))
      .min(1)
      .optional(),
    /** Time allowed for one attempt, in ms. @default 10000 */
    timeoutMs: z.number().int().min(1).max(120_000).default(10_000),
    retry: WebhookRetry.default({ maxAttempts: 6, minMs: 1000, maxMs: 60_000, jitter: 0.2 }),
  })
  .strict()
  .refine((w) => (w.url === undefined) !== (w.urlEnv === undefined), {
    message: 'give exactly one of url and urlEnv',
    path: ['url'],
  });
export type WebhookConfig = z.infer<typeof WebhookConfig>;

/** A source of signed decisions, e.g. a ticketing system: `POST /api/callbacks/<source>`. */
export const CallbackConfig = z
  .object({
    /** Path segment of the endpoint; unique across the loaded models. */
    source: Name,
    /** Environment variable holding the shared secret (several, separated by spaces, while rotating). Unset: the endpoint refuses. */
    secretEnv: EnvName,
    secret: NoSecret,
    /**
     * The service principal the source acts as. Its roles go through the same checks per queue and
     * tier as a reviewer's; its id is what the audit log records as `by`.
     */
    principal: z
      .object({
        id: z.string().regex(/^svc-[a-z0-9-]+$/, "a service principal's id starts with svc-"),
        name: z.string().min(1),
        roles: z.array(z.string().min(1)).min(1),
      })
      .strict(),
    /** Largest difference between the signed timestamp and this server's clock, in seconds. @default 300 */
    toleranceSec: z.number().int().min(1).max(3600).default(300),
  })
  .strict();
export type CallbackConfig = z.infer<typeof CallbackConfig>;

export const NotificationsConfig = z
  .object({
    webhooks: z.array(WebhookConfig).default([]),
    callbacks: z.array(CallbackConfig).default([]),
  })
  .strict()
  .superRefine((n, ctx) => {
    const seen = new Set<string>();
    n.webhooks.forEach((w, i) => {
      if (seen.has(w.name))
        ctx.addIssue({
          code: 'custom',
          path: ['webhooks', i, 'name'],
          message: `webhook '${w.name}' is defined twice`,
        });
      seen.add(w.name);
    });
    const sources = new Set<string>();
    n.callbacks.forEach((c, i) => {
      if (sources.has(c.source))
        ctx.addIssue({
          code: 'custom',
          path: ['callbacks', i, 'source'],
          message: `callback source '${c.source}' is defined twice`,
        });
      sources.add(c.source);
    });
  });
export type NotificationsConfig = z.infer<typeof NotificationsConfig>;
