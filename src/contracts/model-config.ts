import { z } from 'zod';
import { DataClass } from './classification.ts';
import { PlannedAction } from './plan.ts';
import { PlannerConfig } from './planner-config.ts';
import { TierSpec } from './review-case.ts';
import { NotificationsConfig } from './notifications.ts';
import { ArgSchema, HttpCall } from './http-action.ts';

/** Per-argument limits of one action type, e.g. the amount of a refund. */
export const ActionLimit = z
  .strictObject({
    action: z.string().min(1),
    arg: z.string().min(1),
    /** Above this value the plan goes to review. */
    reviewAbove: z.number().optional(),
    /** Tier the review needs when `reviewAbove` fires (1-based). @default 1 */
    reviewTier: z.number().int().min(1).default(1),
    /** Above this value the plan is denied. */
    denyAbove: z.number().optional(),
  })
  .refine((l) => l.reviewAbove !== undefined || l.denyAbove !== undefined, {
    message: 'a limit needs reviewAbove or denyAbove',
  });

export const PolicyConfig = z.strictObject({
  /** Shown in every decision so auditors know which policy text applied. */
  version: z.string().min(1),
  /** Only these action types may ever run. */
  allowedActions: z.array(z.string().min(1)).min(1),
  /** These action types are always denied, whatever the planner's confidence. */
  deniedActions: z.array(z.string().min(1)).default([]),
  /** Plans at or above this confidence and at or below `maxAutoRisk` may run without review. */
  minAutoConfidence: z.number().min(0).max(1),
  maxAutoRisk: z.number().min(0).max(1),
  /** Risk above this is denied outright. @default 1 */
  denyAboveRisk: z.number().min(0).max(1).default(1),
  /** Upper risk bound of each review tier, ascending: risk ≤ tierRiskBounds[0] → tier 1, and so on. */
  tierRiskBounds: z.array(z.number().min(0).max(1)).min(1),
  /** Observations carrying any of these classes always go to review. */
  reviewDataClasses: z.array(DataClass).default([]),
  /** Confidence below this always goes at least to tier 2 (when a second tier exists). */
  lowConfidenceTier2Below: z.number().min(0).max(1).optional(),
  limits: z.array(ActionLimit).default([]),
  /** What happens when a review expires after its last tier. */
  onExpiry: z.discriminatedUnion('fallback', [
    z.strictObject({ fallback: z.literal('deny') }),
    z.strictObject({ fallback: z.literal('safeAction'), action: PlannedAction }),
  ]),
});
export type PolicyConfig = z.infer<typeof PolicyConfig>;

export const ActionConfig = z.strictObject({
  description: z.string().min(1),
  /** Inherent risk of the action type in [0, 1]; the plan's risk is at least this. */
  risk: z.number().min(0).max(1),
  /** Name of the compensating action, or null when the action changes nothing that needs undoing. */
  compensation: z.string().min(1).nullable(),
  /**
   * The action is an HTTP call to a real service (docs/api.md, "HTTP actions"), run by the runtime:
   * no implementation in handlers.ts. Needs `args`.
   */
  http: HttpCall.optional(),
  /** Arguments of an HTTP action, a JSON Schema subset (type object); a TypeScript action declares them in handlers.ts. */
  args: ArgSchema.optional(),
});

export const RetryConfig = z.strictObject({
  maxAttempts: z.number().int().min(1).default(3),
  backoffMs: z.number().int().positive().default(500),
  maxBackoffMs: z.number().int().positive().default(30_000),
});
export type RetryConfig = z.infer<typeof RetryConfig>;

/** How old one source's data may be when a plan built on it is allowed to act. */
export const SourceFreshness = z.strictObject({
  /** Largest age (act time minus `provenance.observedAt`) at which the data counts as fresh. */
  maxAgeMs: z.number().int().positive(),
});

/**
 * Freshness of observations (see docs/governance.md): a plan built on stale data is never acted on
 * automatically. @default no limits (nothing is ever stale)
 */
export const FreshnessConfig = z.strictObject({
  /** Limit per `provenance.source`. @default {} */
  sources: z.record(z.string().min(1), SourceFreshness).default({}),
  /** Limit for sources not named in `sources`; absent: such sources never go stale. */
  defaultMaxAgeMs: z.number().int().positive().optional(),
  /** Stale data: perceive again (at most `maxReperceives` times, then review) or go to review. @default 'review' */
  onStale: z.enum(['reperceive', 'review']).default('review'),
  /** Re-perceptions per episode before stale data goes to review. @default 2 */
  maxReperceives: z.number().int().min(0).default(2),
});
export type FreshnessConfig = z.infer<typeof FreshnessConfig>;

/** How long the event-level history of finished episodes is kept (see docs/governance.md). */
export const RetentionConfig = z.strictObject({
  /** Journals of episodes (and their cases) finished more than this many days ago are compacted. */
  keepDays: z.number().int().positive(),
});
export type RetentionConfig = z.infer<typeof RetentionConfig>;

export const ReviewerConfig = z.strictObject({
  id: z.string().min(1),
  name: z.string().min(1),
  roles: z.array(z.string().min(1)).min(1),
});

/** The declarative part of a model (`model.json`), validated at load. */
export const ModelConfig = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes'),
  version: z.string().min(1),
  description: z.string().min(1),
  actions: z.record(z.string(), ActionConfig),
  policy: PolicyConfig,
  review: z.strictObject({
    tiers: z.array(TierSpec).min(1),
    leaseMs: z.number().int().positive(),
  }),
  retry: RetryConfig.default({ maxAttempts: 3, backoffMs: 500, maxBackoffMs: 30_000 }),
  /**
   * The tier of operator cases: a compensation that failed for good, or an actor that crashed past
   * its restart limit. @default queue 'operators', role 'operator', ack 30 min, resolve 4 h
   */
  operator: TierSpec.optional(),
  /** Planner, prompt-injection screening and drift-aware gating (see docs/reasoning.md). @default rules, screening and drift on */
  planner: PlannerConfig.optional(),
  /** Webhooks for escalations, SLA breaches and operator cases; signed decision callbacks (see docs/notifications.md). @default none */
  notifications: NotificationsConfig.optional(),
  roles: z.record(z.string(), z.strictObject({ description: z.string() })),
  reviewers: z.array(ReviewerConfig).default([]),
  /** Freshness limits of observations per source. @default no limits */
  freshness: FreshnessConfig.default({ sources: {}, onStale: 'review', maxReperceives: 2 }),
  /** Retention of finished episodes' journals; absent: kept for ever. */
  retention: RetentionConfig.optional(),
});
export type ModelConfig = z.infer<typeof ModelConfig>;
